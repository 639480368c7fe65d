"""Re-trace a model already in a store for a target, keeping its config, tokenizer and weights.

Example inputs come from config.json (zeros of the declared shapes at batch 1), so any stored model works.

With a precision the result is an optimized, gated artifact (model_server/precision.py). Quantizing or casting
needs the model's eager (Python) form, which a TorchScript archive does not keep: models made by the fleet builder
are rebuilt from the shape and seed their config records; any other TorchScript model can be optimized to fp32
(frozen) only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from model_server.bert import BertModel, BertShape, randomize
from model_server.config import MODEL_FILE, AccuracyRecord, ConfigError, ModelConfig, load_config, write_config
from model_server.datatypes import NUMPY_DTYPES
from model_server.neuron import NeuronUnavailableError
from model_server.precision import (
    GATE_ROWS,
    PrecisionError,
    Tolerance,
    gate,
    optimize,
)
from model_server.trace import platform_for, quiet_jit, trace


class RetraceError(ValueError):
    """The model cannot be traced for the target; the message says why."""


def retrace(
    store: Path,
    name: str,
    target: str,
    output: Path | None = None,
    *,
    precision: str | None = None,
    tolerance: Tolerance | None = None,
) -> Path:
    model_dir = store / name
    if not model_dir.is_dir():
        raise RetraceError(f"no model {name!r} in store {store}")
    try:
        config = load_config(model_dir)
    except ConfigError as err:
        raise RetraceError(str(err)) from None
    if config.platform != "torchscript":
        raise RetraceError(f"{model_dir}: platform is {config.platform!r}; only torchscript models can be re-traced")
    if precision is not None and target == "inferentia":
        raise RetraceError("--precision is for CPU targets (x86, graviton); torch_neuronx chooses its own casts")
    if any(d == -1 for spec in config.inputs for d in spec.shape):
        raise RetraceError(f"{model_dir}: inputs with variable (-1) dimensions cannot be traced to fixed shapes")
    batch = [1] if config.max_batch_size > 0 else []
    examples = []
    for spec in config.inputs:
        if spec.datatype not in NUMPY_DTYPES:
            raise RetraceError(f"{model_dir}: input {spec.name!r} has datatype {spec.datatype}, not a tensor type")
        examples.append(torch.from_numpy(_zeros(batch + spec.shape, spec.datatype)))
    with quiet_jit():
        try:
            module = torch.jit.load(str(model_dir / MODEL_FILE), map_location="cpu")
        except Exception as err:  # corrupt archives raise assorted torch errors
            raise RetraceError(f"{model_dir / MODEL_FILE}: not a loadable TorchScript archive: {err}") from None
        try:
            if precision is None:
                traced = trace(module, examples, target)
            else:
                traced, accuracy = _optimized(model_dir, name, config, module, examples, precision, tolerance)
                source = config.source
                if source is not None and source.get("builder") == "modelpack.fleet/1":
                    source = {**source, "precision": precision}  # a fleet rerun then reuses this artifact
                update = {"precision": precision, "accuracy": accuracy, "source": source}
                config = config.model_copy(update=update)
        except NeuronUnavailableError as err:
            raise RetraceError(str(err)) from None
        except PrecisionError as err:
            raise RetraceError(str(err)) from None
    destination = (output / name) if output is not None else model_dir
    destination.mkdir(parents=True, exist_ok=True)
    if destination != model_dir:
        for extra in model_dir.iterdir():
            if extra.is_file() and extra.name not in (MODEL_FILE,):
                shutil.copy2(extra, destination / extra.name)
    tmp = destination / f".{MODEL_FILE}.tmp"
    with quiet_jit():
        torch.jit.save(traced, str(tmp))
    tmp.replace(destination / MODEL_FILE)
    write_config(destination, config.model_copy(update={"platform": platform_for(target)}))
    return destination


def _optimized(
    model_dir: Path,
    name: str,
    config: ModelConfig,
    module: torch.jit.ScriptModule,
    examples: list[torch.Tensor],
    precision: str,
    tolerance: Tolerance | None,
) -> tuple[torch.jit.ScriptModule, AccuracyRecord]:
    """The gated artifact: from the eager model when the fleet builder made it, else fp32 from the archive."""
    source = config.source or {}
    tolerance = tolerance or Tolerance()
    if source.get("builder") == "modelpack.fleet/1":
        from model_server.fleet import gate_inputs

        shape = BertShape(**source["shape"])
        reference: torch.nn.Module = BertModel(shape).eval()
        randomize(reference, int(source["seed"]))
        artifact = optimize(reference, examples, precision)
        inputs = list(gate_inputs(shape, int(source["seed"])))
    elif precision != "fp32" or config.precision is not None:
        raise RetraceError(
            f"{model_dir}: {precision} needs the model's eager (Python) form, which a TorchScript archive does not "
            "keep; only models made by `modelpack models build` (config.json records their shape and seed) can "
            "be re-traced at this precision; a plain traced model can be made fp32 (frozen)"
        )
    else:
        reference = module
        artifact = optimize(module, examples, precision)
        inputs = [_generated(spec.datatype, [GATE_ROWS, *spec.shape]) for spec in config.inputs]
    return artifact, gate(name, precision, reference, artifact, inputs, tolerance)


def _generated(datatype: str, shape: list[int]) -> torch.Tensor:
    """Gate inputs for a model the fleet did not make: normal floats, 0/1 integers (valid ids and masks alike)."""
    generator = torch.Generator().manual_seed(0)
    dtype = torch.from_numpy(_zeros([1], datatype)).dtype
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    return torch.randint(0, 2, shape, generator=generator).to(dtype)


def _zeros(shape: list[int], datatype: str):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.zeros(shape, dtype=NUMPY_DTYPES[datatype])
