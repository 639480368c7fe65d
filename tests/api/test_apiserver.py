"""The generated CRDs on a real kube-apiserver: established, examples apply, bad objects refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.test_types import PACK, TEST, with_spec

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))


@pytest.fixture(scope="module")
def crds(control_plane: Any) -> Any:
    for path in CRDS:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelpacks.modelpack.dev",
        "crd/loadtests.modelpack.dev",
    )
    return control_plane


def apply(cp: Any, namespace: str, doc: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)


def patch_status(cp: Any, namespace: str, kind: str, name: str, status: dict[str, Any]) -> None:
    """Write status through the status subresource, as the operator does."""
    cp.kubectl(
        "patch",
        kind,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def example_files() -> list[Path]:
    files = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples" / "local").glob("*.yaml"))
    return [
        f
        for f in files
        if any(d and d.get("apiVersion") == "modelpack.dev/v1alpha1" for d in yaml.safe_load_all(f.read_text()))
    ]


def test_crds_are_established_with_short_names_and_category(crds: Any) -> None:
    out = crds.kubectl("api-resources", "--api-group=modelpack.dev", "-o", "wide").stdout
    assert "modelpacks" in out and "mp" in out
    assert "loadtests" in out and "lt" in out
    assert "modelpack-all" in out  # category


def test_every_example_applies(crds: Any, namespace: str) -> None:
    files = example_files()
    assert len(files) >= 4, "examples/ must hold a minimal and a full object of each kind"
    for path in files:
        result = crds.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_defaults_appear_on_objects_read_back(crds: Any, namespace: str) -> None:
    assert apply(crds, namespace, PACK).returncode == 0
    assert apply(crds, namespace, TEST).returncode == 0
    pack = json.loads(crds.kubectl("get", "mp", "fleet", "-n", namespace, "-o", "json").stdout)
    assert pack["spec"]["modelsPerServer"] == 16
    assert pack["spec"]["server"]["batching"]["maxBatchSize"] == 8
    assert pack["spec"]["models"] == {"count": 40}  # namePattern/startIndex default in code, not shown by describe
    test = json.loads(crds.kubectl("get", "lt", "smoke", "-n", namespace, "-o", "json").stdout)
    assert test["spec"]["load"]["mode"] == "constant-rate"
    assert test["spec"]["load"]["duration"] == "30s"
    assert test["spec"]["payload"]["mode"] == "generated"
    assert test["spec"]["target"]["models"]["selection"] == "all"


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("negative density", with_spec(PACK, "modelsPerServer", -1), "spec.modelsPerServer"),
    ("negative count", with_spec(PACK, "models", {"count": -5}), "spec.models.count"),
    ("unknown compute", with_spec(PACK, "compute.type", "tpu"), "spec.compute.type"),
    ("bad uri scheme", with_spec(PACK, "store.uri", "ftp://models"), "spec.store.uri"),
    ("names and count", with_spec(PACK, "models", {"count": 2, "names": ["a"]}), "exactly one of models.names"),
    ("wrong type replicas", with_spec(PACK, "replicas", "two"), "spec.replicas"),
    ("bad memory quantity", with_spec(PACK, "server.memoryBudget", "lots"), "spec.server.memoryBudget"),
    ("missing compute", {**PACK, "spec": {k: v for k, v in PACK["spec"].items() if k != "compute"}}, "spec.compute"),
    (
        "rate with concurrency mode",
        with_spec(TEST, "load", {"mode": "concurrency", "rate": 5, "concurrency": 2}),
        "load.rate cannot be set in concurrency mode",
    ),
    ("zero rate", with_spec(TEST, "load.rate", 0), "spec.load.rate"),
    ("negative p99", with_spec(TEST, "slo", {"p99LatencyMs": -1}), "spec.slo.p99LatencyMs"),
    ("error rate above 1", with_spec(TEST, "slo", {"maxErrorRate": 1.5}), "spec.slo.maxErrorRate"),
    ("missing target", {**TEST, "spec": {"load": {"rate": 5}}}, "spec.target"),
    ("bad duration", with_spec(TEST, "load.duration", "thirty"), "spec.load.duration"),
    ("sweep without slo", with_spec(TEST, "load", {"mode": "sweep"}), "slo is required in sweep mode"),
    ("zero workers", with_spec(TEST, "workers", 0), "spec.workers"),
    ("unknown spread", with_spec(TEST, "target.spread", "gaussian"), "spec.target.spread"),
    ("bad pack name", with_spec(TEST, "target.modelPack", "Not_A_Name"), "spec.target.modelPack"),
]


@pytest.mark.parametrize(("case", "doc", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_objects_are_refused_by_the_api_server(
    crds: Any, namespace: str, case: str, doc: dict[str, Any], named: str
) -> None:
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": "bad"}
    result = apply(crds, namespace, doc)
    assert result.returncode != 0, f"{case}: accepted"
    assert named in result.stderr, f"{case}: {result.stderr}"


def test_printer_columns_show_in_kubectl_get(crds: Any, namespace: str) -> None:
    assert apply(crds, namespace, PACK).returncode == 0
    assert apply(crds, namespace, TEST).returncode == 0
    status = {
        "phase": "Succeeded",
        "sloVerdict": "Met",
        "results": {
            "requests": 1000,
            "successes": 998,
            "errors": 2,
            "achievedRate": 100.0,
            "throughput": 99.8,
            "durationSeconds": 10.0,
            "latencyMs": {"p50": 4.2, "p90": 6.0, "p95": 7.0, "p99": 9.5, "p999": 12.0, "max": 13.0, "mean": 4.5},
        },
    }
    patch_status(crds, namespace, "lt", "smoke", status)
    out = crds.kubectl("get", "lt", "-n", namespace).stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:8] == ["NAME", "PHASE", "RPS", "P50(MS)", "P99(MS)", "ERRORS", "SLO", "AGE"]
    assert row.split()[:7] == ["smoke", "Succeeded", "99.8", "4.2", "9.5", "2", "Met"]
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "AllServersReady",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patch_status(crds, namespace, "mp", "fleet", {"phase": "Ready", "models": 40, "servers": 3, "conditions": [ready]})
    for name in ("mp", "modelpack", "modelpacks"):
        out = crds.kubectl("get", name, "-n", namespace).stdout
        header, row = out.splitlines()[:2]
        assert header.split() == ["NAME", "COMPUTE", "MODELS", "SERVERS", "READY", "PHASE", "AGE"], name
        assert row.split()[:6] == ["fleet", "graviton", "40", "3", "True", "Ready"], name
    both = crds.kubectl("get", "modelpack-all", "-n", namespace).stdout
    assert "modelpack.modelpack.dev/fleet" in both and "loadtest.modelpack.dev/smoke" in both


def test_kubectl_explain_explains(crds: Any) -> None:
    out = crds.kubectl("explain", "modelpack.spec.modelsPerServer").stdout
    assert "Packing density" in out
    out = crds.kubectl("explain", "loadtest.spec.load.mode").stdout
    assert "open loop" in out


def test_a_loadtest_spec_change_is_accepted_as_a_new_generation(crds: Any, namespace: str) -> None:
    """An edit synced from Git is a new run, not a refused apply (what the operator does with it:
    tests/operator/test_rerun_cluster.py); the status keeps what the operator wrote."""
    assert apply(crds, namespace, TEST).returncode == 0
    get = ("get", "lt", "smoke", "-n", namespace, "-o")
    assert crds.kubectl(*get, "jsonpath={.metadata.generation}").stdout == "1"
    patch_status(crds, namespace, "lt", "smoke", {"phase": "Running", "observedGeneration": 1})
    changed = apply(crds, namespace, with_spec(TEST, "load.rate", 99))
    assert changed.returncode == 0, changed.stderr
    assert crds.kubectl(*get, "jsonpath={.metadata.generation} {.spec.load.rate}").stdout == "2 99"
    assert crds.kubectl(*get, "jsonpath={.status.phase}").stdout == "Running"
