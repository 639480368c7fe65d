"""The EKS node groups modelpack targets, defined once as data.

The test control plane registers fake (kwok) nodes built from these definitions, and the product can
check examples and placements against the same labels, capacities and taints, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ARCH_LABEL = "kubernetes.io/arch"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
POOL_LABEL = "modelpack.dev/pool"
ZONE_LABEL = "topology.kubernetes.io/zone"

NEURON_RESOURCE = "aws.amazon.com/neuron"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class Pool:
    """One EKS managed node group: every node in it has the same shape."""

    name: str
    arch: str
    instance_type: str
    capacity: Mapping[str, str] = field(hash=False)  # read-only mappings: hashed by the other fields
    taints: tuple[Taint, ...] = ()
    zones: tuple[str, ...] = ("us-west-2a", "us-west-2b", "us-west-2c")
    extra_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def labels(self, zone: str) -> dict[str, str]:
        """Labels a node of this pool carries in EKS (plus the pool label modelpack selects on)."""
        return {
            ARCH_LABEL: self.arch,
            "kubernetes.io/os": "linux",
            INSTANCE_TYPE_LABEL: self.instance_type,
            NODEGROUP_LABEL: self.name,
            POOL_LABEL: self.name,
            ZONE_LABEL: zone,
            **self.extra_labels,
        }

    def accelerator_resource(self) -> str | None:
        """The extended resource a pod must request to use this pool's accelerator, if any."""
        for res in (NEURON_RESOURCE, GPU_RESOURCE):
            if res in self.capacity:
                return res
        return None


def _caps(cpu: str, memory: str, pods: str, **extended: str) -> Mapping[str, str]:
    return MappingProxyType({"cpu": cpu, "memory": memory, "pods": pods, **extended})


# Pod limits are EKS's VPC-CNI max-pods for the instance type (eni-max-pods.txt), not the kubelet's 110.
GRAVITON = Pool(name="graviton", arch="arm64", instance_type="c7g.4xlarge", capacity=_caps("16", "32Gi", "234"))
X86 = Pool(name="x86", arch="amd64", instance_type="c6i.4xlarge", capacity=_caps("16", "32Gi", "234"))
INFERENTIA = Pool(
    name="inferentia",
    arch="amd64",
    instance_type="inf2.xlarge",
    capacity=_caps("4", "16Gi", "58", **{NEURON_RESOURCE: "1"}),
    taints=(Taint(key=NEURON_RESOURCE, effect="NoSchedule"),),
)
GPU = Pool(
    name="gpu",
    arch="amd64",
    instance_type="g5.xlarge",
    capacity=_caps("4", "16Gi", "58", **{GPU_RESOURCE: "1"}),
    taints=(Taint(key=GPU_RESOURCE, effect="NoSchedule"),),
)

POOLS: Mapping[str, Pool] = MappingProxyType({p.name: p for p in (GRAVITON, X86, INFERENTIA, GPU)})


def get_pool(name: str) -> Pool:
    """Look a pool up by name, naming the known pools when it is not one."""
    try:
        return POOLS[name]
    except KeyError:
        raise ValueError(f"unknown pool {name!r}; known pools: {', '.join(sorted(POOLS))}") from None
