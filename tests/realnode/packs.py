"""What the modelpack runs on the real node share: the images, the chart install, the model store, pack and
LoadTest dicts, and waiting on their status with a diagnosis (pods, the operator's log, the namespace's Events) when
it times out. The tests (``conftest.py``) and the README's walkthrough (``hack/cluster_walkthrough.py``) both use it.

The chart is installed once per session (``operator`` fixture in conftest.py) and every test uses its own
namespace, so a test that deletes the operator pod finds the Deployment's replacement by label, never by name.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from model_server.bert import BertShape
from model_server.fleet import build_fleet
from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.modelpack_images import app_image
from tests.cluster.realcluster import RealCluster
from tests.cluster.realnode import RealNode
from tests.cluster.wait import wait_for
from tests.model_server.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modelpack"
RELEASE, RELEASE_NS = "mp", "modelpack-system"
OPERATOR_SELECTOR = f"app.kubernetes.io/name=modelpack-operator,app.kubernetes.io/instance={RELEASE}"
SERVER_SELECTOR = "modelpack.dev/pack=bert,app.kubernetes.io/component=model-server"
MODELS = [f"bert-{i:03d}" for i in range(24)]
PER_SERVER = 8
PAYLOAD = {
    "mode": "given",
    "request": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a short request"]}]},
}


def control_plane(rc: RealCluster) -> ControlPlane:
    assert rc.cp is not None and rc.node is not None
    return rc.cp


def helm(cp: ControlPlane, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "HELM_CACHE_HOME": "/tmp/helm-cache",
           "KUBECONFIG": str(cp.kubeconfig)}  # fmt: skip
    proc = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def import_images(node: RealNode) -> dict[str, str]:
    """Both images built from the Dockerfiles (cached by content hash), imported into the node; kind -> reference."""
    return {kind: node.import_image(app_image(kind)) for kind in ("operator", "server")}


def install_args(images: dict[str, str], chart: str = str(CHART)) -> list[str]:
    """``helm install`` of the chart with the local images, resync and pod checks shortened so failures surface in
    seconds (the chart's defaults are 60 s each)."""
    repo, tag = images["operator"].rsplit(":", 1)
    return [
        "install", RELEASE, chart, "--namespace", RELEASE_NS, "--create-namespace", "--wait", "--timeout", "3m",
        f"--set=image.repository={repo}", f"--set=image.tag={tag}", f"--set=serverImage.default={images['server']}",
        "--set=worker.cpu=100m", "--set=worker.memory=256Mi", "--set=worker.startDelaySeconds=3",
        "--set=reconcile.podCheckAfterSeconds=20", "--set=reconcile.resyncSeconds=15",
    ]  # fmt: skip


def fill_store(path: Path, models: list[str] = MODELS, shape: BertShape = TINY) -> Path:
    """Distinct BERTs (random weights; tiny unless ``shape`` says otherwise) in ``path`` on the node's filesystem,
    readable by the servers' uid."""
    started = time.monotonic()
    build_fleet(path, models, shape)
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(Path(root, f), 0o644)
    print(f"[store] built {len(models)} models in {time.monotonic() - started:.1f}s")
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


def pack(
    ns: str,
    models: list[str] = MODELS,
    memory: str | None = None,
    autoscaling: dict[str, Any] | None = None,
    budget: str = "256Mi",
) -> dict[str, Any]:
    """The test's ModelPack ``bert``; ``memory`` sets the servers' memory request and limit (an OOM test),
    ``autoscaling`` its ``spec.autoscaling``, ``budget`` its ``spec.server.memoryBudget``."""
    # Three servers on one 2-core node: request little CPU so all three schedule.
    resources: dict[str, Any] = {"requests": {"cpu": "100m"}}
    if memory is not None:
        resources = {"requests": {"cpu": "100m", "memory": memory}, "limits": {"memory": memory}}
    spec: dict[str, Any] = {
        "store": {"uri": "pvc://models"},
        "models": {"names": models},
        "modelsPerServer": PER_SERVER,
        "compute": {"type": "x86", "resources": resources},
        "server": {"memoryBudget": budget, "workerThreads": 1},
    }
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return {"apiVersion": "modelpack.dev/v1alpha1", "kind": "ModelPack", "metadata": {"name": "bert", "namespace": ns},
            "spec": spec}  # fmt: skip


def loadtest(ns: str, duration: str = "15s", slo: bool = True, name: str = "lt", rate: int = 20) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"modelPack": "bert"},
        "workers": 2,
        "load": {"mode": "constant-rate", "rate": rate, "duration": duration, "warmup": "5s", "timeout": "5s"},
        "payload": PAYLOAD,
    }
    if slo:
        spec["slo"] = {"p99LatencyMs": 5000, "maxErrorRate": 0.01}
    return {"apiVersion": "modelpack.dev/v1alpha1", "kind": "LoadTest", "metadata": {"name": name, "namespace": ns},
            "spec": spec}  # fmt: skip


def status(cp: ControlPlane, kind: str, ns: str, name: str) -> dict[str, Any]:
    got = cp.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    return (yaml.safe_load(got.stdout) or {}).get("status") or {} if got.returncode == 0 else {}


def condition(st: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c.get("type") == kind), {})


def pack_events(cp: ControlPlane, ns: str, reason: str) -> list[dict[str, Any]]:
    """The Events in ``ns`` about a ModelPack with this reason."""
    got = cp.kubectl_json("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=ModelPack")
    return [e for e in got["items"] if e["reason"] == reason]


def operator_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    return list(cp.kubectl_json("get", "pods", "-n", RELEASE_NS, "-l", OPERATOR_SELECTOR)["items"])


def diagnose(cp: ControlPlane, ns: str) -> str:
    pods = cp.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    log = cp.kubectl("logs", "-n", RELEASE_NS, "-l", OPERATOR_SELECTOR, "--tail=40", check=False).stdout
    events = cp.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
    return f"pods:\n{pods}\noperator log:\n{log}\nevents:\n{events}"


def wait_pack(cp: ControlPlane, ns: str, what: str, probe: Any, timeout: float = 420) -> Any:
    """``wait_for`` on the pack's status; a timeout carries the diagnosis."""
    try:
        return wait_for(lambda: probe(status(cp, "modelpack", ns, "bert")), what, timeout, 2)
    except TimeoutError as err:
        raise AssertionError(f"{err}\nstatus: {status(cp, 'modelpack', ns, 'bert')}\n{diagnose(cp, ns)}") from err


def ready_pack(
    cp: ControlPlane, ns: str, store: Path, models: list[str], autoscaling: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Apply the store's volume and the pack, wait for phase Ready; returns the server pods (one per server:
    an autoscaled pack starts at ``minReplicas``, which these tests keep at 1)."""
    cp.apply(store_volume(ns, store))
    cp.apply([pack(ns, models, autoscaling=autoscaling)], namespace=ns)
    started = time.monotonic()
    wait_pack(cp, ns, "ModelPack Ready", lambda s: s.get("phase") == "Ready")
    print(f"[e2e] pack of {len(models)} Ready in {time.monotonic() - started:.0f}s")
    pods = cp.kubectl_json("get", "pods", "-n", ns, "-l", SERVER_SELECTOR)["items"]
    assert len(pods) == len(models) // PER_SERVER
    return list(pods)


def finished_loadtest(cp: ControlPlane, ns: str, timeout: float, name: str = "lt") -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        st = status(cp, "loadtest", ns, name)
        return st if st.get("phase") in ("Succeeded", "Failed") else None

    try:
        return wait_for(finished, "LoadTest finished", timeout, 2)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{diagnose(cp, ns)}") from err


def finished_workers(cp: ControlPlane, ns: str, name: str = "lt", timeout: float = 60) -> list[dict[str, Any]]:
    """The LoadTest's 2 worker pods once both Succeeded: a worker's results are in before its pod has exited, so a
    finished LoadTest's workers may still be Running for a moment."""

    def workers_done() -> list[dict[str, Any]]:
        pods = cp.kubectl_json("get", "pods", "-n", ns, "-l", f"job-name={name}-load")["items"]
        return pods if len(pods) == 2 and all(w["status"]["phase"] == "Succeeded" for w in pods) else []

    return list(wait_for(workers_done, "both worker pods Succeeded", timeout, 1))
