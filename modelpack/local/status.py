"""The LoadTest status a local run produces: the same object the operator writes to the cluster."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelpack.api.loadtest import Cost, LoadTestStatus, Results, Slo, SweepResult
from modelpack.conditions import Cond, merge_conditions, rfc3339
from modelpack.loadgen.history import run_record
from modelpack.loadgen.judgement import judge


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
    the fields and conditions the operator writes (:meth:`Judgement.status_fields`), with the run's line in
    ``history`` as the operator keeps it (a local run has no generation: it is one run of the YAML as given)."""
    fields: dict[str, Any] = {"startTime": rfc3339(started), "completionTime": rfc3339(finished)}
    conditions: list[Cond] = []
    if results is not None:
        judgement = judge(results, slo)
        fields.update(judgement.status_fields(results, sweep, cost))
        conditions = [judgement.complete, judgement.slo_condition]
    elif cost is not None:
        fields["cost"] = cost.to_dict()
    if results is None or interrupted or failure:  # partial results keep their verdict, not their phase
        why = ("Interrupted", "Stopped by the user.") if interrupted else ("Failed", failure or "no results")
        conditions[:1] = [Cond("Complete", False, *why)]
        fields.update(phase="Failed", workersSucceeded=0, workersFailed=workers)
    else:  # as on a cluster: a worker that returned results succeeded, whatever the results say
        fields.update(workersSucceeded=workers, workersFailed=0)
    fields["conditions"] = merge_conditions(None, conditions, None, fields["completionTime"])
    status = LoadTestStatus.model_validate(fields)
    status.history = [run_record(status, None)]
    return status
