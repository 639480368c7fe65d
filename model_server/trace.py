"""Turn a model into the artifact a target runs: TorchScript for CPUs, a Neuron graph for Inferentia."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch

Target = Literal["x86", "graviton", "inferentia"]
TARGETS: tuple[str, ...] = ("x86", "graviton", "inferentia")


def trace(model: torch.nn.Module, example_inputs: Sequence[torch.Tensor], target: str) -> torch.jit.ScriptModule:
    """TorchScript is portable between x86 and arm64 (Graviton), so both get the same trace (not frozen: the
    server sizes models by their parameters)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    model = model.eval()
    if target == "inferentia":
        from model_server import neuron

        return neuron.trace(model, example_inputs)  # type: ignore[no-any-return]
    with quiet_jit(), torch.inference_mode(False), torch.no_grad():
        if isinstance(model, torch.jit.ScriptModule):
            return model
        return torch.jit.trace(model, tuple(example_inputs), check_trace=False)


@contextmanager
def quiet_jit() -> Iterator[None]:
    """torch 2.x marks torch.jit as deprecated on every call; TorchScript is still what CPU serving loads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def platform_for(target: str) -> str:
    return "neuron" if target == "inferentia" else "torchscript"
