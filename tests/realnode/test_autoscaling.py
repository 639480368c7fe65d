"""``spec.autoscaling`` on real pods: the HPA the operator made scales a server out while a LoadTest drives its
CPU over the target, and back in once the load ends, on CPU figures metrics-server scraped from the kubelet.

The HPA controller runs at test speed (``realcluster.HPA_CONTROLLER_ARGS``: a decision every 5 s, scale-in after
20 s of lower recommendations); metrics-server resolves usage every 10 s. Everything else is the real chain:
kubelet -> metrics-server -> the aggregation layer -> the HPA controller -> the Deployment's scale subresource.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from modelpack_operator.labels import FIELD_MANAGER
from tests.cluster import metrics_server
from tests.cluster.controlplane import ControlPlane
from tests.cluster.realcluster import RealCluster
from tests.cluster.wait import wait_for
from tests.realnode.packs import (
    MODELS,
    PER_SERVER,
    control_plane,
    diagnose,
    loadtest,
    ready_pack,
    status,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]
# The server requests 100m CPU (packs.pack), so 30% is 30m: half of what 20 rps cost the server here (57-82m),
# ten times what an idle one spends (2-3m).
SCALING = {"minReplicas": 1, "maxReplicas": 2, "targetCpuUtilization": 30}
RATE, SECONDS = 20, 60
SERVER = "bert-s0000"


@dataclass(frozen=True)
class Sample:
    """One look at the scaling chain, ``t`` seconds after the LoadTest was applied."""

    t: float
    utilization: int | None  # the HPA's current average CPU, percent of the request
    desired: int | None  # the HPA's desiredReplicas
    replicas: int  # the Deployment's spec.replicas
    ready: int
    load: str  # the LoadTest's phase

    def state(self) -> tuple[int | None, int, int, str]:
        return self.desired, self.replicas, self.ready, self.load

    def row(self) -> str:
        return (f"t={self.t:5.0f}s cpu={self.utilization}% desired={self.desired} replicas={self.replicas} "
                f"ready={self.ready} load={self.load or '-'}")  # fmt: skip


def sample(cp: ControlPlane, ns: str, began: float) -> Sample:
    hpa = cp.kubectl_json("get", "hpa", SERVER, "-n", ns).get("status") or {}
    dep = cp.kubectl_json("get", "deployment", SERVER, "-n", ns)
    current = (hpa.get("currentMetrics") or [{}])[0].get("resource", {}).get("current", {})
    return Sample(
        t=time.monotonic() - began,
        utilization=current.get("averageUtilization"),
        desired=hpa.get("desiredReplicas"),
        replicas=dep["spec"]["replicas"],
        ready=dep.get("status", {}).get("readyReplicas", 0),
        load=status(cp, "loadtest", ns, "lt").get("phase", ""),
    )


def pod_cpu(cp: ControlPlane, ns: str) -> dict[str, float]:
    """What ``kubectl top pods`` shows: each server pod's CPU in cores, from the metrics API."""
    got = cp.kubectl("get", "--raw", metrics_server.metrics_path("pods", ns), check=False)
    if got.returncode != 0:
        return {}
    items: list[dict[str, Any]] = json.loads(got.stdout)["items"]
    return {
        i["metadata"]["name"]: float(sum(parse_quantity(c["usage"]["cpu"]) for c in i["containers"]))
        for i in items
        if i["metadata"]["name"].startswith(f"{SERVER}-")
    }


def replica_owners(cp: ControlPlane, ns: str) -> tuple[set[str], list[tuple[str, str, list[str]]]]:
    """The field managers that own the Deployment's spec.replicas, and every entry (manager, subresource, the
    spec fields it owns) for the failure message."""
    dep = cp.kubectl_json("get", "deployment", SERVER, "-n", ns, "--show-managed-fields")
    entries = [
        (f["manager"], f.get("subresource", ""), sorted((f.get("fieldsV1") or {}).get("f:spec", {})))
        for f in dep["metadata"].get("managedFields") or []
    ]
    return {m for m, _, spec in entries if "f:replicas" in spec}, entries


def test_the_hpa_scales_a_server_out_under_a_loadtest_and_back_in_after_it(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path,
    metrics_api: str,
) -> None:  # fmt: skip
    cp, ns = control_plane(real_cluster), real_namespace
    (pod,) = ready_pack(cp, ns, store, MODELS[:PER_SERVER], autoscaling=SCALING)
    hpa = cp.kubectl_json("get", "hpa", SERVER, "-n", ns)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    # kubectl top's API answers for the server pod (through the aggregation layer, from the kubelet's scrape), and
    # the load starts only once the server idles under half the target (its start-up spends more than that).
    name, target = pod["metadata"]["name"], SCALING["targetCpuUtilization"] / 100 * 0.1

    def idle() -> tuple[float] | None:
        cpu = pod_cpu(cp, ns).get(name)
        return (cpu,) if cpu is not None and cpu < target / 2 else None

    what = f"the server pod's usage ({metrics_server.metrics_path('pods', ns)}) under half the target"
    (cpu,) = wait_for(idle, what, 90, 2)
    print(f"[e2e] idle server: {cpu * 1000:.1f}m CPU")

    timeline: list[Sample] = []
    began = time.monotonic()

    def look() -> Sample:
        s = sample(cp, ns, began)
        if not timeline or s.state() != timeline[-1].state():
            print(f"[e2e] {s.row()}")
        timeline.append(s)
        return s

    def until(probe: Any, what: str, timeout: float) -> Sample:
        def check() -> Sample | None:
            s = look()
            return s if probe(s) else None

        try:
            return wait_for(check, what, timeout, 2)
        except TimeoutError as err:
            rows = "\n".join(s.row() for s in timeline[-15:])
            raise AssertionError(f"{err}\n{rows}\n{metrics_server.diagnose(cp)}\n{diagnose(cp, ns)}") from err

    cp.apply([loadtest(ns, duration=f"{SECONDS}s", slo=False, rate=RATE)], namespace=ns)
    out = until(lambda s: s.replicas > 1, "the HPA scaling the server out under load", 150)
    assert out.load == "Running", f"scaled out with no load running: {out.row()}"
    scaled_owners, entries = replica_owners(cp, ns)
    print(f"[e2e] managedFields at 2 pods: {entries}")
    assert FIELD_MANAGER not in scaled_owners, entries
    loaded = pod_cpu(cp, ns)
    print(f"[e2e] under load: {', '.join(f'{n}={v * 1000:.0f}m' for n, v in sorted(loaded.items()))}")
    assert sum(loaded.values()) > target * (1 + 0.1), loaded  # over one pod's target, past the HPA's tolerance

    done = until(lambda s: s.load in ("Succeeded", "Failed"), "the LoadTest finished", SECONDS + 120)
    # The operator reconciled every 15 s meanwhile (the chart's resync): none of them took the count back.
    held = [s for s in timeline if out.t <= s.t and s.load == "Running"]
    assert all(s.replicas == 2 for s in held), "\n".join(s.row() for s in held)
    final = status(cp, "loadtest", ns, "lt")
    results = final.get("results") or {}
    summary = {k: v for k, v in results.items() if not k.endswith("istogram") and k != "perModel"}
    print(f"[e2e] LoadTest: {summary}")
    assert final["phase"] == "Succeeded", f"{final.get('conditions')}\n{diagnose(cp, ns)}"
    assert results["errors"] == 0, summary  # adding a pod under load cost no request

    back = until(lambda s: s.replicas == 1 and s.ready == 1, "the HPA scaling the server back in", 180)
    print(f"[e2e] out {out.t:.0f}s after the LoadTest was applied; load ended by {done.t:.0f}s; "
          f"back to 1 at {back.t:.0f}s")  # fmt: skip
    assert max(s.replicas for s in timeline) == 2
    # Nor is spec.replicas ever the operator's field: its server-side apply leaves it out.
    owners, entries = replica_owners(cp, ns)
    assert FIELD_MANAGER not in owners, entries
    # Judged against what the HPA asks for now, the pack is Ready at one pod again (within a resync).
    wait_for(lambda: status(cp, "modelpack", ns, "bert").get("phase") == "Ready", "the pack Ready at 1 pod", 60, 2)
