"""A TorchScript archive's weights, read without deserializing its code, and which archives share a graph.

``torch.jit.load`` compiles every model's code and builds its module objects again (~10 ms for a tiny BERT on
this machine), while reading its 2.7 MB of tensors from the page cache takes well under 1 ms. Models of one
fleet share an architecture and differ only in weights, so the server loads one archive per architecture with
``torch.jit.load`` and builds the others from a copy of it (loaded.py), reading only their tensors here.

Two archives share an architecture when every zip entry but the tensor storages (``data/``) and the per-save
random ``.data/serialization_id`` is the same: code, constants, the traced inputs, and ``data.pkl``, the
module tree naming each tensor's storage, dtype, shape and strides. The zip central directory holds each
entry's CRC-32 and size, so the key costs a directory read, not a read of the archive.

``data.pkl`` is read with a restricted unpickler: it builds only plain records for TorchScript's own module
classes and tensors from this archive's storages; any other global is refused, so a store still cannot run code
through the server (the reason only TorchScript is loaded, never arbitrary pickles).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class NotReadable(ValueError):
    """The archive holds something this reader does not rebuild; the caller falls back to ``torch.jit.load``."""


def _key(entries: list[zipfile.ZipInfo]) -> str:
    digest = hashlib.sha256()
    for info in sorted(entries, key=lambda i: i.filename):
        inner = info.filename.split("/", 1)[-1]
        if inner.startswith("data/") or inner == ".data/serialization_id":
            continue
        digest.update(f"{inner}\0{info.CRC}\0{info.file_size}\n".encode())
    return digest.hexdigest()


class _Module:
    """A TorchScript module object of ``data.pkl``: only its attributes (``__setstate__``) are kept."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Tensor:
    def __init__(self, storage: tuple[str, torch.dtype], offset: int, size: tuple[int, ...], stride: Any) -> None:
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage: tuple[str, torch.dtype], offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):  # TorchScript's module classes: a record, never the real class
            return self._classes.setdefault(f"{module}.{name}", type(name, (_Module,), {}))
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise NotReadable(f"data.pkl refers to {module}.{name}")

    def persistent_load(self, pid: Any) -> tuple[str, torch.dtype]:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise NotReadable(f"data.pkl holds an unknown persistent id {pid!r}")
        return str(pid[2]), pid[1]


def _tensors_of(node: Any, path: str, out: dict[str, _Tensor]) -> None:
    if isinstance(node, _Tensor):
        out[path] = node
    elif isinstance(node, _Module):
        _tensors_of(node.state, path, out)
    elif isinstance(node, dict):
        for name, value in node.items():
            _tensors_of(value, f"{path}.{name}" if path else str(name), out)
    elif isinstance(node, (list, tuple)) and any(isinstance(v, (_Tensor, _Module, dict, list, tuple)) for v in node):
        raise NotReadable(f"{path or 'the module'} holds tensors or modules in a list")


class Archive:
    """One TorchScript archive opened for its key and its tensors; the tensors are views of a private
    (copy-on-write) memory map of the file, valid while this object lives: copy them, do not keep them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as f:
            try:
                with zipfile.ZipFile(f) as archive:  # reads the central directory only
                    self._entries = {info.filename: info for info in archive.infolist()}
            except zipfile.BadZipFile as err:
                raise NotReadable(f"{path}: not a zip archive: {err}") from None
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        first = next(iter(self._entries), "")
        self._prefix = first.split("/", 1)[0] if "/" in first else ""
        self.key = _key(list(self._entries.values()))

    def _entry(self, inner: str) -> memoryview:
        """An entry's bytes in the map; TorchScript writes entries uncompressed, so they are the file's bytes."""
        info = self._entries.get(f"{self._prefix}/{inner}")
        if info is None or info.compress_type != zipfile.ZIP_STORED:
            raise NotReadable(f"{self.path}: no uncompressed entry {inner}")
        header = self._map[info.header_offset : info.header_offset + 30]
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        return memoryview(self._map)[start : start + info.file_size]

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor attribute of the module tree, by dotted path (``state_dict`` names)."""
        found: dict[str, _Tensor] = {}
        try:
            _tensors_of(_Unpickler(bytes(self._entry("data.pkl"))).load(), "", found)
        except NotReadable:
            raise
        except Exception as err:  # whatever else a data.pkl may hold: torch.jit.load decides about it
            raise NotReadable(f"{self.path}: data.pkl: {err}") from None
        storages: dict[str, torch.Tensor] = {}
        tensors = {}
        for name, t in found.items():
            flat = storages.get(t.key)
            if flat is None:
                raw = self._entry(f"data/{t.key}")
                flat = torch.frombuffer(raw, dtype=t.dtype) if len(raw) else torch.empty(0, dtype=t.dtype)
                storages[t.key] = flat
            tensors[name] = flat.as_strided(t.size, t.stride, t.offset)
        return tensors

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a tensor view is still referenced: it closes with the last one
            self._map.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
