"""Per-target model optimization with an accuracy gate: one artifact per precision, checked against fp32.

Precisions:

- ``fp32``: traced, frozen (weights become graph constants) and ``torch.jit.optimize_for_inference``.
- ``int8-dynamic``: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` (int8 weights, activations
  quantized per batch), then frozen. Needs x86 with VNNI (``avx512_vnni`` / ``avx_vnni``) or arm64, where
  fbgemm/qnnpack have fast int8 kernels; elsewhere it is refused rather than built slower than fp32.
- ``bf16``: weights and activations in bfloat16 (outputs cast back to float32, so the V2 outputs stay FP32), then
  frozen. Only on CPUs with native bf16 arithmetic (x86 ``avx512_bf16`` / ``amx_bf16``, arm64 ``bf16``, e.g.
  Graviton3): elsewhere torch emulates it and it is several times slower than fp32, so it is refused.

Every artifact is compared with the fp32 eager model on generated inputs (the accuracy gate): the largest
absolute output difference and the top-1 agreement (argmax along each output's last dimension, per row) are
recorded in the model's config.json and shown by the server; an artifact outside the tolerance is refused with
an :class:`AccuracyError` naming the model, precision, measured value and tolerance.
"""

from __future__ import annotations

import copy
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch
from torch import nn

from model_server.config import AccuracyRecord
from model_server.trace import quiet_jit
from modelpack.api.modelpack import Precision

PRECISIONS: tuple[str, ...] = get_args(Precision)

DEFAULT_MAX_ABS_DIFF = 0.25
"""Default tolerance on the largest absolute output difference from fp32. Measured on 2026-12-03 over the gate's 16
generated rows (docs/performance.md): bert-base QA int8-dynamic differs by 0.099-0.110 (its fp32 logits: std
0.47, largest 1.6), bert-base classification by 0.021-0.028, fp32 frozen by 0. An artifact with wrong weights or a
bad kernel differs by the size of the outputs themselves. Absolute: a model whose outputs are larger (trained QA
logits reach +-10) needs its own --max-abs-diff."""
DEFAULT_MIN_TOP1_AGREEMENT = 0.85
"""Default least share of rows (per output) whose argmax agrees with fp32's. bert-base QA int8-dynamic measured
0.906-0.969 (random weights make the 128 start/end logits nearly flat, so argmaxes flip easily; trained models'
peaked logits agree more), classification 1.0."""
GATE_ROWS = 16
"""Generated input rows the gate compares: enough for a top-1 agreement in steps of 1/16, cheap for bert-base."""


class PrecisionError(ValueError):
    """The precision is unknown or this CPU cannot run it natively; the message says which and why."""


class AccuracyError(PrecisionError):
    """An artifact's outputs are outside the tolerance; the message names model, precision, value and tolerance."""


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may be from fp32 and still be built (defaults above, documented in docs/model-server.md)."""

    max_abs_diff: float = DEFAULT_MAX_ABS_DIFF
    min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT

    def __post_init__(self) -> None:
        if not self.max_abs_diff >= 0:
            raise ValueError(f"max_abs_diff tolerance must be >= 0, got {self.max_abs_diff}")
        if not 0 <= self.min_top1_agreement <= 1:
            raise ValueError(f"min_top1_agreement tolerance must be between 0 and 1, got {self.min_top1_agreement}")


@dataclass(frozen=True)
class Accuracy:
    """What the gate measured for one artifact."""

    max_abs_diff: float
    top1_agreement: float
    rows: int


@dataclass(frozen=True)
class CpuFeatures:
    """The machine and its CPU flags (``/proc/cpuinfo``): what decides which precisions run natively."""

    machine: str
    flags: frozenset[str]

    @classmethod
    def detect(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
        try:
            text = cpuinfo.read_text()
        except OSError:
            text = ""
        return cls(machine=platform.machine(), flags=parse_cpu_flags(text))


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """x86 lists them on ``flags`` lines, arm64 on ``Features`` lines; every core lists the same."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


X86 = ("x86_64", "amd64", "AMD64")
ARM64 = ("aarch64", "arm64")


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision  # type: ignore[return-value]


def unsupported_reason(precision: str, cpu: CpuFeatures) -> str | None:
    """Why this CPU cannot run ``precision`` natively, or None when it can."""
    check_precision(precision)
    if precision == "fp32":
        return None
    x86, arm = cpu.machine in X86, cpu.machine in ARM64
    if precision == "int8-dynamic":
        if arm or (x86 and cpu.flags & {"avx512_vnni", "avx_vnni"}):
            return None
        return (
            f"int8-dynamic needs x86 with VNNI (avx512_vnni or avx_vnni) or arm64; this CPU ({cpu.machine}) has "
            "neither, and without them int8 kernels are no faster than fp32"
        )
    if (x86 and cpu.flags & {"avx512_bf16", "amx_bf16"}) or (arm and "bf16" in cpu.flags):
        return None
    wanted = "bf16 (e.g. Graviton3)" if arm else "avx512_bf16 or amx_bf16 (Cooper Lake, Sapphire Rapids or later)"
    return (
        f"bf16 needs a CPU with native bf16 arithmetic: {wanted}; this CPU ({cpu.machine}) lacks it, so torch "
        "would emulate bf16, slower than fp32"
    )


def require_supported(precision: str, cpu: CpuFeatures | None = None) -> Precision:
    """The precision, checked: unknown names and precisions this CPU lacks raise :class:`PrecisionError`."""
    checked = check_precision(precision)
    reason = unsupported_reason(checked, cpu or CpuFeatures.detect())
    if reason is not None:
        raise PrecisionError(f"cannot build {precision} artifacts on this machine: {reason}")
    return checked


class _OutputsToFloat32(nn.Module):
    """A bf16 model whose outputs are float32 again, so its config.json (FP32 outputs) stays true."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.model(*inputs)
        if isinstance(out, torch.Tensor):
            return out.float()
        return tuple(o.float() for o in out)


def prepare(model: nn.Module, precision: Precision) -> nn.Module:
    """The eager module the artifact is traced from; ``model`` (fp32) is left untouched as the reference."""
    model = model.eval()
    if precision == "fp32":
        return model
    if precision == "int8-dynamic":
        with warnings.catch_warnings():  # torch 2.9+ deprecates quantized tensor creation; nothing replaces it yet
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
            return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    return _OutputsToFloat32(copy.deepcopy(model).to(torch.bfloat16)).eval()


def trace_prepared(prepared: nn.Module, example_inputs: Sequence[torch.Tensor]) -> torch.jit.ScriptModule:
    """Traced, not yet frozen: the fleet writes each model's weights into it (:func:`transplant`), then freezes."""
    if isinstance(prepared, torch.jit.ScriptModule):  # a stored TorchScript model made fp32: nothing to trace
        return prepared
    with quiet_jit(), torch.inference_mode(False), torch.no_grad():
        return torch.jit.trace(prepared, tuple(example_inputs), check_trace=False)


def transplant(source: nn.Module, traced: torch.jit.ScriptModule) -> None:
    """Write ``source``'s weights into ``traced`` (traced from a module of the same architecture and precision),
    so a fleet traces each architecture once. Quantized Linears keep their weights in packed parameters, not in
    tensors, hence the second loop."""
    with torch.no_grad():
        targets = dict(traced.named_parameters())
        for name, tensor in source.named_parameters():
            targets[name].copy_(tensor)
        buffers: dict[str, torch.Tensor] = dict(traced.named_buffers())
        for name, buffer in source.named_buffers():
            buffers[name].copy_(buffer)
        for name, module in source.named_modules():
            if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
                target: Any = traced.get_submodule(name)
                target._packed_params._packed_params = module._packed_params._packed_params


def finish(traced: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """Freeze (weights become constants; ``traced`` itself is not changed) and optimize for inference."""
    with quiet_jit():
        frozen = torch.jit.freeze(traced.eval())
        return torch.jit.optimize_for_inference(frozen)


def optimize(
    model: nn.Module, example_inputs: Sequence[torch.Tensor], precision: str, cpu: CpuFeatures | None = None
) -> torch.jit.ScriptModule:
    """The artifact for one model: checked precision, prepared, traced, frozen, optimized."""
    checked = require_supported(precision, cpu)
    return finish(trace_prepared(prepare(model, checked), example_inputs))


def _outputs(out: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [out] if isinstance(out, torch.Tensor) else list(out)


def measure(
    reference: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    artifact: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: Sequence[torch.Tensor],
) -> Accuracy:
    """Largest absolute output difference and top-1 agreement (per row, per output) of artifact vs reference."""
    with quiet_jit(), torch.inference_mode():
        expected = _outputs(reference(*inputs))
        actual = _outputs(artifact(*inputs))
    if len(expected) != len(actual):
        raise ValueError(f"the artifact returns {len(actual)} outputs, the fp32 model {len(expected)}")
    worst, agree, decisions = 0.0, 0, 0
    for want, got in zip(expected, actual, strict=True):
        got = got.float()
        worst = max(worst, float((got - want.float()).abs().max()))
        if want.dim() >= 1 and want.shape[-1] > 1:
            same = want.argmax(-1) == got.argmax(-1)
            agree += int(same.sum())
            decisions += same.numel()
    rows = int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1
    return Accuracy(max_abs_diff=worst, top1_agreement=agree / decisions if decisions else 1.0, rows=rows)


def check_accuracy(model_name: str, precision: str, accuracy: Accuracy, tolerance: Tolerance) -> None:
    """Refuse an artifact outside the tolerance, naming model, precision, the measured value and the tolerance."""
    if accuracy.max_abs_diff != accuracy.max_abs_diff or accuracy.max_abs_diff > tolerance.max_abs_diff:
        raise AccuracyError(
            f"model {model_name!r}: the {precision} artifact is outside tolerance: max absolute output difference "
            f"from fp32 is {accuracy.max_abs_diff:.6g}, tolerance {tolerance.max_abs_diff:g} "
            f"(over {accuracy.rows} generated rows)"
        )
    if accuracy.top1_agreement < tolerance.min_top1_agreement:
        raise AccuracyError(
            f"model {model_name!r}: the {precision} artifact is outside tolerance: top-1 agreement with fp32 is "
            f"{accuracy.top1_agreement:.4g}, tolerance at least {tolerance.min_top1_agreement:g} "
            f"(over {accuracy.rows} generated rows)"
        )


def gate(
    model_name: str,
    precision: str,
    reference: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    artifact: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: Sequence[torch.Tensor],
    tolerance: Tolerance,
) -> AccuracyRecord:
    """Measure, refuse outside the tolerance, and return what config.json records."""
    accuracy = measure(reference, artifact, inputs)
    check_accuracy(model_name, precision, accuracy, tolerance)
    return AccuracyRecord(
        max_abs_diff=accuracy.max_abs_diff,
        top1_agreement=accuracy.top1_agreement,
        rows=accuracy.rows,
        max_abs_diff_tolerance=tolerance.max_abs_diff,
        min_top1_agreement=tolerance.min_top1_agreement,
    )
