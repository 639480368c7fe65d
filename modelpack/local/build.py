"""Build the models a `file://` store lacks, with a progress bar; models already there are left alone."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelpack.api.modelpack import Precision
from modelpack.local.store import LocalStore, StoreError, missing_models


def build_models(
    store: LocalStore,
    names: Sequence[str],
    console: Console,
    *,
    size: str = "tiny",
    layers: int | None = None,
    hidden: int | None = None,
    precision: Precision | None = None,
) -> None:
    """Build the models the store lacks (as ``precision``, gated: spec.server.precision or the compute type's
    default); models already there are never rebuilt or overwritten, whatever precision they were built as."""
    if store.directory is None:
        return
    missing = missing_models(store.directory, names)
    if not missing:
        console.print(f"store {store.directory}: all {len(names)} models present", soft_wrap=True)
        return
    from model_server.fleet import build_fleet, shape_for  # torch: imported only when models must be built

    console.print(f"store {store.directory}: building {len(missing)} of {len(names)} models", soft_wrap=True)
    columns = (TextColumn("building models"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("build", total=len(missing))
        try:
            build_fleet(
                store.directory,
                missing,
                shape_for(size, layers=layers, hidden=hidden),
                precision=precision,
                progress=lambda done, _total: progress.update(task, completed=done),
            )
        except ValueError as err:  # precision this CPU lacks, or an artifact outside the accuracy tolerance
            raise StoreError(f"spec.server.precision {precision}: {err}") from None
