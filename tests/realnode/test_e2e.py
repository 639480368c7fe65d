"""modelpack end to end on the real node: the chart's operator in its pod, real server pods, real load workers.

Nothing runs as a local stand-in: ``helm install`` puts the operator (the image built from Dockerfile.operator) in
a pod authenticated by the chart's ServiceAccount with exactly the chart's RBAC; the operator creates server
Deployments whose pods run the image built from Dockerfile.server and read 24 distinct tiny BERTs from a
hostPath PersistentVolume the test fills; their readiness probes are the server's own; the LoadTest's Indexed
Job pods (the operator image again) reach the servers by Service DNS name through CoreDNS and kube-proxy, and
their histograms are merged into the status that ``kubectl get loadtest`` prints.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_server.fleet import build_fleet
from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.modelpack_images import app_image
from tests.cluster.realcluster import RealCluster
from tests.cluster.realnode import NODE_NAME
from tests.cluster.wait import wait_for
from tests.model_server.conftest import TINY

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modelpack"
RELEASE, RELEASE_NS = "mp", "modelpack-system"
MODELS = [f"bert-{i:03d}" for i in range(24)]
PER_SERVER = 8
PAYLOAD = {
    "mode": "given",
    "request": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a short request"]}]},
}


def _cp(rc: RealCluster) -> ControlPlane:
    assert rc.cp is not None and rc.node is not None
    return rc.cp


def helm(cp: ControlPlane, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "HELM_CACHE_HOME": "/tmp/helm-cache",
           "KUBECONFIG": str(cp.kubeconfig)}  # fmt: skip
    proc = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def images(real_cluster: RealCluster) -> dict[str, str]:
    """Both images built from the Dockerfiles (cached by content hash) and imported into the node."""
    node = real_cluster.node
    assert node is not None
    return {kind: node.import_image(app_image(kind)) for kind in ("operator", "server")}


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster, images: dict[str, str]) -> Iterator[str]:
    """``helm install`` of the chart with the local images; yields the operator pod's name."""
    cp = _cp(real_cluster)
    repo, tag = images["operator"].rsplit(":", 1)
    helm(
        cp, "install", RELEASE, str(CHART), "--namespace", RELEASE_NS, "--create-namespace", "--wait",
        "--timeout", "3m", f"--set=image.repository={repo}", f"--set=image.tag={tag}",
        f"--set=serverImage.default={images['server']}", "--set=worker.cpu=100m", "--set=worker.memory=256Mi",
        "--set=worker.startDelaySeconds=3", "--set=reconcile.podCheckAfterSeconds=20",
    )  # fmt: skip
    pods = cp.kubectl_json("get", "pods", "-n", RELEASE_NS)["items"]
    (pod,) = pods
    try:
        yield pod["metadata"]["name"]
    finally:
        helm(cp, "uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout", "2m")


@pytest.fixture(scope="module")
def store(real_cluster: RealCluster) -> Path:
    """24 distinct tiny BERTs in a directory on the node's filesystem, readable by the servers' uid."""
    path = real_cluster.network.state_dir / "store"
    started = time.monotonic()
    build_fleet(path, MODELS, TINY)
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(Path(root, f), 0o644)
    print(f"[e2e] built {len(MODELS)} models in {time.monotonic() - started:.1f}s")
    return path


def store_volume(ns: str, path: Path) -> list[dict[str, Any]]:
    """A hostPath PersistentVolume pre-bound to a claim ``models`` in ``ns`` (read-only for the servers)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{ns}-models"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": ns, "name": "models"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models", "namespace": ns},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": f"{ns}-models",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]


def pack(ns: str, models: list[str] = MODELS) -> dict[str, Any]:
    return {
        "apiVersion": "modelpack.dev/v1alpha1",
        "kind": "ModelPack",
        "metadata": {"name": "bert", "namespace": ns},
        "spec": {
            "store": {"uri": "pvc://models"},
            "models": {"names": models},
            "modelsPerServer": PER_SERVER,
            # Three servers on one 2-core node: request little CPU so all three schedule.
            "compute": {"type": "x86", "resources": {"requests": {"cpu": "100m"}}},
            "server": {"memoryBudget": "256Mi", "workerThreads": 1},
        },
    }


def loadtest(ns: str, duration: str = "15s", slo: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"modelPack": "bert"},
        "workers": 2,
        "load": {"mode": "constant-rate", "rate": 20, "duration": duration, "warmup": "5s", "timeout": "5s"},
        "payload": PAYLOAD,
    }
    if slo:
        spec["slo"] = {"p99LatencyMs": 5000, "maxErrorRate": 0.01}
    return {"apiVersion": "modelpack.dev/v1alpha1", "kind": "LoadTest", "metadata": {"name": "lt", "namespace": ns},
            "spec": spec}  # fmt: skip


def _status(cp: ControlPlane, kind: str, ns: str, name: str) -> dict[str, Any]:
    got = cp.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    return (yaml.safe_load(got.stdout) or {}).get("status") or {} if got.returncode == 0 else {}


def _diagnose(cp: ControlPlane, ns: str, operator_pod: str) -> str:
    pods = cp.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    log = cp.kubectl("logs", operator_pod, "-n", RELEASE_NS, "--tail=40", check=False).stdout
    events = cp.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
    return f"pods:\n{pods}\noperator log:\n{log}\nevents:\n{events}"


def _ready_pack(cp: ControlPlane, ns: str, operator: str, store: Path, models: list[str]) -> list[dict[str, Any]]:
    cp.apply(store_volume(ns, store))
    cp.apply([pack(ns, models)], namespace=ns)
    started = time.monotonic()
    try:
        wait_for(lambda: _status(cp, "modelpack", ns, "bert").get("phase") == "Ready", "ModelPack Ready", 420, 2)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{_diagnose(cp, ns, operator)}") from err
    print(f"[e2e] pack of {len(models)} Ready in {time.monotonic() - started:.0f}s")
    pods = cp.kubectl_json(
        "get", "pods", "-n", ns, "-l", "modelpack.dev/pack=bert,app.kubernetes.io/component=model-server"
    )["items"]
    assert len(pods) == len(models) // PER_SERVER
    return list(pods)


def _finished_loadtest(cp: ControlPlane, ns: str, operator: str, timeout: float) -> dict[str, Any]:
    try:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (s := _status(cp, "loadtest", ns, "lt")).get("phase") in ("Succeeded", "Failed") and s,
            "LoadTest finished", timeout, 2,
        )  # fmt: skip
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{_diagnose(cp, ns, operator)}") from err


def test_chart_operator_serves_24_models_on_real_pods_and_a_loadtest_measures_them(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    cp, ns = _cp(real_cluster), real_namespace
    pods = _ready_pack(cp, ns, operator, store, MODELS)
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["ready"] and cs["image"] == images["server"], cs
    # The chart's securityContext holds on the real runtime: the server runs as 10001, its root is read-only.
    probe = "import os; print(os.getuid()); open('/probe', 'w')"
    got = cp.kubectl("exec", pods[0]["metadata"]["name"], "-n", ns, "--", "python", "-c", probe, check=False)
    assert got.stdout.strip() == "10001" and "Read-only file system" in got.stderr, got
    # The images run this tree's code (a stale build-cache layer would not): the same bytes as the checkout.
    handlers = ROOT / "operator" / "modelpack_operator" / "handlers.py"
    checks = ((pods[0]["metadata"]["name"], ns, "model_server.app", ROOT / "model_server" / "app.py"),
              (operator, RELEASE_NS, "modelpack_operator.handlers", handlers))  # fmt: skip
    for pod_name, pod_ns, module, local in checks:
        show = f"import importlib; print(open(importlib.import_module('{module}').__file__, 'rb').read().hex())"
        got = cp.kubectl("exec", pod_name, "-n", pod_ns, "--", "python", "-c", show)
        assert bytes.fromhex(got.stdout.strip()) == local.read_bytes(), f"{module} in {pod_name} is not the checkout's"

    cp.apply([loadtest(ns)], namespace=ns)
    final = _finished_loadtest(cp, ns, operator, 300)
    assert final["phase"] == "Succeeded", (final, _diagnose(cp, ns, operator))
    assert final["workersSucceeded"] == 2
    results = final["results"]
    assert results["requests"] >= 20 * 15 * 0.8 and results["errors"] == 0, results
    assert final["sloVerdict"] == "Met"
    table = cp.kubectl("get", "loadtest", "lt", "-n", ns).stdout
    print(table)
    header, row = table.splitlines()
    assert header.split()[:7] == ["NAME", "PHASE", "RPS", "P50(MS)", "P99(MS)", "ERRORS", "SLO"]
    cells = row.split()
    assert cells[1] == "Succeeded" and float(cells[2]) > 0 and float(cells[3]) > 0 and cells[5] == "0"
    assert cells[6] == "Met"

    # The workers were real pods of the operator image, on the node, and finished.
    # (A worker's results are in before its pod has exited, so its phase may still be Running here.)
    def workers_done() -> list[dict[str, Any]]:
        pods = cp.kubectl_json("get", "pods", "-n", ns, "-l", "job-name=lt-load")["items"]
        return pods if len(pods) == 2 and all(w["status"]["phase"] == "Succeeded" for w in pods) else []

    workers = wait_for(workers_done, "both worker pods Succeeded", 60, 1)
    assert all(w["spec"]["nodeName"] == NODE_NAME for w in workers)


def test_a_server_container_killed_mid_load_is_restarted_and_the_loadtest_counts_its_errors(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    """SIGKILL from the host (a crash, not a graceful stop) of one of two servers while the workers send."""
    cp, ns, node = _cp(real_cluster), real_namespace, real_cluster.node
    assert node is not None
    pods = _ready_pack(cp, ns, operator, store, MODELS[: 2 * PER_SERVER])
    victim = pods[0]["metadata"]["name"]
    container_id = pods[0]["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    cp.apply([loadtest(ns, duration="30s", slo=False)], namespace=ns)
    wait_for(lambda: _status(cp, "loadtest", ns, "lt").get("startTime"), "workers sending", 120, 1)
    time.sleep(8)  # into the measured window (warmup 5 s)
    tasks = node.ctr("tasks", "ls").stdout.splitlines()[1:]
    (pid,) = [int(line.split()[1]) for line in tasks if line.split()[0] == container_id]
    os.kill(pid, 9)

    def restarted() -> bool:
        pod = cp.kubectl_json("get", "pod", victim, "-n", ns)
        (cs,) = pod["status"]["containerStatuses"]
        return bool(cs["restartCount"] >= 1 and cs["ready"])

    wait_for(restarted, f"{victim} restarted by the kubelet and Ready again", 180, 1)
    final = _finished_loadtest(cp, ns, operator, 240)
    results = final.get("results") or {}
    summary = {k: final.get(k) for k in ("phase", "workersSucceeded", "workersFailed", "conditions")}
    summary["results"] = {k: v for k, v in results.items() if not k.endswith("istogram") and k != "perModel"}
    assert final["phase"] == "Succeeded" and final["workersSucceeded"] == 2, f"{summary}\n{_diagnose(cp, ns, operator)}"
    # Open loop: every scheduled request is in the results, answered or failed; the crash's share failed.
    assert results["requests"] >= 20 * 30 * 0.8, results
    assert 0 < results["errors"] < results["requests"], results
    assert results["successes"] + results["errors"] == results["requests"], results
    complete = next(c for c in final["conditions"] if c["type"] == "Complete")
    assert complete["status"] == "True", complete
