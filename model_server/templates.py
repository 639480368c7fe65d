"""One compiled module structure per architecture: later models of it are copies given their own weights.

The first model of an architecture (weights.py says which archives share one) is loaded with
``torch.jit.load``; a weightless copy of it (every tensor attribute replaced by an empty tensor) is kept as the
template, so a template costs its graphs, not a model's memory. Every further model of that architecture is a
deep copy of the template with the tensors of its own archive set in place: no code is compiled, no module
objects are unpickled, and the copies share the template's compiled methods, so the first forward pass that
plans their execution is paid once per architecture rather than once per model.

Only plain traces take this path. Frozen or quantized artifacts (any ``precision``) keep their weights as graph
constants, so no two of them share a graph; they, and any archive whose tensors are not exactly the module's
parameters and buffers, are loaded with ``torch.jit.load`` as before.

Thread-safe: the server's load threads run in parallel, and each copy is private to the load that made it.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from model_server.trace import quiet_jit
from model_server.weights import Archive, NotReadable


def _set_tensor(root: torch.jit.ScriptModule, name: str, value: torch.Tensor) -> None:
    *path, attr = name.split(".")
    module = root
    for part in path:
        module = getattr(module, part)
    setattr(module, attr, value)


def _weightless(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    template = copy.deepcopy(module)
    for name, tensor in template.state_dict().items():
        _set_tensor(template, name, torch.empty(0, dtype=tensor.dtype))
    return template


class Templates:
    """Templates by architecture key, the least recently used dropped beyond ``limit`` (0: no templates)."""

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self._templates: OrderedDict[str, tuple[torch.jit.ScriptModule, frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self.copies = 0  # models built from a template (tests and benchmarks read it)

    def load(self, path: Path) -> tuple[torch.jit.ScriptModule, bool]:
        """The archive's module, and whether it is a template copy: one when its architecture is known, else
        ``torch.jit.load`` (which then becomes the template of its architecture). ``limit`` 0: always the latter.
        A copy's methods are its architecture's, already planned by the first forward pass of any of them."""
        if self.limit == 0:
            return jit_load(path), False
        try:
            archive = Archive(path)
        except (NotReadable, OSError):
            return jit_load(path), False
        with archive:
            with self._lock:
                known = self._templates.get(archive.key)
                if known is not None:
                    self._templates.move_to_end(archive.key)
            if known is not None:
                module = self._copy(known, archive)
                if module is not None:
                    return module, True
            module = jit_load(path)
            names = frozenset(module.state_dict())
            try:
                if set(archive.tensors()) != names:
                    return module, False  # tensors that are not parameters or buffers: copies could not replace them
            except NotReadable:
                return module, False
            template = _weightless(module)
            with self._lock:
                self._templates[archive.key] = (template, names)
                while len(self._templates) > self.limit:
                    self._templates.popitem(last=False)
            return module, False

    def _copy(
        self, known: tuple[torch.jit.ScriptModule, frozenset[str]], archive: Archive
    ) -> torch.jit.ScriptModule | None:
        template, names = known
        try:
            tensors = archive.tensors()
        except NotReadable:
            return None
        if set(tensors) != names:
            return None
        module = copy.deepcopy(template)
        for name, tensor in tensors.items():
            _set_tensor(module, name, tensor.clone())  # clone: off the file's memory map, which closes next
        del tensors
        with self._lock:
            self.copies += 1
        return module

    def clear(self) -> None:
        with self._lock:
            self._templates.clear()


def jit_load(path: Path) -> torch.jit.ScriptModule:
    with quiet_jit():
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # torch raises RuntimeError/ValueError/zipfile errors for corrupt archives
            raise ValueError(f"{path}: not a loadable TorchScript archive: {err}") from None


TEMPLATES = Templates()
"""The server process's templates (one per architecture it has loaded)."""
