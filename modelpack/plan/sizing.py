"""How many nodes of which instance type serve N models at a target rate, and what that costs per hour.

The model: the pack has ceil(models / modelsPerServer) server groups; requests spread evenly over models
(the `uniform` spread), so each group receives target_rps / groups and needs
ceil(that / per-server throughput) replicas. A node holds as many server pods as its estimated
allocatable CPU, memory and accelerators allow (see :func:`eks_allocatable`); pods are packed full
nodes first, so nodes = ceil(pods / pods per node). Per-server throughput is taken as measured on the
same compute type: it is only valid for the families of the compute it was measured on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelpack.pricing import ComputeType, InstancePrice, PriceTable

HOURS_PER_MONTH = 730
DEFAULT_MAX_PODS = 110
_MI = 2**20
_GI = 2**30


class PlanError(ValueError):
    """Sizing inputs that cannot produce a plan; the message names the input."""


@dataclass(frozen=True)
class ServerShape:
    """What one server pod requests."""

    cpu_millicores: int
    memory_bytes: int
    accelerators: int = 0


@dataclass(frozen=True)
class PlanRequest:
    models: int
    models_per_server: int
    target_rps: float
    rps_per_server: float
    compute: ComputeType
    server: ServerShape
    families: tuple[str, ...] = ()
    """Restrict to these families; empty means every family of ``compute`` in the price table."""


@dataclass(frozen=True)
class PlanOption:
    instance_type: str
    family: str
    compute: ComputeType
    servers_per_node: int
    limited_by: str
    nodes: int
    server_groups: int
    replicas_per_group: int
    server_pods: int
    hourly_cost: float
    monthly_cost: float
    cost_per_million_requests: float
    utilization: float
    """Server pods / (nodes x servers per node): how full the last nodes leave the fleet."""


def eks_allocatable(price: InstancePrice, max_pods: int = DEFAULT_MAX_PODS) -> tuple[int, int, int]:
    """Estimated (CPU millicores, memory bytes, accelerators) a pod can request on an EKS node.

    The EKS-optimized AMI's kube-reserved: CPU 6% of the first core, 1% of the second, 0.5% of the
    third and fourth, 0.25% of the rest; memory 255Mi + 11Mi per pod slot, plus a 100Mi eviction
    threshold. DaemonSets (aws-node, kube-proxy, device plugins) take a little more on a real node.
    """
    cores = price.vcpu
    reserved_m = 60.0 * min(cores, 1) + 10 * min(max(cores - 1, 0), 1) + 5 * min(max(cores - 2, 0), 2)
    reserved_m += 2.5 * max(cores - 4, 0)
    memory = int(price.memory_gib * _GI) - (255 + 11 * max_pods + 100) * _MI
    return cores * 1000 - math.ceil(reserved_m), max(memory, 0), price.accelerators


def servers_per_node(price: InstancePrice, server: ServerShape) -> tuple[int, str]:
    """How many server pods fit on one node, and which resource runs out first."""
    cpu, memory, accelerators = eks_allocatable(price)
    fits = {
        "cpu": cpu // server.cpu_millicores if server.cpu_millicores else math.inf,
        "memory": memory // server.memory_bytes if server.memory_bytes else math.inf,
    }
    if server.accelerators:
        fits["accelerators"] = accelerators // server.accelerators
    limit = min(fits, key=lambda k: fits[k])
    count = fits[limit]
    return (int(count) if count != math.inf else 0), limit


def _check(request: PlanRequest) -> None:
    if request.models < 1:
        raise PlanError(f"--models must be at least 1, got {request.models}")
    if request.models_per_server < 1:
        raise PlanError(f"--models-per-server must be at least 1, got {request.models_per_server}")
    if not request.target_rps > 0:
        raise PlanError(f"--target-rps must be greater than 0, got {request.target_rps:g}")
    if not request.rps_per_server > 0:
        raise PlanError(f"measured throughput per server must be greater than 0, got {request.rps_per_server:g}")
    if request.server.cpu_millicores <= 0 and request.server.memory_bytes <= 0:
        raise PlanError("a server must request some CPU or memory (--server-cpu, --server-memory)")
    if request.compute in ("inferentia", "gpu") and request.server.accelerators < 1:
        raise PlanError(f"{request.compute} servers need --accelerators-per-server of at least 1")


def candidate_types(request: PlanRequest, prices: PriceTable) -> list[str]:
    families = {f for f, c in prices.families.items() if c == request.compute}
    if request.families:
        unknown = [f for f in request.families if f not in prices.families]
        if unknown:
            raise PlanError(
                f"--family {', '.join(unknown)}: not in the price table "
                f"(families: {', '.join(sorted(prices.families))})"
            )
        wrong = [f for f in request.families if f not in families]
        if wrong:
            raise PlanError(
                f"--family {', '.join(wrong)}: not {request.compute} compute, so the throughput measured on "
                f"{request.compute} does not apply (use {', '.join(sorted(families)) or 'none'})"
            )
        families = set(request.families)
    types = [t for t in prices.instances if prices.family_of(t) in families]
    if not types:
        raise PlanError(f"the price table has no instance types for {request.compute} compute")
    return types


def plan(request: PlanRequest, prices: PriceTable) -> list[PlanOption]:
    """Every instance type that can hold a server, cheapest per hour first."""
    _check(request)
    groups = math.ceil(request.models / request.models_per_server)
    replicas = max(1, math.ceil(request.target_rps / groups / request.rps_per_server))
    pods = groups * replicas
    options = []
    for instance_type in candidate_types(request, prices):
        price = prices.instances[instance_type]
        per_node, limit = servers_per_node(price, request.server)
        if per_node < 1:
            continue
        nodes = math.ceil(pods / per_node)
        hourly = nodes * price.hourly
        options.append(
            PlanOption(
                instance_type=instance_type,
                family=prices.family_of(instance_type),
                compute=request.compute,
                servers_per_node=per_node,
                limited_by=limit,
                nodes=nodes,
                server_groups=groups,
                replicas_per_group=replicas,
                server_pods=pods,
                hourly_cost=hourly,
                monthly_cost=hourly * HOURS_PER_MONTH,
                cost_per_million_requests=hourly / (request.target_rps * 3600) * 1e6,
                utilization=pods / (nodes * per_node),
            )
        )
    if not options:
        raise PlanError(
            f"no {request.compute} instance type in the price table can hold one server requesting "
            f"{request.server.cpu_millicores}m CPU, {request.server.memory_bytes / _GI:g}Gi memory"
            + (f", {request.server.accelerators} accelerators" if request.server.accelerators else "")
        )
    return sorted(options, key=lambda o: (o.hourly_cost, o.nodes, o.instance_type))
