"""Every branch of a LoadTest's life a user can meet, reconciled against an in-memory API: waiting for the pack,
starting the Job, the Job lost, workers failing, results that do not merge, the SLO met or missed, most requests
failed, oversized histograms kept out of status, the pack deleted mid-test, a spec the workers cannot plan, and a
spec edited (Git synced by Argo CD) after the run, before it started, or while it ran."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.api.common import API_VERSION
from modelpack.api.loadtest import HISTORY_MAX
from modelpack.loadgen.outcome import LoadOutcome
from modelpack.loadgen.tally import Tally
from modelpack_operator.builders.merge import deep_merge
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
    kwargs.setdefault("generation", lt["metadata"].get("generation", 1))
    kube.put(result_configmap("lt", lt["metadata"]["uid"], "ns", index, **kwargs))


def _edit(kube: MemKube, **spec: Any) -> None:
    """A spec change as the API server stores it: the spec merged, metadata.generation one up."""
    lt = kube.get(API_VERSION, "LoadTest", "ns", "lt")
    assert lt is not None
    lt["spec"] = deep_merge(lt["spec"], spec)
    lt["metadata"]["generation"] = lt["metadata"].get("generation", 1) + 1
    kube.put(lt)


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


def test_a_spec_edited_after_the_run_runs_again_and_keeps_the_first_in_history() -> None:
    kube = _started()
    _report(kube, 0, outcome=_outcome(100))
    first = _reconcile(kube)
    assert first["phase"] == "Succeeded" and [h["generation"] for h in first["history"]] == [1]
    _edit(kube, load={"rate": 40})
    status = _reconcile(kube)
    assert status["phase"] == "Running" and status["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in status["conditions"])
    assert "results" not in status and status["startTime"] != first.get("completionTime")
    assert kube.get("batch/v1", "Job", "ns", "lt-load") is None  # the first run's Job and results are gone
    assert kube.get("v1", "ConfigMap", "ns", "lt-result-0") is None
    job = kube.get("batch/v1", "Job", "ns", "lt-load-g2")
    assert job is not None and job["metadata"]["labels"]["modelpack.dev/generation"] == "2"
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELPACK_LOADTEST_GENERATION"] == "2" and '"rate":40' in env["MODELPACK_LOADTEST_SPEC"]
    (kept,) = status["history"]
    assert kept == {
        "generation": 1,
        "phase": "Succeeded",
        "reason": "Succeeded",
        "startTime": first["startTime"],
        "completionTime": first["completionTime"],
        "requests": 100,
        "throughput": first["results"]["throughput"],
        "p50Ms": first["results"]["latencyMs"]["p50"],
        "p99Ms": first["results"]["latencyMs"]["p99"],
        "errors": 0,
        "sloVerdict": "None",
    }
    assert "SpecChanged" in _reasons(kube)
    _report(kube, 0, outcome=_outcome(50, latency_s=0.020))
    done = _reconcile(kube)
    assert done["phase"] == "Succeeded" and done["results"]["requests"] == 50
    assert [(h["generation"], h["requests"]) for h in done["history"]] == [(2, 50), (1, 100)]
    assert _reconcile(kube) == done  # terminal again: nothing more happens


def test_history_keeps_the_last_runs_newest_first() -> None:
    kube = _started()
    for _ in range(HISTORY_MAX + 2):
        _report(kube, 0, outcome=_outcome(10))
        assert _reconcile(kube)["phase"] == "Succeeded"
        _edit(kube, load={"rate": 21})
        assert _reconcile(kube)["phase"] == "Running"
    status = _reconcile(kube)
    generations = [h["generation"] for h in status["history"]]
    assert generations == [7, 6, 5, 4, 3] and len(generations) == HISTORY_MAX
    assert len(kube.list("batch/v1", "Job", "ns")) == 1  # only the running generation's Job is left


def test_a_spec_edited_mid_run_supersedes_it_and_ignores_its_late_results() -> None:
    kube = _started(workers=2)
    _report(kube, 0, outcome=_outcome(100))
    running = _reconcile(kube)
    assert running["phase"] == "Running" and running["workersSucceeded"] == 1
    _edit(kube, workers=1)
    status = _reconcile(kube)
    assert status["phase"] == "Running" and status["workersSucceeded"] == 0
    (superseded,) = status["history"]
    assert superseded["generation"] == 1 and superseded["phase"] == superseded["reason"] == "Superseded"
    assert superseded["startTime"] == running["startTime"] and "requests" not in superseded
    assert kube.get("batch/v1", "Job", "ns", "lt-load") is None
    assert kube.get("v1", "ConfigMap", "ns", "lt-result-0") is None
    changed = next(e for e in kube.events if e["reason"] == "SpecChanged")
    assert "while generation 1 ran: stopped it (Job lt-load)" in changed["message"]
    _report(kube, 1, outcome=_outcome(100), generation=1)  # a worker of the old run, still terminating
    _report(kube, 0, outcome=_outcome(10), generation=1)
    assert _reconcile(kube)["phase"] == "Running"  # neither counts for generation 2
    _report(kube, 0, outcome=_outcome(30))
    done = _reconcile(kube)
    assert done["phase"] == "Succeeded" and done["results"]["requests"] == 30 and done["workersSucceeded"] == 1
    assert [(h["generation"], h["phase"]) for h in done["history"]] == [(2, "Succeeded"), (1, "Superseded")]


def test_a_spec_edited_before_the_run_started_leaves_no_history() -> None:
    kube = MemKube(loadtest_doc())
    assert _reconcile(kube)["phase"] == "Pending"
    _edit(kube, load={"rate": 5})
    status = _reconcile(kube)
    assert status["phase"] == "Pending" and status["observedGeneration"] == 2 and "history" not in status


def test_an_invalid_edit_stops_the_run_and_a_fixed_one_runs() -> None:
    kube = _started()
    _edit(kube, load={"duration": "2s", "warmup": "5s"})
    status = _reconcile(kube)
    assert status["phase"] == "Failed" and condition(status, "Complete")["reason"] == "InvalidSpec"
    assert [(h["generation"], h["phase"]) for h in status["history"]] == [(2, "Failed"), (1, "Superseded")]
    assert kube.list("batch/v1", "Job", "ns") == []
    _edit(kube, load={"warmup": "1s"})
    status = _reconcile(kube)
    assert status["phase"] == "Running" and kube.get("batch/v1", "Job", "ns", "lt-load-g3") is not None
    assert [h["generation"] for h in status["history"]] == [2, 1]


def test_a_history_mangled_by_hand_is_dropped_not_fatal() -> None:
    kube = _started()
    lt = kube.get(API_VERSION, "LoadTest", "ns", "lt")
    assert lt is not None
    lt["status"]["history"] = [{"generation": "first", "phase": "Maybe"}]
    kube.put(lt)
    _report(kube, 0, outcome=_outcome(10))
    status = _reconcile(kube)
    assert status["phase"] == "Succeeded" and [h["generation"] for h in status["history"]] == [1]
