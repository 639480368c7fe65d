"""The LoadTest's Indexed Job, the worker RBAC, and the env contract with `modelpack worker`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelpack_operator import workerenv as E
from modelpack_operator.builders.loadtest_job import job_name, loadtest_job, planned_seconds
from modelpack_operator.builders.names import child_name
from modelpack_operator.builders.rbac import worker_rbac
from modelpack_operator.settings import WorkerSettings
from tests.operator.factories import make_loadtest

START = 1_800_000_000.0


def _job(settings: WorkerSettings | None = None, **spec: Any) -> dict[str, Any]:
    return loadtest_job(make_loadtest(**spec), ["bert-routes"], START, settings or WorkerSettings())


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_indexed_job_with_one_pod_per_worker_owned_by_the_loadtest() -> None:
    job = _job(workers=3, ttlSecondsAfterFinished=60)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["backoffLimit"] == 1
    fail_job = spec["podFailurePolicy"]["rules"][0]
    assert fail_job["action"] == "FailJob" and fail_job["onExitCodes"]["values"] == [1, 2]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "LoadTest"
    assert job["metadata"]["name"] == "lt-load"


def test_workers_get_the_spec_start_time_index_and_route_table() -> None:
    job = _job(workers=2)
    env = _env(job)
    assert json.loads(env[E.SPEC])["target"]["modelPack"] == "bert"
    assert env[E.WORKERS] == "2"
    assert env[E.START_AT] == "2027-01-15T08:00:00.000000Z"
    assert env[E.INDEX] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert env[E.ROUTES] == "/etc/modelpack/routes"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "modelpack-loadtest-worker"
    shard = {"configMap": {"name": "bert-routes", "items": [{"key": "routes.json", "path": "routes-0.json"}]}}
    assert {"name": "routes", "projected": {"sources": [shard]}} in pod["volumes"]


def test_every_route_table_shard_is_mounted_in_one_directory() -> None:
    job = loadtest_job(make_loadtest(), ["bert-routes", "bert-routes-1", "bert-routes-2"], START, WorkerSettings())
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "routes")
    mounted = [(s["configMap"]["name"], s["configMap"]["items"][0]["path"]) for s in volume["projected"]["sources"]]
    names = ["bert-routes", "bert-routes-1", "bert-routes-2"]
    assert mounted == [(name, f"routes-{k}.json") for k, name in enumerate(names)]


def test_the_env_the_job_sets_is_what_the_worker_parses() -> None:
    job = _job(workers=2)
    env = {k: v for k, v in _env(job).items() if isinstance(v, str)}
    env.update({E.NAMESPACE: "ns", E.INDEX: "1"})
    cfg = E.from_env(env)
    assert (cfg.loadtest, cfg.namespace, cfg.index, cfg.workers, cfg.uid) == ("lt", "ns", 1, 2, "lt-uid")
    assert cfg.start_at == pytest.approx(START)
    assert cfg.spec.load.rate == 20


def test_deadline_bounds_the_run_including_sweeps() -> None:
    sweep = {"mode": "sweep", "sweep": {"startRate": 10, "stepRate": 10, "maxRate": 50, "stepDuration": "5s"}}
    lt = make_loadtest(load={**sweep, "rate": None, "warmup": "2s"}, slo={"p99LatencyMs": 50})
    assert planned_seconds(lt.spec) == 2 + 5 * 5
    job = loadtest_job(lt, ["r"], START, WorkerSettings(start_delay_seconds=10))
    assert job["spec"]["activeDeadlineSeconds"] == 27 + 10 + 300


def test_worker_node_selector_setting_reaches_the_pods() -> None:
    job = _job(WorkerSettings(node_selector={"pool": "loadgen"}))
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "loadgen"}


def test_long_names_stay_within_63_characters_and_unique() -> None:
    a, b = "a" * 60, "a" * 59 + "b"
    assert len(child_name(a, "load")) <= 63 and len(child_name(b, "load")) <= 63
    assert child_name(a, "load") != child_name(b, "load")
    assert job_name("short") == "short-load"


def test_worker_role_allows_only_writing_configmaps() -> None:
    sa, role, binding = worker_rbac("ns", "modelpack-loadtest-worker")
    assert sa["kind"] == "ServiceAccount"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "get"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelpack-loadtest-worker", "namespace": "ns"}]
