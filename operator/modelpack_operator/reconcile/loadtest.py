"""Reconcile one LoadTest: wait for its ModelPack, start the worker Job once per spec, merge the workers' results.

A run belongs to one ``metadata.generation`` (one spec). Its Job is created exactly once (``create``, not
apply: its start time is part of it); the run is judged by what the workers reported through their result
ConfigMaps, with the Job's own status only explaining failures (a worker that crashed, ran past its deadline,
or exited without reporting). When the spec changes, the run of the old spec is over: a finished one keeps its
line in ``status.history``, a running one is stopped (its Job and results deleted) and recorded as
``Superseded``, and the new spec runs from the start, under names of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from modelpack.api.common import API_VERSION
from modelpack.api.loading import format_validation_error
from modelpack.api.loadtest import LoadTest, LoadTestStatus, RunRecord
from modelpack.conditions import Cond, find, is_true, merge_conditions, now_rfc3339
from modelpack.loadgen.history import run_record, with_run
from modelpack.loadgen.judgement import judge
from modelpack.loadgen.outcome import merge_outcomes
from modelpack.loadgen.worker_plan import make_plan
from modelpack_operator import events
from modelpack_operator import labels as L
from modelpack_operator.builders.loadtest_job import generation_of, job_name, loadtest_job, result_name, rfc3339
from modelpack_operator.builders.rbac import loadtest_owner, worker_rbac
from modelpack_operator.builders.routes import route_table_names
from modelpack_operator.kube import Kube
from modelpack_operator.reconcile.apply import needs_apply
from modelpack_operator.reconcile.cost import loadtest_cost
from modelpack_operator.results import WorkerResult, read_result
from modelpack_operator.settings import OperatorSettings
from modelpack_operator.status import write_status

log = logging.getLogger(__name__)
TERMINAL_PHASES = ("Succeeded", "Failed")
HISTOGRAMS_IN_STATUS_MAX = 64 * 1024


def parse_loadtest(body: dict[str, Any]) -> LoadTest:
    """The typed LoadTest, refused (ValueError naming the field) if it cannot be planned as the workers will."""
    try:
        lt = LoadTest.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
    except ValidationError as err:
        raise ValueError(format_validation_error(err)) from None
    make_plan(lt.spec)  # LoadgenError is a ValueError whose message names the field
    return lt


def _job_condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    cond = find(((job or {}).get("status") or {}).get("conditions"), type_)
    return cond if cond is not None and cond.get("status") == "True" else None


class _Step:
    """The status being built by one reconcile, plus the event (if any) the transition deserves."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.generation = int(body["metadata"].get("generation") or 1)
        self.previous: dict[str, Any] = body.get("status") or {}
        self.status: dict[str, Any] = {
            k: v for k, v in self.previous.items() if k in ("startTime", "workersSucceeded", "workersFailed", "history")
        }
        self.event: tuple[events.EventType, str, str] | None = None
        self.events: list[tuple[events.EventType, str, str]] = []
        """Events besides the transition's (a run replaced by a new spec)."""

    def new_spec(self) -> bool:
        """Whether the status describes a run of an earlier spec than the object's."""
        ran = self.previous.get("observedGeneration")
        return bool(self.previous.get("phase")) and ran is not None and int(ran) != self.generation

    def set(self, phase: str, reason: str, message: str, complete: bool = False, **fields: Any) -> None:
        self.status.update({"phase": phase, **fields})
        if phase in TERMINAL_PHASES:
            self.status["completionTime"] = now_rfc3339()
        self.conditions = [Cond("Complete", complete, reason, message)]
        if reason != self._previous_reason():
            kind: events.EventType = "Warning" if phase == "Failed" or reason == "ModelPackNotFound" else "Normal"
            self.event = (kind, reason, message)

    def _previous_reason(self) -> str | None:
        cond = find(self.previous.get("conditions"), "Complete")
        return cond.get("reason") if cond else None


def reconcile_loadtest(kube: Kube, body: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """One step of the LoadTest's life; returns the status written."""
    step = _Step(body)
    if step.new_spec():
        _replace_run(kube, step)
    elif step.previous.get("phase") in TERMINAL_PHASES:
        return step.previous
    step.conditions = []
    try:
        lt = parse_loadtest(body)
    except ValueError as err:
        step.set("Failed", "InvalidSpec", str(err))
        return _write(kube, step)
    _advance(kube, lt, step, settings)
    return _write(kube, step)


def _replace_run(kube: Kube, step: _Step) -> None:
    """The spec changed: record the run of the old spec, stop it if it still runs, and start over (history kept).

    A running test is superseded rather than finished first: its results would describe a spec that is no longer
    the LoadTest's, and Argo CD waits on the object's health, which only the new spec's run can give."""
    meta = step.body["metadata"]
    ran = int(step.previous["observedGeneration"])
    previous = _typed(step.previous)
    history = list(previous.history or [])
    phase = previous.phase
    running = phase not in TERMINAL_PHASES and previous.start_time is not None
    if phase in TERMINAL_PHASES:
        history = with_run(history, run_record(previous, ran))  # already there unless an older operator judged it
    elif running:
        history = with_run(history, run_record(previous, ran, superseded_at=now_rfc3339()))
    stopped = _delete_other_runs(kube, meta, step.generation)
    step.status = {"history": _dicts(history)} if history else {}
    if running:
        jobs = ", ".join(stopped) or job_name(meta["name"], ran)
        message = f"spec changed to generation {step.generation} while generation {ran} ran: stopped it (Job {jobs})"
    elif phase in TERMINAL_PHASES:
        message = f"spec changed to generation {step.generation}: running again (generation {ran} was {phase})"
    else:
        message = f"spec changed to generation {step.generation} before generation {ran} started"
    step.events.append(("Normal", "SpecChanged", message))


def _typed(status: dict[str, Any]) -> LoadTestStatus:
    """The status as its type; a history edited by hand into something else is dropped rather than stop the
    LoadTest (the rest is what the operator wrote)."""
    try:
        return LoadTestStatus.model_validate(status)
    except ValidationError as err:
        log.warning("status.history is not a list of runs, dropped: %s", format_validation_error(err))
        return LoadTestStatus.model_validate({k: v for k, v in status.items() if k != "history"})


def _dicts(history: list[RunRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in history]


def _delete_other_runs(kube: Kube, meta: dict[str, Any], generation: int) -> list[str]:
    """Delete this LoadTest's Jobs and result ConfigMaps of every other generation; the Jobs' names.

    The Job's pods go with it (background propagation), so load of an old spec stops within the pods' grace
    period; results are deleted because the run's line in the history is what is kept of them."""
    name, namespace, uid = meta["name"], meta["namespace"], meta.get("uid")
    deleted = []
    for api_version, kind, selector in (
        ("batch/v1", "Job", L.loadtest_selector(name)),
        ("v1", "ConfigMap", f"{L.loadtest_selector(name)},{L.COMPONENT}={L.RESULT_COMPONENT}"),
    ):
        for item in kube.list(api_version, kind, namespace, selector):
            item_meta = item["metadata"]
            owners = {o.get("uid") for o in item_meta.get("ownerReferences") or []}
            if uid not in owners or (item_meta.get("labels") or {}).get(L.GENERATION, "1") == str(generation):
                continue
            if kube.delete(api_version, kind, namespace, item_meta["name"]) and kind == "Job":
                deleted.append(item_meta["name"])
    return deleted


def _advance(kube: Kube, lt: LoadTest, step: _Step, settings: OperatorSettings) -> None:
    name, namespace = lt.metadata.name, lt.metadata.namespace or "default"
    pack_name = lt.spec.target.model_pack
    job = kube.get("batch/v1", "Job", namespace, job_name(name, generation_of(lt)))
    started = "startTime" in step.status
    if job is None and not started:
        pack = kube.get(API_VERSION, "ModelPack", namespace, pack_name)
        if pack is None:
            step.set(
                "Pending",
                "ModelPackNotFound",
                f"ModelPack {pack_name!r} (spec.target.modelPack) not found in namespace {namespace}; "
                "the test starts once it exists and is Ready",
            )
            return
        pack_status = pack.get("status") or {}
        if not is_true(pack_status.get("conditions"), "Ready"):
            ready = find(pack_status.get("conditions"), "Ready") or {}
            why = ready.get("message") or "not reconciled yet"
            step.set(
                "Pending",
                "WaitingForModelPack",
                f"waiting for ModelPack {pack_name} to be Ready (phase {pack_status.get('phase', 'unknown')}: {why})",
            )
            return
        _start(kube, lt, step, settings, int(pack_status.get("routeTableShards") or 1))
        return
    _judge(kube, lt, step, job, settings)


def _start(kube: Kube, lt: LoadTest, step: _Step, settings: OperatorSettings, shards: int) -> None:
    namespace = lt.metadata.namespace or "default"
    if settings.worker.manage_rbac:
        account = settings.worker.service_account
        live_sa = kube.get("v1", "ServiceAccount", namespace, account) or {}
        uid = lt.metadata.uid or ""
        others = [
            o
            for o in live_sa.get("metadata", {}).get("ownerReferences") or []
            if o.get("kind") == "LoadTest" and o.get("uid") != uid
        ]
        for obj in worker_rbac(namespace, account, [*others, loadtest_owner(lt.metadata.name, uid)]):
            live = kube.get(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
            if needs_apply(obj, live):
                kube.apply(obj)
    start_at = time.time() + settings.worker.start_delay_seconds
    job = loadtest_job(lt, route_table_names(lt.spec.target.model_pack, shards), start_at, settings.worker)
    created = kube.create(job)
    if created is None:  # created by an earlier run that died before writing status: keep its start time
        existing = kube.get("batch/v1", "Job", namespace, job["metadata"]["name"]) or job
        start = _env_value(existing, "MODELPACK_START_AT") or rfc3339(start_at)
    else:
        start = rfc3339(start_at)
    workers = lt.spec.workers
    step.set(
        "Running",
        "Running",
        f"{workers} workers of Job {job['metadata']['name']} start sending at {start}",
        startTime=start,
        workersSucceeded=0,
        workersFailed=0,
    )


def _env_value(job: dict[str, Any], name: str) -> str | None:
    for container in job["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            if env.get("name") == name:
                return str(env.get("value"))
    return None


def _judge(kube: Kube, lt: LoadTest, step: _Step, job: dict[str, Any] | None, settings: OperatorSettings) -> None:
    name, namespace = lt.metadata.name, lt.metadata.namespace or "default"
    workers = lt.spec.workers
    generation = generation_of(lt)
    job_named = job_name(name, generation)
    items = kube.list("v1", "ConfigMap", namespace, f"{L.loadtest_selector(name)},{L.COMPONENT}={L.RESULT_COMPONENT}")
    reports: dict[int, WorkerResult] = {}
    for item in items:
        owners = {o.get("uid") for o in item["metadata"].get("ownerReferences") or []}
        if lt.metadata.uid not in owners:  # left by an earlier LoadTest of the same name, not yet collected
            continue
        if (item["metadata"].get("labels") or {}).get(L.GENERATION, "1") != str(generation):
            continue  # a worker of an earlier spec's run, stopped but not yet gone
        result = read_result(item)
        if 0 <= result.index < workers:
            reports[result.index] = result
    ok = sorted(i for i, r in reports.items() if r.ok)
    failed = sorted(i for i, r in reports.items() if not r.ok)
    missing = [i for i in range(workers) if i not in reports]
    step.status.update(workersSucceeded=len(ok), workersFailed=len(failed))
    if failed:
        first = reports[failed[0]]
        more = f" ({len(failed)} workers failed)" if len(failed) > 1 else ""
        step.set("Failed", "WorkerFailed", f"worker {failed[0]}: {first.error}{more}")
        return
    if not missing:
        _succeed(kube, lt, step, [reports[i] for i in ok], settings)
        return
    names = ", ".join(result_name(name, i, generation) for i in missing[:5])
    if job is None:
        step.set(
            "Failed",
            "JobLost",
            f"Job {job_named} was deleted before every worker reported; missing: {names}",
        )
    elif cond := _job_condition(job, "Failed"):
        message = f"Job {job_named} failed ({cond.get('reason')}: {cond.get('message', '')}); missing: {names}"
        step.set("Failed", "WorkerFailed", message)
    elif _job_condition(job, "Complete"):
        step.set(
            "Failed",
            "ResultsMissing",
            f"Job {job_named} completed but {len(missing)} workers wrote no result ConfigMap: {names}",
        )
    else:
        step.set("Running", "Running", f"{len(ok)}/{workers} workers reported; waiting for {names}")


def _succeed(kube: Kube, lt: LoadTest, step: _Step, reports: list[WorkerResult], settings: OperatorSettings) -> None:
    try:
        outcome = merge_outcomes([r.outcome for r in reports if r.outcome is not None])
    except ValueError as err:
        step.set("Failed", "ResultsInconsistent", f"cannot merge worker results: {err}")
        return
    results = outcome.results
    judgement = judge(results, lt.spec.slo)
    fields = judgement.status_fields(results, outcome.sweep, loadtest_cost(kube, lt, results.throughput, settings))
    hists = ("histogram", "serviceHistogram")
    if sum(len(fields["results"].get(h, "")) for h in hists) > HISTOGRAMS_IN_STATUS_MAX:  # etcd's 1.5 MiB limit
        fields["results"] = {k: v for k, v in fields["results"].items() if k not in hists}
    done = judgement.complete
    step.set(fields.pop("phase"), done.reason, done.message, complete=True, **fields)
    step.conditions.append(judgement.slo_condition)


def _write(kube: Kube, step: _Step) -> dict[str, Any]:
    meta = step.body["metadata"]
    status = dict(step.status)
    phase = status.get("phase")
    if phase in TERMINAL_PHASES and not any(c.type == "Complete" and c.status for c in step.conditions):
        # A failed run is complete too: nothing more will happen to it.
        step.conditions = [
            Cond("Complete", True, c.reason, c.message) if c.type == "Complete" else c for c in step.conditions
        ]
    status["observedGeneration"] = step.generation
    status["conditions"] = merge_conditions(step.previous.get("conditions"), step.conditions, step.generation)
    status = {k: v for k, v in status.items() if v is not None}
    if phase in TERMINAL_PHASES:
        ended = _typed(status)
        status["history"] = _dicts(with_run(ended.history or [], run_record(ended, step.generation)))
    if status != step.previous:
        write_status(kube, "LoadTest", meta, status)
    obj = {"apiVersion": API_VERSION, "kind": "LoadTest", "metadata": meta}
    for event in [*step.events, *([step.event] if step.event is not None else [])]:
        events.record(kube, obj, *event)
    log.info("loadtest %s/%s: %s", meta["namespace"], meta["name"], phase)
    return status
