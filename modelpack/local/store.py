"""Where a pack's models live on this machine, and building the ones that are missing.

The API only accepts absolute ``file:///`` URIs (a path inside the server image, in a cluster).
Locally a path that starts with ``/./`` is taken relative to the current directory, so an example
can ship ``file:///./.modelpack/store/demo`` and work from any clone without writing outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpack.api.modelpack import ModelStore

RELATIVE_PREFIX = "file:///./"


class StoreError(ValueError):
    """A store the local runtime cannot use; the message names the field."""


@dataclass(frozen=True)
class LocalStore:
    uri: str
    """What the servers get as ``--store``: always absolute."""
    directory: Path | None
    """The local directory of a ``file://`` store; None for ``s3://`` (read by the servers themselves)."""


def resolve_store(store: ModelStore, cwd: Path) -> LocalStore:
    uri = store.uri
    if uri.startswith(RELATIVE_PREFIX):
        directory = (cwd / uri.removeprefix(RELATIVE_PREFIX)).resolve()
        return LocalStore(uri=directory.as_uri(), directory=directory)
    if uri.startswith("file:///"):
        directory = Path(uri.removeprefix("file://")).resolve()
        return LocalStore(uri=directory.as_uri(), directory=directory)
    if uri.startswith("s3://"):
        return LocalStore(uri=uri, directory=None)
    raise StoreError(
        f"spec.store.uri: {uri!r} is a PersistentVolumeClaim, which exists only in a cluster; "
        "locally use file:///absolute/path or file:///./relative/path"
    )


def missing_models(directory: Path, names: Sequence[str]) -> list[str]:
    """Models the server could not load from the store: asked of the server's own store code, not guessed."""
    if not directory.is_dir():
        return list(names)
    from model_server.store import LocalStore as ServerStore  # imports torch: only when a file:// pack runs

    store = ServerStore(directory)
    return [n for n in names if store.problem(n) is not None]
