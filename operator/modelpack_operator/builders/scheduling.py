"""Where server pods may run, per compute type; the user's own scheduling fields are applied last.

The node labels and accelerator resource names come from ``modelpack.pools`` (the node groups the test
cluster registers as fake nodes), so a pack's selectors and the nodes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from modelpack.api.modelpack import Compute
from modelpack.pools import ARCH_LABEL, INSTANCE_TYPE_LABEL, ZONE_LABEL, get_pool
from modelpack_operator.settings import ServerSettings

HOSTNAME_LABEL = "kubernetes.io/hostname"


def node_selector(compute: Compute) -> dict[str, str]:
    """The architecture the image variant is built for, then the user's extra labels."""
    return {ARCH_LABEL: get_pool(compute.type).arch, **(compute.node_selector or {})}


def tolerations(compute: Compute) -> list[dict[str, Any]]:
    """Accelerator node groups are tainted for their resource (as EKS does); tolerate that taint."""
    out: list[dict[str, Any]] = []
    accelerator = get_pool(compute.type).accelerator_resource()
    if accelerator:
        out.append({"key": accelerator, "operator": "Exists", "effect": "NoSchedule"})
    for t in compute.tolerations or []:
        out.append(t.to_dict())
    return out


def spread(selector: dict[str, str]) -> list[dict[str, Any]]:
    """Spread a server's pods over zones, then nodes, as a preference (a full zone never blocks scheduling);
    ``compute.podTemplate.spec.topologySpreadConstraints`` replaces it."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        for key in (ZONE_LABEL, HOSTNAME_LABEL)
    ]


def affinity(compute: Compute) -> dict[str, Any] | None:
    """Restrict to the listed instance types; ``None`` when any instance of the architecture will do."""
    if not compute.instance_types:
        return None
    expression = {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(compute.instance_types)}
    term = {"matchExpressions": [expression]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def server_image(image: str, compute: Compute, settings: ServerSettings) -> str:
    """The image variant for the compute type: Neuron and CUDA builds carry a tag suffix.

    Multi-arch manifests cover graviton and x86 with one tag. An image whose tag already ends with the
    suffix (or a digest reference) is used as given.
    """
    suffix = {"inferentia": settings.neuron_image_suffix, "gpu": settings.gpu_image_suffix}.get(compute.type, "")
    if not suffix or "@" in image:
        return image
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return f"{image}:latest{suffix}"
    return image if tag.endswith(suffix) else f"{name}:{tag}{suffix}"
