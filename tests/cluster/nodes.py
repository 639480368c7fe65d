"""Fake kwok nodes shaped like the EKS node groups in ``modelpack.pools``.

Node objects are pure dicts built from the pool data; kwok (which manages nodes annotated
``kwok.x-k8s.io/node=fake``) then marks them Ready and plays kubelet for the pods bound to them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelpack.pools import POOLS, Pool, get_pool

if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane

DEFAULT_POOLS: Mapping[str, int] = {"graviton": 2, "x86": 2, "inferentia": 1, "gpu": 1}
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}


def node_name(pool: Pool, index: int) -> str:
    return f"{pool.name}-{index}"


def build_node(pool: Pool, index: int) -> dict[str, Any]:
    """One kwok Node of ``pool``; zones rotate across the pool's zones like an EKS node group's subnets."""
    if index < 0:
        raise ValueError(f"node index must be >= 0, got {index}")
    name = node_name(pool, index)
    zone = pool.zones[index % len(pool.zones)]
    capacity = dict(pool.capacity)
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {**pool.labels(zone), "kubernetes.io/hostname": name, "type": "kwok"},
            "annotations": {**KWOK_ANNOTATION, "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "nodeInfo": {"architecture": pool.arch, "operatingSystem": "linux"},
        },
    }
    if pool.taints:
        node["spec"]["taints"] = [t.to_dict() for t in pool.taints]
    return node


def build_nodes(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Nodes for every pool in ``counts`` (pool name -> node count), in a stable order."""
    nodes: list[dict[str, Any]] = []
    for name, count in counts.items():
        pool = get_pool(name)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"node count for pool {name!r} must be a non-negative integer, got {count!r}")
        nodes += [build_node(pool, i) for i in range(count)]
    return nodes


def parse_pools(spec: str) -> dict[str, int]:
    """Parse ``graviton=2,x86=1`` (the CLI's --pools) into counts, naming the bad part on error."""
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, num = part.partition("=")
        if not sep:
            raise ValueError(f"pool entry {part!r} must look like NAME=COUNT (e.g. graviton=2)")
        name = name.strip()
        if name not in POOLS:
            raise ValueError(f"unknown pool {name!r} in {part!r}; known pools: {', '.join(sorted(POOLS))}")
        try:
            counts[name] = int(num)
        except ValueError:
            raise ValueError(f"node count {num!r} for pool {name!r} is not an integer") from None
        if counts[name] < 0:
            raise ValueError(f"node count for pool {name!r} must be >= 0, got {counts[name]}")
    return counts


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    taints = node.get("spec", {}).get("taints", [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)


def register_pools(cp: ControlPlane, counts: Mapping[str, int] = DEFAULT_POOLS, timeout: float = 60.0) -> list[str]:
    """Create the pools' nodes and wait until kwok has made every one Ready and schedulable."""
    nodes = build_nodes(counts)
    if not nodes:
        return []
    cp.apply(nodes)
    names = {n["metadata"]["name"] for n in nodes}
    deadline = time.monotonic() + timeout
    while True:
        items = cp.kubectl_json("get", "nodes", "-l", "type=kwok")["items"]
        pending = names - {n["metadata"]["name"] for n in items if _ready(n)}
        if not pending:
            return sorted(names)
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not Ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
        time.sleep(0.2)
