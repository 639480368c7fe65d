"""The one seam to AWS Neuron (Inferentia/Trainium): ``torch_neuronx``, imported only here and only when asked.

Untested on hardware: no Neuron device or SDK is available where this project is developed and tested.
The tests check that a missing SDK gives a clear error and that nothing else imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

INSTALL_HINT = (
    "platform 'neuron' needs the AWS Neuron SDK (pip package torch-neuronx from the Neuron repository) "
    "on an Inferentia/Trainium instance"
)


class NeuronUnavailableError(RuntimeError):
    """torch_neuronx is not importable here."""


def runtime() -> ModuleType:
    """Import torch_neuronx, which also registers the Neuron ops torch.jit.load needs for neuron artifacts."""
    try:
        return importlib.import_module("torch_neuronx")
    except ImportError as err:
        raise NeuronUnavailableError(f"{INSTALL_HINT}: {err}") from None


def trace(model: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> Any:
    """Compile for NeuronCores; shapes are fixed at trace time, so pad requests to the traced shape."""
    return runtime().trace(model, tuple(example_inputs))
