"""How many pods a server runs and may lose: its HorizontalPodAutoscaler (``spec.autoscaling``) and its
PodDisruptionBudget (a server of several pods loses at most one to a drain or an upgrade at a time)."""

from __future__ import annotations

from typing import Any

from modelpack.api.modelpack import ModelPack
from modelpack.placement import Server, server_name
from modelpack_operator import labels as L
from modelpack_operator.builders.meta import object_meta, owner_reference, with_hash
from modelpack_operator.builders.server import server_labels

IN_FLIGHT_METRIC = "modelpack_requests_in_flight"


def _meta(pack: ModelPack, server: Server) -> dict[str, Any]:
    name = pack.metadata.name
    labels = {**server_labels(name, server.index), L.COMPONENT: L.SERVER_COMPONENT}
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    return object_meta(server_name(name, server.index), pack.metadata.namespace or "default", labels, owner)


def server_hpa(pack: ModelPack, server: Server) -> dict[str, Any] | None:
    """The server's HPA when the pack autoscales (None otherwise): CPU utilisation, or in-flight requests per pod."""
    scaling = pack.spec.autoscaling
    if scaling is None:
        return None
    if scaling.target_cpu_utilization is not None:
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
            },
        }
    else:
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": IN_FLIGHT_METRIC},
                "target": {"type": "AverageValue", "averageValue": f"{scaling.target_in_flight:g}"},
            },
        }
    obj = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(pack, server),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": server.name(pack.metadata.name)},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [metric],
        },
    }
    return with_hash(obj)


def server_pdb(pack: ModelPack, server: Server) -> dict[str, Any] | None:
    """At most one pod of a server unavailable by eviction, when it may run more than one (None otherwise: a
    budget on a single pod would only block node drains)."""
    scaling = pack.spec.autoscaling
    if (scaling.max_replicas if scaling else pack.spec.replicas) <= 1:
        return None
    obj = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(pack, server),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": server_labels(pack.metadata.name, server.index)}},
    }
    return with_hash(obj)
