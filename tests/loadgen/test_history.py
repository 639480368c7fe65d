"""A LoadTest's run history, the one definition both runtimes use: a run's line, the bound, one line per generation."""

from __future__ import annotations

import pytest

from modelpack.api.loadtest import HISTORY_MAX, LoadTestStatus, RunRecord
from modelpack.loadgen.history import run_record, with_run


def test_a_run_that_has_not_ended_has_no_line_but_a_superseded_one_does() -> None:
    running = LoadTestStatus(phase="Running", start_time="2026-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="a run in phase Running has not ended"):
        run_record(running, 3)
    line = run_record(running, 3, superseded_at="2026-01-01T00:00:09Z")
    assert line == RunRecord(
        generation=3,
        phase="Superseded",
        reason="Superseded",
        start_time="2026-01-01T00:00:00Z",
        completion_time="2026-01-01T00:00:09Z",
    )


def test_the_history_is_newest_first_bounded_and_one_line_per_generation() -> None:
    history: list[RunRecord] = []
    for generation in range(1, HISTORY_MAX + 3):
        history = with_run(history, RunRecord(generation=generation, phase="Succeeded"))
    assert [r.generation for r in history] == [7, 6, 5, 4, 3]
    again = with_run(history, RunRecord(generation=7, phase="Failed", reason="SLOMissed"))
    assert [(r.generation, r.phase) for r in again] == [
        (7, "Failed"),
        (6, "Succeeded"),
        (5, "Succeeded"),
        (4, "Succeeded"),
        (3, "Succeeded"),
    ]
