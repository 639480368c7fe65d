"""What a pack costs: each pod pays the dominant share of its node's hourly price.

A pod's share of a node is the largest of its request/allocatable ratios over CPU, memory and
accelerators (extended resources such as ``aws.amazon.com/neuron`` or ``nvidia.com/gpu``): the
dominant-resource share. The dominant share, not CPU alone, because the scarce resource is what stops
the node taking more pods -- a server holding one Neuron device of a one-device inf2.xlarge occupies
the whole node even if it asks for one vCPU of four. Allocatable (not capacity) is the denominator
so the system-reserved part of a node is paid for by the pods that run on it, and a full node's pods
sum to its whole price. Pods without a node (Pending) or that have finished cost nothing.

Cost per million requests = hourly cost / (throughput * 3600) * 1e6, throughput in successful
requests per second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from modelpack.api.loadtest import Cost
from modelpack.pricing import INSTANCE_TYPE_LABELS, PriceError, PriceTable

BASE_RESOURCES = ("cpu", "memory")
FINISHED_PHASES = ("Succeeded", "Failed")


def _counted(resource: str) -> bool:
    """CPU, memory and extended resources (accelerators) decide placement; storage and pod slots do not."""
    return resource in BASE_RESOURCES or ("/" in resource and not resource.startswith("hugepages"))


def _quantities(values: Mapping[str, Any] | None, where: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name, raw in (values or {}).items():
        if not _counted(name):
            continue
        try:
            out[name] = parse_quantity(raw)
        except ValueError:
            raise PriceError(f"{where}: {name} quantity {raw!r} is not a Kubernetes quantity") from None
    return out


def _container_requests(container: Mapping[str, Any], where: str) -> dict[str, Decimal]:
    res = container.get("resources") or {}
    # Kubernetes defaults a missing request to the limit.
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return _quantities(merged, f"{where} container {container.get('name', '?')}")


def pod_requests(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """Effective requests the scheduler charges a pod: max(sum of containers, largest init container) + overhead."""
    where = f"pod {(pod.get('metadata') or {}).get('name', '?')}"
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, qty in _container_requests(container, where).items():
            total[name] = total.get(name, Decimal(0)) + qty
    for container in spec.get("initContainers") or []:
        for name, qty in _container_requests(container, where).items():
            total[name] = max(total.get(name, Decimal(0)), qty)
    for name, qty in _quantities(spec.get("overhead"), f"{where} overhead").items():
        total[name] = total.get(name, Decimal(0)) + qty
    return total


def node_allocatable(node: Mapping[str, Any]) -> dict[str, Decimal]:
    status = node.get("status") or {}
    name = (node.get("metadata") or {}).get("name", "?")
    return _quantities(status.get("allocatable") or status.get("capacity"), f"node {name}")


def node_instance_type(node: Mapping[str, Any]) -> str:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for label in INSTANCE_TYPE_LABELS:
        if labels.get(label):
            return str(labels[label])
    raise PriceError(f"node {meta.get('name', '?')} has no {INSTANCE_TYPE_LABELS[0]} label: cannot price it")


def pod_share(pod: Mapping[str, Any], node: Mapping[str, Any]) -> float:
    """Dominant share of ``node`` that ``pod`` requests, in [0, 1]."""
    allocatable = node_allocatable(node)
    shares = [float(qty / allocatable[name]) for name, qty in pod_requests(pod).items() if allocatable.get(name, 0) > 0]
    return min(1.0, max(shares, default=0.0))


def pack_hourly_cost(
    pods: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]], prices: PriceTable
) -> float:
    """Sum over running pods of pod share x node price; ``nodes`` maps node name to the Node object."""
    total = 0.0
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
            continue
        node = nodes.get(node_name)
        if node is None:
            pod_name = (pod.get("metadata") or {}).get("name", "?")
            raise PriceError(f"pod {pod_name} runs on node {node_name}, which was not given")
        total += pod_share(pod, node) * prices.price_of(node_instance_type(node)).hourly
    return total


def cost_per_million(hourly_cost: float, throughput: float) -> float | None:
    """USD per million successful requests; None when nothing succeeded (the cost is unbounded)."""
    if hourly_cost < 0:
        raise ValueError(f"hourly cost must not be negative, got {hourly_cost}")
    if throughput <= 0:
        return None
    return hourly_cost / (throughput * 3600) * 1e6


def pack_cost(
    pods: list[dict[str, Any]], nodes: dict[str, dict[str, Any]], prices: PriceTable, throughput: float
) -> Cost:
    """status.cost of a LoadTest: what the pack's pods occupy, and what a million requests cost at ``throughput``."""
    hourly = pack_hourly_cost(pods, nodes, prices)
    return Cost(
        hourly_cost=round(hourly, 6),
        cost_per_million_requests=_rounded(cost_per_million(hourly, throughput)),
        currency=prices.currency,
        price_source=prices.describe_source(),
    )


def local_cost(price_per_hour: float, throughput: float, currency: str = "USD") -> Cost:
    """Cost of a run on one machine whose whole price the user gives (``modelpack run --price-per-hour``)."""
    if price_per_hour <= 0:
        raise ValueError(f"price per hour must be greater than 0, got {price_per_hour}")
    return Cost(
        hourly_cost=price_per_hour,
        cost_per_million_requests=_rounded(cost_per_million(price_per_hour, throughput)),
        currency=currency,
        price_source="--price-per-hour (whole machine)",
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
