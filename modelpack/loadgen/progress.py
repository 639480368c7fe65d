"""A rich progress bar with live rate, errors and p99, fed by engine snapshots (from one or many processes)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from modelpack.loadgen.engine import Snapshot


class LiveProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("load", total=1.0, phase="starting", stats="")
        self._last: tuple[float, int] | None = None

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def update(self, snap: Snapshot) -> None:
        now = time.monotonic()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = max(0, snap.sent - self._last[1]) / (now - self._last[0])
        self._last = (now, snap.sent)
        p99 = "-" if snap.p99_ms is None else f"{snap.p99_ms:.1f} ms"
        stats = f"{rate:8.1f} req/s  sent {snap.sent}  errors {snap.errors}  p99 {p99}"
        self.progress.update(
            self.task,
            total=max(snap.total, 1e-9),
            completed=min(snap.elapsed, snap.total),
            phase=snap.phase,
            stats=stats,
        )
