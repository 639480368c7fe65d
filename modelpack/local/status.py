"""The LoadTest status a local run produces: the same object the operator writes to the cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from modelpack.api.common import Condition
from modelpack.api.loadtest import Cost, LoadTestPhase, LoadTestStatus, Results, SloVerdict, SweepResult
from modelpack.loadgen.slo import failed_run, run_summary


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_status(
    *,
    results: Results | None,
    verdict: SloVerdict | None,
    started: datetime,
    finished: datetime,
    sweep: SweepResult | None = None,
    cost: Cost | None = None,
    interrupted: bool = False,
    failure: str | None = None,
) -> LoadTestStatus:
    """Phase, results, verdict and the Complete/SLOMet conditions, as `kubectl get loadtest -o yaml` shows them."""
    now = rfc3339(finished)
    failed = failed_run(results) if results is not None else None
    phase: LoadTestPhase = "Failed" if (interrupted or failure or results is None or failed) else "Succeeded"
    if interrupted:
        complete = Condition(type="Complete", status="False", reason="Interrupted", message="Stopped by the user.")
    elif failure:
        complete = Condition(type="Complete", status="False", reason="Failed", message=failure)
    elif failed is not None and results is not None:
        complete = Condition(
            type="Complete", status="True", reason="RequestsFailed", message=f"{run_summary(results)}; {failed[1]}"
        )
    else:
        complete = Condition(type="Complete", status="True", reason="Finished", message="Results merged.")
    complete.last_transition_time = now
    if verdict is None:
        slo_cond = Condition(type="SLOMet", status="Unknown", reason="NoSLO", message="No SLO set.")
        slo_word = "None"
    elif verdict.met:
        slo_cond = Condition(type="SLOMet", status="True", reason="Met", message="Every SLO bound held.")
        slo_word = "Met"
    else:
        slo_cond = Condition(type="SLOMet", status="False", reason="Missed", message="; ".join(verdict.violations))
        slo_word = "Missed"
    slo_cond.last_transition_time = now
    return LoadTestStatus(
        phase=phase,
        start_time=rfc3339(started),
        completion_time=now,
        workers_succeeded=0 if phase == "Failed" else 1,
        workers_failed=1 if phase == "Failed" else 0,
        results=results,
        sweep=sweep,
        slo=verdict,
        slo_verdict=slo_word,  # type: ignore[arg-type]
        cost=cost,
        conditions=[complete, slo_cond],
    )
