"""The LoadTest status a local run produces: the same object the operator writes to the cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from modelpack.api.common import Condition
from modelpack.api.loadtest import Cost, LoadTestPhase, LoadTestStatus, Results, Slo, SweepResult
from modelpack.loadgen.history import run_record
from modelpack.loadgen.judgement import ConditionView, judge


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(view: ConditionView, now: str) -> Condition:
    status: Literal["True", "False", "Unknown"] = (
        "Unknown" if view.status is None else "True" if view.status else "False"
    )
    return Condition(type=view.type, status=status, reason=view.reason, message=view.message, last_transition_time=now)


def build_status(
    *,
    results: Results | None,
    slo: Slo | None,
    started: datetime,
    finished: datetime,
    sweep: SweepResult | None = None,
    cost: Cost | None = None,
    interrupted: bool = False,
    failure: str | None = None,
    workers: int = 1,
) -> LoadTestStatus:
    """Phase, results, verdict and the Complete/SLOMet conditions, as `kubectl get loadtest -o yaml` shows them:
    judged by the same :func:`judge` as the operator's, with the run's line in ``history`` as the operator keeps it
    (a local run has no generation: it is one run of the YAML as given)."""
    now = rfc3339(finished)
    judgement = judge(results, slo) if results is not None else None
    if interrupted or failure or judgement is None:
        phase: LoadTestPhase = "Failed"
        reason, message = (
            ("Interrupted", "Stopped by the user.") if interrupted else ("Failed", failure or "no results")
        )
        complete = Condition(type="Complete", status="False", reason=reason, message=message, last_transition_time=now)
    else:
        phase = judgement.phase
        complete = _condition(judgement.complete, now)
    conditions = [complete]
    if judgement is not None:
        conditions.append(_condition(judgement.slo_condition, now))
    status = LoadTestStatus(
        phase=phase,
        start_time=rfc3339(started),
        completion_time=now,
        # As on a cluster: a worker that returned results succeeded, whatever the results say.
        workers_succeeded=0 if judgement is None or interrupted or failure else workers,
        workers_failed=workers if judgement is None or interrupted or failure else 0,
        results=results,
        sweep=sweep,
        slo=judgement.slo if judgement else None,
        slo_verdict=judgement.slo_word if judgement else None,
        cost=cost,
        conditions=conditions,
    )
    status.history = [run_record(status, None)]
    return status
