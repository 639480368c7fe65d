"""Re-trace a model already in a store for a target, keeping its config, tokenizer and weights.

Example inputs come from config.json (zeros of the declared shapes at batch 1), so any stored model works.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from model_server.config import MODEL_FILE, ConfigError, load_config, write_config
from model_server.datatypes import NUMPY_DTYPES
from model_server.neuron import NeuronUnavailableError
from model_server.trace import platform_for, quiet_jit, trace


class RetraceError(ValueError):
    """The model cannot be traced for the target; the message says why."""


def retrace(store: Path, name: str, target: str, output: Path | None = None) -> Path:
    model_dir = store / name
    if not model_dir.is_dir():
        raise RetraceError(f"no model {name!r} in store {store}")
    try:
        config = load_config(model_dir)
    except ConfigError as err:
        raise RetraceError(str(err)) from None
    if config.platform != "torchscript":
        raise RetraceError(f"{model_dir}: platform is {config.platform!r}; only torchscript models can be re-traced")
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
            traced = trace(module, examples, target)
        except NeuronUnavailableError as err:
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


def _zeros(shape: list[int], datatype: str):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.zeros(shape, dtype=NUMPY_DTYPES[datatype])
