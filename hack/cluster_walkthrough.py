"""The README's "On a cluster" walkthrough, run for real on the test cluster's real node.

The same cluster ``tests/realnode`` uses (``tests/cluster/realcluster.py``): a kube-apiserver, etcd,
controller-manager and scheduler, and one real node (containerd, runc, kubelet, kube-proxy, CoreDNS) inside a
network namespace. The two images are built from ``Dockerfile.operator`` and ``Dockerfile.server`` here (cached by
content hash) and imported into the node; ``helm install`` puts the operator in its pod with the chart's
ServiceAccount and RBAC; a ModelPack and a LoadTest are applied as YAML files from ``build/walkthrough/``, and the
script prints what a person would type and what ``kubectl`` answers. Nothing runs as a local stand-in: the
servers and the load workers are pods the kubelet runs. Only the model store is made here: 24 tiny random-weight
BERTs in a directory on the node, offered to the pods as a hostPath PersistentVolume.

Run from the repository root as root (the real node needs it), with the venv's Python::

    .venv/bin/python hack/cluster_walkthrough.py

Everything it starts it stops before exiting (``RealCluster.stop()``, also on an error or SIGTERM), and it removes
``build/walkthrough/`` (and ``build/`` if that leaves it empty). Exit status 0 when the LoadTest Succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.controlplane import ControlPlane  # noqa: E402
from tests.cluster.modelpack_images import app_image  # noqa: E402
from tests.cluster.node_images import build  # noqa: E402
from tests.cluster.realcluster import RealCluster  # noqa: E402
from tests.cluster.wait import wait_for  # noqa: E402
from tests.realnode.packs import (  # noqa: E402
    MODELS,
    PER_SERVER,
    control_plane,
    diagnose,
    fill_store,
    finished_loadtest,
    finished_workers,
    helm,
    import_images,
    install_args,
    loadtest,
    pack,
    store_volume,
    wait_pack,
)

NAMESPACE = "default"
PACK = "bert"  # the name packs.pack() gives its ModelPack
LOADTEST = "bert-20rps"
FILES = Path("build") / "walkthrough"  # relative to ROOT, so the printed commands read as typed
CHART = "helm/modelpack"


def banner(text: str) -> None:
    print(f"\n# {text}", flush=True)


def show(command: list[str], output: str) -> None:
    """A command as a person would type it, then what it printed."""
    print(f"$ {' '.join(command)}")
    print(output.rstrip("\n"), flush=True)


def kubectl(cp: ControlPlane, *args: str) -> str:
    out = cp.kubectl(*args).stdout
    show(["kubectl", *args], out)
    return out


def describe_tail(text: str) -> str:
    """The status conditions and the events of ``kubectl describe``: what happened and why; the rest elided."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Conditions:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if len(lines[i]) - len(lines[i].lstrip()) <= indent)
    events = next(i for i, line in enumerate(lines) if line.startswith("Events:"))
    return "\n".join(["...", *lines[start:end], "...", *lines[events:]])


def apply_file(cp: ControlPlane, name: str, docs: list[dict[str, Any]]) -> None:
    """Write ``docs`` to build/walkthrough/<name>, show it, and ``kubectl apply -f`` it."""
    path = FILES / name
    text = yaml.safe_dump_all(docs, sort_keys=False)
    (ROOT / path).write_text(text)
    print(f"$ cat {path}\n{text}", end="")
    kubectl(cp, "apply", "-f", str(path))


def running_workers(cp: ControlPlane) -> bool:
    """Both worker pods of the LoadTest's Job Running: the moment to show them next to the servers."""
    pods = cp.kubectl_json("get", "pods", "-n", NAMESPACE, "-l", f"job-name={LOADTEST}-load")["items"]
    return [p["status"].get("phase") for p in pods].count("Running") == 2


def walkthrough(rc: RealCluster) -> int:
    cp = control_plane(rc)
    assert rc.node is not None
    print(f"$ export KUBECONFIG={cp.kubeconfig}", flush=True)
    kubectl(cp, "get", "nodes", "-o", "wide")

    banner("The two images, built from Dockerfile.operator and Dockerfile.server and imported into the node")
    began = time.monotonic()
    images = import_images(rc.node)
    print(f"# {images['operator']}\n# {images['server']}\n# ({time.monotonic() - began:.0f}s)", flush=True)

    banner("Install the chart with them (CRDs, operator Deployment, RBAC, worker ServiceAccount)")
    args = install_args(images, chart=CHART)
    show(["helm", *args], helm(cp, *args))
    kubectl(cp, "get", "pods", "-A", "-o", "wide")

    banner(f"A model store: {len(MODELS)} distinct tiny BERTs (random weights) in a directory on the node")
    store = fill_store(rc.network.state_dir / "store")
    files = ROOT / FILES
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    apply_file(cp, "store.yaml", store_volume(NAMESPACE, store))

    banner(f"A ModelPack of {len(MODELS)} models, {PER_SERVER} per server, on x86")
    began = time.monotonic()
    apply_file(cp, "modelpack.yaml", [pack(NAMESPACE)])
    kubectl(cp, "get", "modelpack")
    wait_pack(cp, NAMESPACE, "ModelPack Ready", lambda s: s.get("phase") == "Ready")
    print(f"# Ready after {time.monotonic() - began:.0f}s", flush=True)
    kubectl(cp, "get", "mp")
    kubectl(cp, "get", "pods", "-o", "wide")

    banner("A LoadTest with an SLO: 20 requests/s open loop for 15 s over 2 worker pods")
    apply_file(cp, "loadtest.yaml", [loadtest(NAMESPACE, name=LOADTEST)])
    kubectl(cp, "get", "lt")
    wait_for(lambda: running_workers(cp), "both worker pods Running", 120, 0.5)
    kubectl(cp, "get", "pods", "-o", "wide")
    final = finished_loadtest(cp, NAMESPACE, 300, name=LOADTEST)

    banner("Results, merged by the operator from the worker pods' histograms")
    kubectl(cp, "get", "lt")
    kubectl(cp, "get", "lt", "-o", "wide")
    describe = cp.kubectl("describe", "lt", LOADTEST).stdout
    show(["kubectl", "describe", "lt", LOADTEST], describe_tail(describe))
    finished_workers(cp, NAMESPACE, LOADTEST)
    kubectl(cp, "get", "pods", "-o", "wide")
    return 0 if final.get("phase") == "Succeeded" else 1


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so the finally below stops the cluster however the script is ended.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.chdir(ROOT)
    began = time.monotonic()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    # Build (or find cached) both images before the cluster starts, so it is up only while it is used.
    for kind in ("operator", "server"):
        build(app_image(kind))
    rc = RealCluster()
    try:
        rc.start()
        try:
            return walkthrough(rc)
        except Exception:
            if rc.cp is not None:
                print(diagnose(rc.cp, NAMESPACE), file=sys.stderr)
            raise
    finally:
        rc.stop()
        shutil.rmtree(ROOT / FILES, ignore_errors=True)
        with contextlib.suppress(OSError):  # build/ too, unless something else is in it
            (ROOT / FILES.parent).rmdir()
        print(f"# walkthrough took {time.monotonic() - began:.0f}s, cluster stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
