"""On the real control plane: an autoscaled pack's replica count belongs to its HPA (the operator's reconciles
never take it back), servers of several pods get a PodDisruptionBudget, and their pods spread over zones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from modelpack_operator import labels as L
from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.operator.factories import pack_doc
from tests.operator.harness import OperatorProcess, get_status, wait_until

pytestmark = pytest.mark.cluster


def _apply(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def test_the_hpas_replica_count_survives_the_operators_reconciles(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    scaling = {"minReplicas": 1, "maxReplicas": 4, "targetCpuUtilization": 60}
    pack = pack_doc(namespace=namespace, models={"count": 2}, modelsPerServer=2, autoscaling=scaling)
    _apply(crds, namespace, pack)
    hpa = wait_until(
        lambda: kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, "bert-s0000"), "the HPA", op=op
    )
    assert hpa["spec"]["maxReplicas"] == 4
    assert kube.get("policy/v1", "PodDisruptionBudget", namespace, "bert-s0000") is not None
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "Ready", op=op)
    # What the HPA controller does under load: write the scale subresource as another field manager.
    crds.kubectl("scale", "-n", namespace, "deployment/bert-s0000", "--replicas=3")
    # A spec change makes the operator apply the Deployment again (a new pod template)...
    pack["spec"]["server"] = {"preload": True}
    _apply(crds, namespace, pack)

    def reapplied() -> dict[str, Any] | None:
        dep = kube.get("apps/v1", "Deployment", namespace, "bert-s0000") or {}
        args = dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", [])
        return dep if "--preload" in args else None

    dep = wait_until(reapplied, "the Deployment re-applied with --preload", op=op)
    # ...and the HPA's count is still there, owned by no operator field.
    assert dep["spec"]["replicas"] == 3
    owners = {f["manager"] for f in dep["metadata"]["managedFields"] if "f:replicas" in str(f.get("fieldsV1"))}
    assert L.FIELD_MANAGER not in owners, owners
    status = wait_until(
        lambda: (s := get_status(kube, "ModelPack", namespace, "bert")).get("observedGeneration") == 2 and s,
        "generation 2 observed",
        op=op,
    )
    assert (kube.get("apps/v1", "Deployment", namespace, "bert-s0000") or {})["spec"]["replicas"] == 3
    assert status["phase"] in ("Ready", "Progressing")


def test_a_servers_pods_spread_over_zones_and_may_lose_one_at_a_time(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    _apply(crds, namespace, pack_doc(namespace=namespace, models={"count": 2}, modelsPerServer=2, replicas=2))
    pdb = wait_until(lambda: kube.get("policy/v1", "PodDisruptionBudget", namespace, "bert-s0000"), "PDB", op=op)
    assert pdb["spec"]["maxUnavailable"] == 1

    def placed() -> list[str] | None:
        pods = kube.list("v1", "Pod", namespace, f"{L.PACK}=bert")
        nodes = [p["spec"].get("nodeName") for p in pods]
        return nodes if len(nodes) == 2 and all(nodes) else None

    nodes = wait_until(placed, "2 pods scheduled", op=op)
    zones = {
        (kube.get("v1", "Node", None, n) or {})["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes
    }
    assert len(zones) == 2, (nodes, zones)  # the two graviton nodes are in two zones
    # Back to one pod: no budget left behind to block node drains.
    _apply(crds, namespace, pack_doc(namespace=namespace, models={"count": 2}, modelsPerServer=2, replicas=1))
    wait_until(
        lambda: kube.get("policy/v1", "PodDisruptionBudget", namespace, "bert-s0000") is None, "PDB pruned", op=op
    )
