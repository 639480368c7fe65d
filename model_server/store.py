"""Model stores: a local directory tree, or an S3 prefix mirrored on demand into a local cache.

A store only finds models and puts their files on local disk; loading them is the registry's job.
Downloads happen per model on first load, so a pod holding 3,000 models starts without fetching any.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from model_server.config import CONFIG_FILE, MODEL_FILE
from modelpack.modelnames import model_name_problem


class StoreError(ValueError):
    """The store URI is malformed or the store cannot be read."""


class Store(Protocol):
    uri: str

    def list_models(self) -> list[str]:
        """Every model folder in the store, sorted."""
        ...

    def check(self) -> None:
        """Raise :class:`StoreError` when the store cannot be read at all: what a server checks once at start."""
        ...

    def problem(self, name: str) -> str | None:
        """A cheap check at registration (no download): why the model cannot load, or None."""
        ...

    def model_dir(self, name: str) -> Path:
        """A local directory holding the model's files; may download. Blocking: call from a worker thread."""
        ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def list_models(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"store {self.root} is not a directory")
        try:
            next(self.root.iterdir(), None)
        except OSError as err:
            raise StoreError(f"cannot read store {self.root}: {err}") from None

    def problem(self, name: str) -> str | None:
        if (bad := model_name_problem(name)) is not None:
            return bad
        folder = self.root / name
        if not folder.is_dir():
            return f"no folder {name!r} in store {self.root}"
        for required in (CONFIG_FILE, MODEL_FILE):
            if not (folder / required).is_file():
                return f"{folder / required}: missing"
        return None

    def model_dir(self, name: str) -> Path:
        return self.root / _checked(name)


class S3Store:
    """``s3://bucket/prefix``: each model is ``prefix/<name>/...``, copied to ``cache_dir/bucket/prefix/<name>``."""

    def __init__(self, bucket: str, prefix: str, cache_dir: Path, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.cache = cache_dir / bucket / self.prefix
        self._client = client
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # only s3 stores pay for importing boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def list_models(self) -> list[str]:
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        base = self._key() + "/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
            for entry in page.get("CommonPrefixes", []):
                names.append(entry["Prefix"][len(base) :].rstrip("/"))
        return sorted(names)

    def check(self) -> None:
        """One small list call: wrong bucket, missing credentials, no network and an empty prefix all show here."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            page = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._key() + "/" if self.prefix else "", MaxKeys=1
            )
        except (BotoCoreError, ClientError) as err:
            raise StoreError(f"cannot read {self.uri}: {err}") from None
        if not page.get("Contents"):
            raise StoreError(f"{self.uri} holds no objects: nothing to serve (is the prefix right?)")

    def problem(self, name: str) -> str | None:
        return model_name_problem(name)

    def model_dir(self, name: str) -> Path:
        _checked(name)
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            target = self.cache / name
            prefix = self._key(name) + "/"
            paginator = self.client.get_paginator("list_objects_v2")
            found = False
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(prefix) :]
                    if not relative or relative.endswith("/") or ".." in relative.split("/"):
                        continue  # folders, and keys that would land outside the model's cache folder
                    found = True
                    path = target / relative
                    if path.is_file() and path.stat().st_size == obj["Size"]:
                        continue  # cached by an earlier load
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.part")
                    self.client.download_file(self.bucket, obj["Key"], str(tmp))
                    tmp.replace(path)
            if not found:
                raise FileNotFoundError(f"no objects under s3://{self.bucket}/{prefix}")
            return target


def _checked(name: str) -> str:
    """``name`` if it is a model name; a name with ``/`` or ``..`` never becomes a path (defence in depth)."""
    if (bad := model_name_problem(name)) is not None:
        raise StoreError(bad)
    return name


def open_store(uri: str, cache_dir: Path) -> Store:
    """Accepts a plain path, ``file:///path`` or ``s3://bucket/prefix``."""
    if not uri:
        raise StoreError("store URI is empty")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} has no bucket (expected s3://bucket/prefix)")
        return S3Store(parsed.netloc, parsed.path, cache_dir)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"store URI {uri!r}: file URIs must be file:///absolute/path")
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StoreError(f"store URI {uri!r}: unsupported scheme {parsed.scheme!r} (use a path, file:// or s3://)")
    return LocalStore(Path(uri))
