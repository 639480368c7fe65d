"""The status `modelpack run` writes: a run whose requests mostly failed ends Failed, SLO or not."""

from __future__ import annotations

from datetime import UTC, datetime

from modelpack.api.loadtest import ErrorsByClass, Results
from modelpack.local.status import build_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _results(errors: ErrorsByClass) -> Results:
    failed = sum(errors.model_dump().values())
    return Results(
        requests=1000,
        successes=1000 - failed,
        errors=failed,
        errors_by_class=errors,
        achieved_rate=100,
        throughput=(1000 - failed) / 10,
        duration_seconds=10,
    )


def test_a_run_whose_sends_were_all_dropped_fails_and_says_why() -> None:
    status = build_status(results=_results(ErrorsByClass(dropped=1000)), slo=None, started=T0, finished=T0)
    assert status.phase == "Failed"
    complete = next(c for c in status.conditions if c.type == "Complete")
    assert complete.reason == "RequestsFailed"
    assert "1000 dropped sends" in complete.message and "mostly dropped (1000)" in complete.message


def test_a_run_with_a_few_errors_and_no_slo_succeeds() -> None:
    status = build_status(results=_results(ErrorsByClass(http5xx=10)), slo=None, started=T0, finished=T0)
    assert status.phase == "Succeeded"
