"""What reconciling a big pack costs the API server, next to the peer approach (templated manifests + kubectl apply).

Usage:
    python -m benchmarks.operator_reconcile [--models 3000] [--per-server 16] [--runs 3]

Against the real control plane (``tests.cluster``), the operator's reconcile function is called in-process
with an API client that counts requests, on a pack of ``--models`` models at ``--per-server`` density:

- cold: nothing exists yet (route table, Deployments, Services, status);
- settle: reconciles until one writes nothing (Deployment statuses arrive asynchronously, each a status change);
- no-op: everything in place (what every resync and event costs);
- +1 server: ``--per-server`` models added (one new server).

The peer is what the AWS sample does: render every server's manifests and ``kubectl apply`` them all
(``--server-side``; the same objects the operator builds, so both write identical state), timed for the first
apply, a re-run
with nothing changed, and a re-run after adding the same models. ``replicas: 0`` so no pods are created and
only API-side cost is measured (scheduling is the control-plane benchmark's business).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelpack.api.modelpack import ModelPack
from modelpack.placement import place
from modelpack_operator.builders.routes import route_tables
from modelpack_operator.builders.server import server_deployment, server_service
from modelpack_operator.kube import Kube
from modelpack_operator.reconcile.modelpack import reconcile_pack
from modelpack_operator.settings import OperatorSettings, ReconcileSettings
from tests.cluster.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
API = "modelpack.dev/v1alpha1"


class CountingKube(Kube):
    """Counts API requests by HTTP method (the figure that grows with pack size)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:  # type: ignore[override]
        self.calls[method] += 1
        return super()._call(method, path, **kwargs)


def pack_doc(namespace: str, models: int, per_server: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelPack",
        "metadata": {"name": "fleet", "namespace": namespace},
        "spec": {
            "store": {"uri": "s3://bench-bucket/fleet"},
            "models": {"count": models},
            "modelsPerServer": per_server,
            "replicas": 0,
            "compute": {"type": "graviton"},
        },
    }


def timed_reconcile(kube: CountingKube, namespace: str, settings: OperatorSettings) -> tuple[float, Counter[str]]:
    body = kube.get(API, "ModelPack", namespace, "fleet")
    assert body is not None
    kube.calls.clear()
    start = time.perf_counter()
    reconcile_pack(kube, body, settings)
    return time.perf_counter() - start, Counter(kube.calls)


def peer_manifests(doc: dict[str, Any], uid: str, settings: OperatorSettings) -> str:
    """The same objects the operator builds, as one manifest file (what a template script renders)."""
    pack = ModelPack.model_validate({**doc, "metadata": {**doc["metadata"], "uid": uid}})
    placement = place(pack.spec.models.expand(), pack.spec.models_per_server)
    objs: list[dict[str, Any]] = route_tables(pack, placement, settings.server)
    for server in placement.servers:
        objs += [server_deployment(pack, server, settings.server), server_service(pack, server, settings.server)]
    # JSON, not YAML: a hex hash such as 1234e567 is a string to PyYAML but a number to kubectl's YAML parser.
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})


def kubectl_apply(cp: ControlPlane, namespace: str, text: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    start = time.perf_counter()
    # Server-side: client-side apply stores the whole object in an annotation, which the route table of a
    # 3,000-model pack exceeds (262144 bytes max), so plain `kubectl apply` cannot even create it.
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", f.name, timeout=600)
    elapsed = time.perf_counter() - start
    Path(f.name).unlink()
    return elapsed


def fmt_calls(calls: Counter[str]) -> str:
    return f"{sum(calls.values())} ({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3000)
    parser.add_argument("--per-server", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--apply-concurrency", type=int, default=8, help="MODELPACK_RECONCILE_APPLY_CONCURRENCY")
    args = parser.parse_args()
    settings = OperatorSettings(reconcile=ReconcileSettings(apply_concurrency=args.apply_concurrency))
    servers = -(-args.models // args.per_server)
    rows: dict[str, list[Any]] = {}
    with ControlPlane() as cp:
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            cp.kubectl("apply", "--server-side", "-f", str(crd))
        cp.kubectl("wait", "--for=condition=Established", "crd/modelpacks.modelpack.dev", "--timeout=60s")
        kube = CountingKube(cp.api_client(), field_manager="modelpack-operator")
        for run in range(args.runs):
            ours, peer = f"ours-{run}", f"peer-{run}"
            for ns in (ours, peer):
                cp.kubectl("create", "namespace", ns)
            doc = pack_doc(ours, args.models, args.per_server)
            cp.apply(doc, namespace=ours)
            uid = kube.get(API, "ModelPack", ours, "fleet")["metadata"]["uid"]  # type: ignore[index]
            cold = timed_reconcile(kube, ours, settings)
            # Until a reconcile writes nothing: the controller-manager fills in Deployment statuses asynchronously,
            # and each change it makes is a real status change for the pack.
            settle = timed_reconcile(kube, ours, settings)
            for _ in range(20):
                if set(settle[1]) == {"GET"}:
                    break
                time.sleep(0.5)
                settle = timed_reconcile(kube, ours, settings)
            noop = timed_reconcile(kube, ours, settings)
            bigger = copy.deepcopy(doc)
            bigger["spec"]["models"]["count"] = args.models + args.per_server
            cp.apply(bigger, namespace=ours)
            grow = timed_reconcile(kube, ours, settings)
            seq_ns = f"seq-{run}"
            cp.kubectl("create", "namespace", seq_ns)
            cp.apply(pack_doc(seq_ns, args.models, args.per_server), namespace=seq_ns)
            sequential = timed_reconcile(
                kube, seq_ns, OperatorSettings(reconcile=ReconcileSettings(apply_concurrency=1))
            )
            cp.kubectl("delete", "namespace", seq_ns, "--wait=false")
            peer_doc = pack_doc(peer, args.models, args.per_server)
            peer_cold = kubectl_apply(cp, peer, peer_manifests(peer_doc, uid, settings))
            peer_noop = kubectl_apply(cp, peer, peer_manifests(peer_doc, uid, settings))
            peer_doc["spec"]["models"]["count"] = args.models + args.per_server
            peer_grow = kubectl_apply(cp, peer, peer_manifests(peer_doc, uid, settings))
            for key, value in {
                "cold": cold,
                "cold_sequential": sequential,
                "settle": settle,
                "noop": noop,
                "grow": grow,
                "peer_cold": peer_cold,
                "peer_noop": peer_noop,
                "peer_grow": peer_grow,
            }.items():
                rows.setdefault(key, []).append(value)
            print(
                f"run {run}: cold {cold[0]:.2f}s/{fmt_calls(cold[1])} (sequential {sequential[0]:.2f}s)  "
                f"noop {noop[0]:.3f}s/{fmt_calls(noop[1])}  "
                f"grow {grow[0]:.3f}s/{fmt_calls(grow[1])} | kubectl apply {peer_cold:.2f}s, "
                f"re-run {peer_noop:.2f}s, +1 server {peer_grow:.2f}s",
                flush=True,
            )
            for ns in (ours, peer):
                cp.kubectl("delete", "namespace", ns, "--wait=false")

    def med(key: str) -> float:
        values = [v[0] if isinstance(v, tuple) else v for v in rows[key]]
        return statistics.median(values)

    print(
        f"\n{args.models} models, {args.per_server}/server = {servers} servers, {args.runs} runs (median), "
        f"apply concurrency {args.apply_concurrency}"
    )
    print("| step | operator reconcile | API requests (operator) | kubectl apply of all manifests | ratio ours/peer |")
    print("|---|---|---|---|---|")
    for step, label in (("cold", "first creation"), ("noop", "nothing changed"), ("grow", "+1 server")):
        ours_s, peer_s = med(step), med(f"peer_{step}")
        calls = rows[step][0][1]
        print(f"| {label} | {ours_s:.3f} s | {fmt_calls(calls)} | {peer_s:.3f} s | {ours_s / peer_s:.3f} |")
        if step == "cold":
            seq_s = med("cold_sequential")
            label = "first creation, one write at a time"
            print(f"| {label} | {seq_s:.3f} s | {fmt_calls(calls)} | {peer_s:.3f} s | {seq_s / peer_s:.3f} |")


if __name__ == "__main__":
    main()
