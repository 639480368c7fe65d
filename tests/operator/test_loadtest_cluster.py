"""LoadTests end to end: real operator process, real API server, real model servers and workers as local processes.

Worker pods are kept Pending with the operator's worker node selector (no node carries the label),
because kwok would otherwise mark Job pods Succeeded without running anything. The test then runs each
worker exactly as its pod template says (see ``local_pods``), authenticated as the worker ServiceAccount.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_server.fleet import build_fleet
from modelpack_operator import labels as L
from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.model_server.conftest import TINY
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.harness import OperatorProcess, condition, events_for, get_status, wait_until
from tests.operator.local_pods import LocalProcess, report_pod_status, run_job_pod, run_server_deployment

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
MODELS = ["m-0", "m-1", "m-2", "m-3"]
PENDING_WORKERS = {"MODELPACK_WORKER_NODE_SELECTOR": json.dumps({"modelpack.dev/pool": "no-such-pool"})}
SMALL = {"type": "x86", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
# The first LoadTest generates bodies from each model's metadata (the default); the others send this given
# V2 body (text input), so both payload modes go through the whole path.
PAYLOAD = {
    "mode": "given",
    "request": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a short request"]}]},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store")
    build_fleet(path, MODELS, TINY)
    return path


@pytest.fixture
def processes() -> Iterator[list[LocalProcess]]:
    started: list[LocalProcess] = []
    yield started
    for proc in started:
        proc.stop()


def _apply(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def _ready_pack(cp: ControlPlane, kube: Kube, namespace: str, store: Path, op: OperatorProcess) -> None:
    doc = pack_doc(namespace=namespace, store={"uri": f"file://{store}"}, models={"names": MODELS}, compute=SMALL)
    _apply(cp, namespace, doc)
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "pack Ready", op=op)


def _local_servers(kube: Kube, namespace: str, tmp: Path, processes: list[LocalProcess]) -> dict[str, str]:
    """One local server per server Deployment; returns Service URL -> local URL (the test's cluster DNS)."""
    urls = {}
    for dep in kube.list("apps/v1", "Deployment", namespace, L.pack_selector("bert")):
        url, proc = run_server_deployment(dep, tmp)
        processes.append(proc)
        port = dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        urls[f"http://{dep['metadata']['name']}.{namespace}.svc.cluster.local:{port}"] = url
    return urls


def _job(kube: Kube, namespace: str, name: str, op: OperatorProcess) -> dict[str, Any]:
    return wait_until(lambda: kube.get("batch/v1", "Job", namespace, f"{name}-load"), f"Job {name}-load", op=op)


def _run_workers(
    cp: ControlPlane,
    kube: Kube,
    job: dict[str, Any],
    service_urls: dict[str, str],
    tmp: Path,
    processes: list[LocalProcess],
) -> list[int]:
    namespace = job["metadata"]["namespace"]
    token = cp.service_account_kubeconfig(namespace, job["spec"]["template"]["spec"]["serviceAccountName"])
    workers = [
        run_job_pod(kube, job, i, service_urls, token, tmp / job["metadata"]["name"])
        for i in range(job["spec"]["completions"])
    ]
    processes.extend(workers)
    return [w.wait(timeout=120) for w in workers]


def _finished(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = get_status(kube, "LoadTest", namespace, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def test_loadtest_runs_workers_merges_results_and_judges_the_slo(
    crds: ControlPlane,
    kube: Kube,
    namespace: str,
    store: Path,
    tmp_path: Path,
    processes: list[LocalProcess],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    # Shards of one server each: the workers must read the union of the route table's ConfigMaps.
    op = start_operator({**PENDING_WORKERS, "MODELPACK_RECONCILE_ROUTE_TABLE_SHARD_BYTES": "256"})
    _ready_pack(crds, kube, namespace, store, op)
    assert get_status(kube, "ModelPack", namespace, "bert")["routeTableShards"] == 2
    service_urls = _local_servers(kube, namespace, tmp_path, processes)
    load = {"rate": 30, "duration": "2s", "warmup": "500ms"}
    doc = loadtest_doc(namespace=namespace, workers=2, load=load, slo={"p99LatencyMs": 10000})
    _apply(crds, namespace, doc)
    job = _job(kube, namespace, "lt", op)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert job["metadata"]["ownerReferences"][0]["kind"] == "LoadTest"
    routes = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "routes")
    assert [src["configMap"]["name"] for src in routes["projected"]["sources"]] == ["bert-routes", "bert-routes-1"]
    running = get_status(kube, "LoadTest", namespace, "lt")
    assert running["phase"] == "Running" and condition(running, "Complete")["status"] == "False"

    codes = _run_workers(crds, kube, job, service_urls, tmp_path, processes)
    assert codes == [0, 0], [p.log()[-2000:] for p in processes]
    status = wait_until(lambda: _finished(kube, namespace, "lt"), "LoadTest finished", op=op)
    assert status["phase"] == "Succeeded", condition(status, "Complete")["message"]
    assert status["workersSucceeded"] == 2
    results = status["results"]
    per_worker = []
    for i in range(2):
        cm = kube.get("v1", "ConfigMap", namespace, f"lt-result-{i}")
        assert cm is not None and cm["metadata"]["ownerReferences"][0]["name"] == "lt"
        per_worker.append(json.loads(cm["data"]["outcome.json"]))
    assert results["requests"] > 0
    assert {m["model"] for m in results["perModel"]} == set(MODELS)  # models of both shards were reached
    assert results["requests"] == sum(w["tally"]["requests"] for w in per_worker)
    assert results["errors"] == 0
    assert results["latencyMs"]["p99"] >= results["latencyMs"]["p50"] > 0
    assert status["sloVerdict"] == "Met" and status["slo"]["met"] is True
    assert condition(status, "Complete")["status"] == "True"
    assert condition(status, "SLOMet")["status"] == "True"
    wait_until(
        lambda: {"Running", "Succeeded"} <= {e["reason"] for e in events_for(kube, namespace, "lt")}, "events", op=op
    )
    # Cost: the pack's 2 server pods (100m CPU each) on c6i.4xlarge kwok nodes, priced from the built-in table.
    cost = status["cost"]
    assert cost["hourlyCost"] > 0 and cost["currency"] == "USD"
    assert cost["costPerMillionRequests"] == pytest.approx(
        cost["hourlyCost"] / (results["throughput"] * 3600) * 1e6, rel=1e-3
    )

    # The same pack, an SLO no server can meet: Failed, with the bound and the measured value.
    _apply(
        crds,
        namespace,
        loadtest_doc(name="strict", namespace=namespace, load=load, slo={"p50LatencyMs": 0.001}, payload=PAYLOAD),
    )
    codes = _run_workers(crds, kube, _job(kube, namespace, "strict", op), service_urls, tmp_path, processes)
    assert codes == [0]
    status = wait_until(lambda: _finished(kube, namespace, "strict"), "strict LoadTest finished", op=op)
    assert status["phase"] == "Failed" and status["sloVerdict"] == "Missed"
    assert condition(status, "Complete")["reason"] == "SLOMissed"
    assert condition(status, "SLOMet")["status"] == "False"
    assert "p50 latency" in condition(status, "SLOMet")["message"]

    # A short sweep over 2 workers: every step's figures, and the highest rate that met the SLO.
    sweep = {"mode": "sweep", "sweep": {"startRate": 10, "stepRate": 10, "maxRate": 20, "stepDuration": "1s"}}
    doc = loadtest_doc(
        name="sweep",
        namespace=namespace,
        workers=2,
        load={**sweep, "rate": None, "duration": "1s", "warmup": "500ms"},
        slo={"p99LatencyMs": 10000},
        payload=PAYLOAD,
    )
    _apply(crds, namespace, doc)
    codes = _run_workers(crds, kube, _job(kube, namespace, "sweep", op), service_urls, tmp_path, processes)
    assert codes == [0, 0]
    status = wait_until(lambda: _finished(kube, namespace, "sweep"), "sweep finished", op=op)
    assert status["phase"] == "Succeeded", condition(status, "Complete")["message"]
    assert [step["rate"] for step in status["sweep"]["steps"]] == [10, 20]
    assert status["sweep"]["maxRateMeetingSlo"] == 20

    # No SLO, and every request refused (an input the servers' models do not take): not a success with RPS 0,
    # but Failed naming the dominant cause.
    refused = {
        "mode": "given",
        "request": {"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]},
    }
    _apply(crds, namespace, loadtest_doc(name="refused", namespace=namespace, load=load, payload=refused))
    codes = _run_workers(crds, kube, _job(kube, namespace, "refused", op), service_urls, tmp_path, processes)
    assert codes == [0], [p.log()[-2000:] for p in processes]
    status = wait_until(lambda: _finished(kube, namespace, "refused"), "refused finished", op=op)
    assert status["phase"] == "Failed" and status["sloVerdict"] == "None"
    complete = condition(status, "Complete")
    assert complete["reason"] == "RequestsFailed"
    assert "100% of" in complete["message"] and "mostly http4xx" in complete["message"], complete["message"]


def test_missing_modelpack_waits_with_reason_and_event_then_starts(
    crds: ControlPlane, kube: Kube, namespace: str, store: Path, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator(PENDING_WORKERS)
    _apply(crds, namespace, loadtest_doc(namespace=namespace))
    status = wait_until(
        lambda: (s := get_status(kube, "LoadTest", namespace, "lt")).get("phase") == "Pending" and s, "Pending", op=op
    )
    complete = condition(status, "Complete")
    assert complete["status"] == "False" and complete["reason"] == "ModelPackNotFound"
    assert "'bert'" in complete["message"] and "spec.target.modelPack" in complete["message"]
    wait_until(
        lambda: any(e["reason"] == "ModelPackNotFound" for e in events_for(kube, namespace, "lt")), "event", op=op
    )
    assert kube.get("batch/v1", "Job", namespace, "lt-load") is None
    _ready_pack(crds, kube, namespace, store, op)
    _job(kube, namespace, "lt", op)
    assert get_status(kube, "LoadTest", namespace, "lt")["phase"] == "Running"
    assert op.alive()


def test_worker_that_fails_reports_why_and_fails_the_loadtest(
    crds: ControlPlane,
    kube: Kube,
    namespace: str,
    store: Path,
    tmp_path: Path,
    processes: list[LocalProcess],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    op = start_operator(PENDING_WORKERS)
    _ready_pack(crds, kube, namespace, store, op)
    doc = loadtest_doc(namespace=namespace, target={"models": {"selection": "list", "names": ["not-in-pack"]}})
    _apply(crds, namespace, doc)
    codes = _run_workers(crds, kube, _job(kube, namespace, "lt", op), {}, tmp_path, processes)
    assert codes == [1]
    status = wait_until(lambda: _finished(kube, namespace, "lt"), "LoadTest finished", op=op)
    assert status["phase"] == "Failed"
    complete = condition(status, "Complete")
    assert complete["reason"] == "WorkerFailed"
    assert "worker 0" in complete["message"] and "not-in-pack" in complete["message"]
    wait_until(
        lambda: any(
            e["reason"] == "WorkerFailed" and e["type"] == "Warning" for e in events_for(kube, namespace, "lt")
        ),
        "WorkerFailed warning event",
        op=op,
    )


def test_job_completing_without_results_fails_with_results_missing(
    crds: ControlPlane, kube: Kube, namespace: str, store: Path, start_operator: Callable[..., OperatorProcess]
) -> None:
    # No worker node selector: kwok runs the worker pods "successfully" without running the worker at all,
    # which is exactly a worker that exits 0 without writing its result.
    op = start_operator()
    _ready_pack(crds, kube, namespace, store, op)
    _apply(crds, namespace, loadtest_doc(namespace=namespace, workers=2))
    status = wait_until(lambda: _finished(kube, namespace, "lt"), "LoadTest finished", timeout=90, op=op)
    assert status["phase"] == "Failed"
    complete = condition(status, "Complete")
    assert complete["reason"] == "ResultsMissing"
    assert "lt-result-0" in complete["message"] and "lt-result-1" in complete["message"]


def test_deleting_a_running_loadtest_garbage_collects_its_job(
    crds: ControlPlane, kube: Kube, namespace: str, store: Path, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator(PENDING_WORKERS)
    _ready_pack(crds, kube, namespace, store, op)
    _apply(crds, namespace, loadtest_doc(namespace=namespace))
    _job(kube, namespace, "lt", op)
    crds.kubectl("delete", "loadtests.modelpack.dev", "lt", "-n", namespace)
    wait_until(lambda: kube.get("batch/v1", "Job", namespace, "lt-load") is None, "Job garbage-collected", op=op)
    wait_until(lambda: not kube.list("v1", "Pod", namespace, f"{L.LOADTEST}=lt"), "worker pods gone", op=op)
    assert op.alive()


def test_worker_pod_exiting_1_fails_the_job_by_policy_and_the_loadtest_with_the_reason(
    crds: ControlPlane, kube: Kube, namespace: str, store: Path, start_operator: Callable[..., OperatorProcess]
) -> None:
    # The worker pod (Pending: no node matches) is marked Failed with exit code 1 through the status
    # subresource, as a kubelet would report it; the real Job controller applies the podFailurePolicy.
    op = start_operator(PENDING_WORKERS)
    _ready_pack(crds, kube, namespace, store, op)
    _apply(crds, namespace, loadtest_doc(namespace=namespace))
    _job(kube, namespace, "lt", op)
    pod = wait_until(lambda: kube.list("v1", "Pod", namespace, f"{L.LOADTEST}=lt"), "worker pod", op=op)[0]
    now = "2026-01-01T00:00:00Z"
    terminated = {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}
    report_pod_status(crds, pod, {"phase": "Failed"}, worker={"state": {"terminated": terminated}})
    job = wait_until(
        lambda: (
            (j := kube.get("batch/v1", "Job", namespace, "lt-load"))
            and any(c["type"] == "Failed" and c["status"] == "True" for c in j["status"].get("conditions", []))
            and j
        ),
        "Job failed by its podFailurePolicy",
        op=op,
    )
    assert job["status"].get("failed") == 1  # no retry: the policy failed the Job on the first exit 1
    lt = wait_until(lambda: _finished(kube, namespace, "lt"), "LoadTest finished", op=op)
    complete = condition(lt, "Complete")
    assert lt["phase"] == "Failed" and complete["reason"] == "WorkerFailed"
    assert "PodFailurePolicy" in complete["message"] and "lt-result-0" in complete["message"]


def _shape(value: Any) -> Any:
    """What a status looks like without its measured values: keys, types, and the first element of lists."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def test_the_operator_and_modelpack_run_write_the_same_status(
    crds: ControlPlane,
    kube: Kube,
    namespace: str,
    store: Path,
    tmp_path: Path,
    processes: list[LocalProcess],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """Parity by construction: one LoadTest through both adapters, against the same servers, 2 workers each."""
    op = start_operator(PENDING_WORKERS)
    _ready_pack(crds, kube, namespace, store, op)
    service_urls = _local_servers(kube, namespace, tmp_path, processes)
    load = {"rate": 20, "duration": "2s", "warmup": "500ms"}
    doc = loadtest_doc(name="parity", namespace=namespace, workers=2, load=load, slo={"p50LatencyMs": 0.001})
    _apply(crds, namespace, {**doc, "spec": {**doc["spec"], "payload": PAYLOAD}})
    assert _run_workers(crds, kube, _job(kube, namespace, "parity", op), service_urls, tmp_path, processes) == [0, 0]
    cluster = wait_until(lambda: _finished(kube, namespace, "parity"), "parity finished", op=op)

    local_doc = {**doc, "metadata": {"name": "parity"}, "spec": {**doc["spec"], "payload": PAYLOAD}}
    path = tmp_path / "parity.yaml"
    path.write_text(yaml.safe_dump(local_doc))
    endpoints = [arg for url in service_urls.values() for arg in ("--endpoint", url)]
    done = subprocess.run(
        [sys.executable, "-m", "modelpack.cli.main", "run", "-f", str(path), *endpoints, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the SLO is missed on both
    local = json.loads((tmp_path / "o" / "results.json").read_text())

    assert local["phase"] == cluster["phase"] == "Failed"
    assert local["sloVerdict"] == cluster["sloVerdict"] == "Missed"

    def conditions(status: dict[str, Any]) -> list[tuple[str, str, str]]:
        return sorted((c["type"], c["status"], c["reason"]) for c in status["conditions"])

    assert conditions(local) == conditions(cluster)
    assert local["workersSucceeded"] == cluster["workersSucceeded"] == 2
    assert local["slo"]["violations"][0].split(" ")[:2] == cluster["slo"]["violations"][0].split(" ")[:2]
    assert _shape(local["results"]) == _shape(cluster["results"])
    assert local["results"]["requests"] == cluster["results"]["requests"]  # the same plan, both workers
    cluster_only = {"observedGeneration", "cost"}  # cost: the cluster prices its nodes; `modelpack run` needs a price
    assert set(local) - cluster_only == set(cluster) - cluster_only
