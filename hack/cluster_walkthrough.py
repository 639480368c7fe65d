"""The README's "On a cluster" walkthrough, run for real against the test control plane.

A real kube-apiserver, controller-manager, scheduler and etcd (``tests/cluster``) with kwok fake nodes:
``helm install`` the chart, ``kubectl apply`` a ModelPack and a LoadTest, and print what ``kubectl get``
and ``kubectl describe`` answer. kwok pods run nothing, so the pieces a kubelet would run are started
here as local processes, exactly as the operator end-to-end tests do (``tests/operator``): the operator
(the chart's Deployment in a real cluster), one ``modelpack serve`` per server Deployment, and the
LoadTest's worker Job pods, whose route-table files map each Service URL to its local server.

Run from the repository root with the venv's Python::

    .venv/bin/python hack/cluster_walkthrough.py

Everything it starts (control plane, operator, servers, workers) it stops before exiting.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.fleet import build_fleet  # noqa: E402
from tests.cluster.controlplane import ControlPlane  # noqa: E402
from tests.cluster.nodes import DEFAULT_POOLS, register_pools  # noqa: E402
from tests.operator.factories import loadtest_doc, pack_doc  # noqa: E402
from tests.operator.harness import FAST_SETTINGS, OperatorProcess, get_status, kube_for, wait_until  # noqa: E402
from tests.operator.local_pods import LocalProcess  # noqa: E402
from tests.operator.test_helm_chart import helm  # noqa: E402
from tests.operator.test_loadtest_cluster import SMALL, TINY, _finished, _job, _local_servers, _run_workers  # noqa: E402

NAMESPACE = "default"
RELEASE = "modelpack"
SYSTEM_NAMESPACE = "modelpack-system"
PACK = "bert"  # the e2e helpers look up the server Deployments of a pack named "bert"
LOADTEST = "bert-40rps"
MODELS = [f"bert-{i:03d}" for i in range(4)]
FILES = Path("build") / "walkthrough"  # relative to ROOT, so the printed commands read as typed


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


def pack_manifest(store: Path) -> dict[str, Any]:
    return pack_doc(
        name=PACK,
        namespace=NAMESPACE,
        store={"uri": f"file://{store}"},
        models={"names": MODELS},
        compute=SMALL,
    )


def loadtest_manifest() -> dict[str, Any]:
    return loadtest_doc(
        name=LOADTEST,
        namespace=NAMESPACE,
        workers=2,
        load={"rate": 40, "duration": "10s", "warmup": "2s"},
        slo={"p99LatencyMs": 500, "maxErrorRate": 0.01},
    )


def write_manifest(path: Path, doc: dict[str, Any]) -> str:
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    return text


def helm_install(cp: ControlPlane) -> None:
    args = [
        "install",
        RELEASE,
        "helm/modelpack",
        "--namespace",
        SYSTEM_NAMESPACE,
        "--create-namespace",
        "--set-string",
        "worker.nodeSelector.modelpack\\.dev/pool=loadgen",
        "--wait",
        "--timeout=90s",
    ]
    show(["helm", *args], helm(*args, kubeconfig=cp.kubeconfig).stdout)


def start_operator(cp: ControlPlane, workdir: Path) -> OperatorProcess:
    """The operator with the chart's env and ServiceAccount, as the chart's Deployment would run it."""
    deployment = cp.kubectl_json("get", "deployment", f"{RELEASE}-modelpack-operator", "-n", SYSTEM_NAMESPACE)
    # The API server drops empty values (``value: ""``); a kubelet sets those variables to "".
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {**{e["name"]: e.get("value", "") for e in container["env"]}, **FAST_SETTINGS}
    token = cp.service_account_kubeconfig(SYSTEM_NAMESPACE, f"{RELEASE}-modelpack-operator")
    print(
        "# kwok pods run nothing, so the operator the chart deployed is started here as a local process\n"
        f"# (`modelpack operator --namespace {NAMESPACE}`), with the chart Deployment's env and authenticated as\n"
        "# the chart's ServiceAccount; only the resync period and worker start delay are shortened\n"
        f"# ({', '.join(f'{k}={v}' for k, v in FAST_SETTINGS.items())}). In a real cluster the Deployment runs it.",
        flush=True,
    )
    return OperatorProcess(cp, NAMESPACE, workdir / "operator.log", env, kubeconfig=token).start()


def walkthrough(cp: ControlPlane, workdir: Path, processes: list[LocalProcess]) -> int:
    kube = kube_for(cp)
    files = ROOT / FILES
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    store = workdir / "store"
    build_fleet(store, MODELS, TINY)
    print(f"# {len(MODELS)} distinct tiny BERT models (random weights) built into {store}", flush=True)

    banner("Install the chart (CRDs, operator Deployment, RBAC, worker ServiceAccount)")
    helm_install(cp)
    op = start_operator(cp, workdir)
    try:
        banner("A ModelPack of 4 tiny models, 2 per server, on x86")
        pack_path = FILES / "modelpack.yaml"
        print(f"$ cat {pack_path}\n{write_manifest(ROOT / pack_path, pack_manifest(store))}", end="")
        kubectl(cp, "apply", "-f", str(pack_path))
        wait_until(lambda: get_status(kube, "ModelPack", NAMESPACE, PACK).get("phase") == "Ready", "pack Ready", op=op)
        kubectl(cp, "get", "modelpack")
        kubectl(cp, "get", "deployments,services", "-l", f"modelpack.dev/pack={PACK}")

        print(
            "# kwok pods run nothing: each server Deployment's container command is started here as a local\n"
            "# `modelpack serve` process on a loopback port, standing in for the pods behind its Service.",
            flush=True,
        )
        service_urls = _local_servers(kube, NAMESPACE, workdir, processes)

        banner("A LoadTest with an SLO: 40 requests/s open loop for 10 s over 2 workers")
        lt_path = FILES / "loadtest.yaml"
        print(f"$ cat {lt_path}\n{write_manifest(ROOT / lt_path, loadtest_manifest())}", end="")
        kubectl(cp, "apply", "-f", str(lt_path))
        job = _job(kube, NAMESPACE, LOADTEST, op)
        kubectl(cp, "get", "loadtest")
        print(
            f"# The worker pods stay Pending (worker.nodeSelector: no kwok node is in pool 'loadgen'); each pod of\n"
            f"# Job {job['metadata']['name']} is run here as a local process from the Job's command and env, as\n"
            "# the worker ServiceAccount, each Service URL in its route-table files replaced by the local server's.",
            flush=True,
        )
        codes = _run_workers(cp, kube, job, service_urls, workdir, processes)
        print(f"# worker exit codes: {codes}", flush=True)
        wait_until(lambda: _finished(kube, NAMESPACE, LOADTEST), "LoadTest finished", timeout=120, op=op)

        banner("Results, written back by the operator")
        kubectl(cp, "get", "loadtest")
        kubectl(cp, "get", "loadtest", "-o", "wide")
        describe = cp.kubectl("describe", "loadtest", LOADTEST).stdout
        show(["kubectl", "describe", "loadtest", LOADTEST], describe_tail(describe))
        status = get_status(kube, "LoadTest", NAMESPACE, LOADTEST)
        return 0 if status.get("phase") == "Succeeded" else 1
    finally:
        op.stop()


def main() -> int:
    os.chdir(ROOT)
    workdir = Path(tempfile.mkdtemp(prefix="modelpack-walkthrough-"))
    processes: list[LocalProcess] = []
    cp = ControlPlane()
    try:
        cp.start()
        nodes = register_pools(cp, DEFAULT_POOLS)
        print(f"# Test control plane up (kube-apiserver, etcd, controller-manager, scheduler, kwok): {cp.server}")
        print(f"# kwok nodes: {', '.join(nodes)}")
        print(f"$ export KUBECONFIG={cp.kubeconfig}", flush=True)
        return walkthrough(cp, workdir, processes)
    finally:
        for proc in processes:
            proc.stop()
        cp.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
