"""The worker's side: env parsing with named errors, result ConfigMaps that round-trip exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelpack.loadgen.outcome import LoadOutcome
from modelpack.loadgen.tally import Tally
from modelpack_operator import results as R
from modelpack_operator import workerenv as E
from modelpack_operator.worker import RouteTableError, read_route_files
from tests.operator.harness import MODELPACK, ROOT

GOOD_ENV = {
    E.LOADTEST: "lt",
    E.LOADTEST_UID: "uid",
    E.NAMESPACE: "ns",
    E.INDEX: "0",
    E.WORKERS: "2",
    E.START_AT: "2026-01-01T00:00:00Z",
    E.SPEC: json.dumps({"target": {"modelPack": "p"}, "load": {"rate": 5}}),
    E.ROUTES: "/etc/modelpack/routes",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({E.LOADTEST: ""}, "MODELPACK_LOADTEST is not set"),
        ({E.INDEX: "x"}, "JOB_COMPLETION_INDEX='x': expected an integer"),
        ({E.INDEX: "2"}, "JOB_COMPLETION_INDEX=2 is not below MODELPACK_WORKERS=2"),
        ({E.WORKERS: "0"}, "MODELPACK_WORKERS='0': must be at least 1"),
        ({E.START_AT: "noon"}, "MODELPACK_START_AT='noon': expected RFC 3339"),
        ({E.SPEC: "{"}, "MODELPACK_LOADTEST_SPEC is not JSON"),
        ({E.GENERATION: "two"}, "MODELPACK_LOADTEST_GENERATION='two': expected an integer"),
        ({E.GENERATION: "0"}, "MODELPACK_LOADTEST_GENERATION='0': must be at least 1"),
        ({E.SPEC: json.dumps({"target": {"modelPack": "p"}, "load": {"rate": -1}})}, "load.rate"),
    ],
)
def test_bad_worker_env_is_refused_naming_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(E.WorkerEnvError, match=message.replace("(", r"\(")):
        E.from_env({**GOOD_ENV, **change})


def test_the_generation_names_and_labels_the_result_and_defaults_to_the_first() -> None:
    assert E.from_env(GOOD_ENV).generation == 1  # a Job made before LoadTests re-ran
    cfg = E.from_env({**GOOD_ENV, E.GENERATION: "3"})
    cm = R.result_configmap("lt", "uid", "ns", 1, error="x", generation=cfg.generation)
    assert cm["metadata"]["name"] == "lt-result-1-g3"
    assert cm["metadata"]["labels"]["modelpack.dev/generation"] == "3"


def _outcome(requests: int) -> LoadOutcome:
    tally = Tally(duration_seconds=1.0, planned_requests=float(requests))
    for i in range(requests):
        tally.record_success("m", t_rel=i / requests, latency_s=0.002 + i * 1e-4, service_s=0.001, delay_s=0.0)
    return LoadOutcome(mode="constant-rate", tally=tally)


def test_outcome_round_trips_through_the_configmap(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _outcome(50)
    cm = R.result_configmap("lt", "uid", "ns", 1, outcome=outcome.to_json())
    assert cm["metadata"]["name"] == "lt-result-1"
    assert cm["metadata"]["ownerReferences"] == [
        {"apiVersion": "modelpack.dev/v1alpha1", "kind": "LoadTest", "name": "lt", "uid": "uid"}
    ]
    back = R.read_result(cm)
    assert back.ok and back.index == 1
    assert back.outcome is not None and back.outcome.results == outcome.results
    monkeypatch.setattr(R, "PLAIN_LIMIT", 10)  # large outcomes go gzipped into binaryData
    packed = R.result_configmap("lt", "uid", "ns", 0, outcome=outcome.to_json())
    assert R.OUTCOME_KEY not in packed["data"] and R.OUTCOME_GZ_KEY in packed["binaryData"]
    assert R.read_result(packed).outcome.results == outcome.results  # type: ignore[union-attr]


def test_failed_and_mangled_reports_count_as_failures_with_the_reason() -> None:
    failed = R.read_result(R.result_configmap("lt", "u", "ns", 0, error="connect refused"))
    assert not failed.ok and failed.error == "connect refused"
    mangled = {"metadata": {"name": "lt-result-0"}, "data": {"index": "0", "status": "succeeded", "outcome.json": "{"}}
    bad = R.read_result(mangled)
    assert not bad.ok and "lt-result-0: unreadable outcome" in (bad.error or "")


def test_worker_cli_without_env_exits_2_naming_the_variable(tmp_path: Path) -> None:
    proc = subprocess.run(
        [MODELPACK, "worker"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "modelpack worker: error: JOB_COMPLETION_INDEX is not set" in proc.stderr


def test_operator_cli_refuses_bad_settings_and_flags(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODELPACK_WORKER_BACKOFF_LIMIT": "many"}
    proc = subprocess.run([MODELPACK, "operator"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "MODELPACK_WORKER_BACKOFF_LIMIT='many'" in proc.stderr
    proc = subprocess.run([MODELPACK, "operator", "-n", "Not_A_Namespace"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--namespace 'Not_A_Namespace'" in proc.stderr
    proc = subprocess.run(
        [MODELPACK, "operator", "--kubeconfig", str(tmp_path / "none")],
        env={**env, "MODELPACK_WORKER_BACKOFF_LIMIT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "cannot load Kubernetes credentials" in proc.stderr


def test_operator_and_worker_never_import_torch() -> None:
    """The operator image installs `.[operator]` only: nothing on these paths may need torch."""
    code = (
        "import sys, modelpack_operator.handlers, modelpack_operator.worker, modelpack.cli.worker, "
        "modelpack.cli.operator; print('torch' in sys.modules, 'model_server' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def _cfg(routes_dir: Path) -> E.WorkerConfig:
    return E.from_env({**GOOD_ENV, E.ROUTES: str(routes_dir)})


def test_worker_reads_the_union_of_every_mounted_shard(tmp_path: Path) -> None:
    (tmp_path / "routes-0.json").write_text(json.dumps({"a": "http://s0", "b": "http://s0"}))
    (tmp_path / "routes-1.json").write_text(json.dumps({"c": "http://s1"}))
    assert read_route_files(_cfg(tmp_path)) == {"a": "http://s0", "b": "http://s0", "c": "http://s1"}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no \\*.json shards \\(MODELPACK_ROUTES_DIR\\)"),
        ({"routes-0.json": "{"}, "route table shard .*routes-0.json is unreadable"),
        ({"routes-0.json": "[1]"}, "routes-0.json is unreadable: routes.json is not a JSON object"),
        ({"routes-0.json": "{}"}, "holds no routes"),
    ],
)
def test_missing_or_bad_shards_name_the_problem(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RouteTableError, match=message):
        read_route_files(_cfg(tmp_path))
