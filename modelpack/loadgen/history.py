"""A LoadTest's past runs, for both runtimes: the one-line record of a run that ended, and the bounded history.

A LoadTest runs again whenever its spec changes (a new ``metadata.generation``); the top-level status fields
then describe the new run, and ``status.history`` keeps what the last :data:`HISTORY_MAX` runs measured, so an
edit synced from Git can be compared with the runs before it. The operator and ``modelpack run`` both build
their records here, so a run reads the same in ``kubectl get lt -o yaml`` and in ``results.json``.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelpack.api.loadtest import HISTORY_MAX, LoadTestStatus, RunRecord

SUPERSEDED = "Superseded"
"""Phase and reason of a run stopped because the spec changed under it."""


def _complete_reason(status: LoadTestStatus) -> str:
    return next((c.reason for c in status.conditions or [] if c.type == "Complete"), "")


def run_record(status: LoadTestStatus, generation: int | None, *, superseded_at: str | None = None) -> RunRecord:
    """The record of the run ``status`` describes: as judged (a finished run), or ``Superseded`` at
    ``superseded_at`` (the spec changed before it finished; its partial results are not judged)."""
    if superseded_at is not None:
        return RunRecord(
            generation=generation,
            phase="Superseded",
            reason=SUPERSEDED,
            start_time=status.start_time,
            completion_time=superseded_at,
        )
    if status.phase not in ("Succeeded", "Failed"):
        raise ValueError(f"a run in phase {status.phase} has not ended: only an ended run has a record")
    results = status.results
    latency = results.latency_ms if results is not None else None
    return RunRecord(
        generation=generation,
        phase=status.phase,
        reason=_complete_reason(status),
        start_time=status.start_time,
        completion_time=status.completion_time,
        requests=results.requests if results is not None else None,
        throughput=results.throughput if results is not None else None,
        p50_ms=latency.p50 if latency is not None else None,
        p99_ms=latency.p99 if latency is not None else None,
        errors=results.errors if results is not None else None,
        slo_verdict=status.slo_verdict,
    )


def with_run(history: Iterable[RunRecord], record: RunRecord, bound: int = HISTORY_MAX) -> list[RunRecord]:
    """``record`` first, then the earlier runs, at most ``bound`` in all. A record of the same generation replaces
    the older one, so recording a run twice (a reconcile repeated after a crash) keeps one line."""
    earlier = [r for r in history if record.generation is None or r.generation != record.generation]
    return [record, *earlier][:bound]
