"""Every branch of a LoadTest's life a user can meet, reconciled against an in-memory API: waiting for the pack,
starting the Job, the Job lost, workers failing, results that do not merge, the SLO met or missed, most requests
failed, oversized histograms kept out of status, the pack deleted mid-test, and a spec the workers cannot plan."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.api.common import API_VERSION
from modelpack.loadgen.outcome import LoadOutcome
from modelpack.loadgen.tally import Tally
from modelpack_operator.reconcile import loadtest as R
from modelpack_operator.results import result_configmap
from modelpack_operator.settings import OperatorSettings
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.harness import condition
from tests.operator.memkube import MemKube

SETTINGS = OperatorSettings()
RBAC = "rbac.authorization.k8s.io/v1"
READY = {"phase": "Ready", "routeTableShards": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "X"}]}


def _cluster(**spec: Any) -> MemKube:
    pack = pack_doc()
    pack["status"] = READY
    return MemKube(pack, loadtest_doc(**spec))


def _reconcile(kube: MemKube, name: str = "lt") -> dict[str, Any]:
    body = kube.get(API_VERSION, "LoadTest", "ns", name)
    assert body is not None
    return R.reconcile_loadtest(kube.as_kube(), body, SETTINGS)


def _outcome(
    successes: int = 100, errors: int = 0, latency_s: float = 0.010, bucket_seconds: int = 1
) -> dict[str, Any]:
    tally = Tally(bucket_seconds=bucket_seconds)
    for i in range(successes):
        tally.record_success("model-00000", i * 0.01, latency_s, latency_s, 0.0)
    for _ in range(errors):
        tally.record_failure("model-00001", 0.5, 0.0, "http5xx", 503)
    tally.duration_seconds = 2.0
    tally.planned_requests = float(successes + errors)
    return LoadOutcome("constant-rate", tally).to_json()


def _report(kube: MemKube, index: int, **kwargs: Any) -> None:
    lt = kube.get(API_VERSION, "LoadTest", "ns", "lt")
    assert lt is not None
    kube.put(result_configmap("lt", lt["metadata"]["uid"], "ns", index, **kwargs))


def _started(**spec: Any) -> MemKube:
    kube = _cluster(**spec)
    assert _reconcile(kube)["phase"] == "Running"
    return kube


def _reasons(kube: MemKube) -> list[str]:
    return [e["reason"] for e in kube.events]


def test_waits_for_its_pack_then_starts_the_job_and_its_workers_rbac() -> None:
    kube = MemKube(loadtest_doc())
    status = _reconcile(kube)
    assert status["phase"] == "Pending" and condition(status, "Complete")["reason"] == "ModelPackNotFound"
    pack = pack_doc()
    pack["status"] = {"phase": "Progressing", "conditions": [{"type": "Ready", "status": "False", "message": "2/3"}]}
    kube.put(pack)
    status = _reconcile(kube)
    assert (
        condition(status, "Complete")["reason"] == "WaitingForModelPack" and "2/3" in status["conditions"][0]["message"]
    )
    pack["status"] = READY
    kube.put(pack)
    status = _reconcile(kube)
    assert status["phase"] == "Running" and status["startTime"]
    assert kube.get("batch/v1", "Job", "ns", "lt-load") is not None
    assert {k for _, k, _ in kube.writes if k in ("ServiceAccount", "Role", "RoleBinding")} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }
    assert _reasons(kube) == ["ModelPackNotFound", "WaitingForModelPack", "Running"]


def test_slo_met_merges_every_workers_results() -> None:
    kube = _started(workers=2, slo={"p99LatencyMs": 100})
    _report(kube, 0, outcome=_outcome(100))
    status = _reconcile(kube)
    assert status["phase"] == "Running" and "1/2 workers reported" in condition(status, "Complete")["message"]
    _report(kube, 1, outcome=_outcome(50))
    status = _reconcile(kube)
    assert status["phase"] == "Succeeded" and status["sloVerdict"] == "Met"
    assert status["results"]["requests"] == 150 and status["workersSucceeded"] == 2
    assert condition(status, "SLOMet")["status"] == "True"
    assert _reconcile(kube) == status  # terminal: nothing more happens


def test_slo_missed_names_the_bound_and_the_measured_value() -> None:
    kube = _started(slo={"p99LatencyMs": 5})
    _report(kube, 0, outcome=_outcome(100, latency_s=0.050))
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and status["sloVerdict"] == "Missed"
    assert condition(status, "Complete")["reason"] == "SLOMissed"
    assert "p99 latency 50.0 ms > 5 ms" in condition(status, "SLOMet")["message"]
    assert _reasons(kube)[-1] == "SLOMissed"


def test_most_requests_failed_is_a_failure_without_an_slo() -> None:
    kube = _started()
    _report(kube, 0, outcome=_outcome(10, errors=90))
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and status["sloVerdict"] == "None"
    assert condition(status, "Complete")["reason"] == "RequestsFailed"
    assert "90% of 100 requests failed, mostly http5xx (90)" in condition(status, "Complete")["message"]


def test_a_failed_worker_fails_the_test_with_its_error() -> None:
    kube = _started(workers=2)
    _report(kube, 1, error="cannot reach http://bert-s0000: connection refused")
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and condition(status, "Complete")["reason"] == "WorkerFailed"
    assert "worker 1: cannot reach" in condition(status, "Complete")["message"]


def test_a_job_deleted_before_every_worker_reported_is_lost() -> None:
    kube = _started(workers=2)
    _report(kube, 0, outcome=_outcome())
    assert kube.delete("batch/v1", "Job", "ns", "lt-load")
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and condition(status, "Complete")["reason"] == "JobLost"
    assert "missing: lt-result-1" in condition(status, "Complete")["message"]


def test_a_job_complete_without_results_names_the_missing_config_maps() -> None:
    kube = _started()
    job = kube.get("batch/v1", "Job", "ns", "lt-load")
    assert job is not None
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    kube.put(job)
    status = _reconcile(kube)
    assert (
        condition(status, "Complete")["reason"] == "ResultsMissing"
        and "lt-result-0" in status["conditions"][0]["message"]
    )


def test_results_that_cannot_be_merged_are_inconsistent() -> None:
    kube = _started(workers=2)
    _report(kube, 0, outcome=_outcome(bucket_seconds=1))
    _report(kube, 1, outcome=_outcome(bucket_seconds=2))
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and condition(status, "Complete")["reason"] == "ResultsInconsistent"


def test_histograms_too_large_for_status_stay_in_the_config_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = _started()
    _report(kube, 0, outcome=_outcome())
    monkeypatch.setattr(R, "HISTOGRAMS_IN_STATUS_MAX", 10)
    status = _reconcile(kube)
    assert status["phase"] == "Succeeded"
    assert "histogram" not in status["results"] and "serviceHistogram" not in status["results"]
    assert status["results"]["latencyMs"]["p50"] > 0  # the figures are still there


def test_a_pack_deleted_mid_test_does_not_stop_the_judgement() -> None:
    kube = _started()
    assert kube.delete(API_VERSION, "ModelPack", "ns", "bert")
    _report(kube, 0, outcome=_outcome())
    assert _reconcile(kube)["phase"] == "Succeeded"


def test_a_spec_the_workers_cannot_plan_is_invalid_before_any_job() -> None:
    kube = _cluster(load={"rate": 10, "duration": "2s", "warmup": "5s"})
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and condition(status, "Complete")["reason"] == "InvalidSpec"
    assert "load.duration (2s) is shorter than load.warmup (5s)" in condition(status, "Complete")["message"]
    assert kube.get("batch/v1", "Job", "ns", "lt-load") is None


def test_the_workers_account_is_owned_by_every_loadtest_using_it() -> None:
    kube = _started()
    kube.put(loadtest_doc(name="second"))
    assert _reconcile(kube, "second")["phase"] == "Running"
    for kind, api_version in (("ServiceAccount", "v1"), ("Role", RBAC), ("RoleBinding", RBAC)):
        obj = kube.get(api_version, kind, "ns", SETTINGS.worker.service_account)
        assert obj is not None
        owners = obj["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owners] == [("LoadTest", "lt"), ("LoadTest", "second")], kind
        assert not any(o.get("controller") for o in owners)  # shared: the last owner's deletion collects it
