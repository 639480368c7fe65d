"""Cost functions against hand-computed cases (prices from a fixed test table, not the shipped one)."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.cost import (
    cost_per_million,
    local_cost,
    pack_cost,
    pack_hourly_cost,
    pod_requests,
    pod_share,
)
from modelpack.pricing import PriceError, PriceTable

PRICES = PriceTable.model_validate(
    {
        "region": "test-1",
        "source": "hand-written test table",
        "lastChecked": "2026-01-01",
        "verified": True,
        "families": {"c7g": "graviton", "inf2": "inferentia"},
        "instances": {
            "c7g.large": {"hourly": 0.08, "vcpu": 2, "memoryGib": 4},
            "c7g.4xlarge": {"hourly": 0.64, "vcpu": 16, "memoryGib": 32},
            "inf2.xlarge": {
                "hourly": 0.76,
                "vcpu": 4,
                "memoryGib": 16,
                "accelerators": 1,
                "acceleratorResource": "aws.amazon.com/neuron",
            },
        },
    }
)


def node(name: str, instance_type: str, allocatable: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"node.kubernetes.io/instance-type": instance_type}},
        "status": {"allocatable": {**allocatable, "pods": "110", "ephemeral-storage": "100Gi"}},
    }


def pod(
    name: str,
    node_name: str | None,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    phase: str = "Running",
    init: dict[str, str] | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    spec: dict[str, Any] = {"containers": [{"name": "server", "resources": resources}]}
    if node_name:
        spec["nodeName"] = node_name
    if init is not None:
        spec["initContainers"] = [{"name": "fetch", "resources": {"requests": init}}]
    return {"metadata": {"name": name}, "spec": spec, "status": {"phase": phase}}


BIG = node("big", "c7g.4xlarge", {"cpu": "16", "memory": "32Gi"})
SMALL = node("small", "c7g.large", {"cpu": "2", "memory": "4Gi"})
INF = node("inf", "inf2.xlarge", {"cpu": "4", "memory": "16Gi", "aws.amazon.com/neuron": "1"})
NODES = {"big": BIG, "small": SMALL, "inf": INF}


def test_cpu_and_memory_share_equal() -> None:
    # 2/16 CPU and 4Gi/32Gi memory: share 1/8 of 0.64/h.
    assert pod_share(pod("a", "big", {"cpu": "2", "memory": "4Gi"}), BIG) == pytest.approx(0.125)
    pods = [pod("a", "big", {"cpu": "2", "memory": "4Gi"}), pod("b", "big", {"cpu": "2", "memory": "4Gi"})]
    assert pack_hourly_cost(pods, NODES, PRICES) == pytest.approx(0.16)


def test_dominant_share_is_memory_when_memory_is_scarcer() -> None:
    # CPU 1/16 but memory 16Gi/32Gi: memory dominates, half the node.
    p = pod("a", "big", {"cpu": "1", "memory": "16Gi"})
    assert pod_share(p, BIG) == pytest.approx(0.5)
    assert pack_hourly_cost([p], NODES, PRICES) == pytest.approx(0.32)


def test_accelerator_dominates_on_inferentia() -> None:
    # 1 of 4 vCPU, 2 of 16 GiB, but the only Neuron device: the whole inf2.xlarge.
    p = pod("a", "inf", {"cpu": "1", "memory": "2Gi", "aws.amazon.com/neuron": "1"})
    assert pod_share(p, INF) == pytest.approx(1.0)
    assert pack_hourly_cost([p], NODES, PRICES) == pytest.approx(0.76)


def test_millicores_and_limits_default_the_request() -> None:
    # 500m of 2 CPUs = 1/4; memory given only as a limit (request defaults to it): 1Gi of 4Gi = 1/4.
    p = pod("a", "small", {"cpu": "500m"}, limits={"memory": "1Gi"})
    assert pod_requests(p)["memory"] == 2**30
    assert pack_hourly_cost([p], NODES, PRICES) == pytest.approx(0.02)


def test_init_container_counts_when_larger() -> None:
    p = pod("a", "big", {"cpu": "1", "memory": "1Gi"}, init={"cpu": "4"})
    assert pod_share(p, BIG) == pytest.approx(0.25)


def test_share_is_capped_at_the_whole_node() -> None:
    assert pod_share(pod("a", "small", {"cpu": "8"}), SMALL) == 1.0


def test_pending_and_finished_pods_cost_nothing() -> None:
    pods = [
        pod("pending", None, {"cpu": "2"}),
        pod("done", "big", {"cpu": "8"}, phase="Succeeded"),
        pod("failed", "big", {"cpu": "8"}, phase="Failed"),
        pod("running", "big", {"cpu": "4"}),
    ]
    assert pack_hourly_cost(pods, NODES, PRICES) == pytest.approx(0.16)


def test_pods_across_instance_types_sum() -> None:
    pods = [pod("a", "big", {"cpu": "8"}), pod("b", "small", {"cpu": "1"}), pod("c", "inf", {"cpu": "2"})]
    # 0.5*0.64 + 0.5*0.08 + 0.5*0.76
    assert pack_hourly_cost(pods, NODES, PRICES) == pytest.approx(0.74)


def test_cost_per_million_formula() -> None:
    # 0.72 $/h at 100 req/s: 360,000 requests an hour -> 2 $ per million.
    assert cost_per_million(0.72, 100) == pytest.approx(2.0)
    assert cost_per_million(0.72, 0) is None


def test_pack_cost_builds_status_cost() -> None:
    pods = [pod(f"p{i}", "big", {"cpu": "2", "memory": "4Gi"}) for i in range(8)]
    cost = pack_cost(pods, NODES, PRICES, throughput=200.0)
    assert cost.hourly_cost == pytest.approx(0.64)
    assert cost.cost_per_million_requests == pytest.approx(0.64 / (200 * 3600) * 1e6)
    assert cost.currency == "USD"
    assert cost.price_source == "hand-written test table; test-1; last checked 2026-01-01"
    assert cost.to_dict()["costPerMillionRequests"] == pytest.approx(0.888889, abs=1e-6)


def test_pack_cost_with_no_throughput_has_no_cost_per_million() -> None:
    cost = pack_cost([pod("a", "big", {"cpu": "16"})], NODES, PRICES, throughput=0.0)
    assert cost.hourly_cost == pytest.approx(0.64)
    assert cost.cost_per_million_requests is None


def test_local_cost() -> None:
    cost = local_cost(0.58, throughput=200.0)
    assert cost.hourly_cost == 0.58
    assert cost.cost_per_million_requests == pytest.approx(0.805556, abs=1e-6)
    assert "--price-per-hour" in (cost.price_source or "")
    with pytest.raises(ValueError, match="price per hour must be greater than 0, got 0"):
        local_cost(0, throughput=1.0)


def test_unknown_instance_type_is_named() -> None:
    odd = node("odd", "m7i.large", {"cpu": "2", "memory": "8Gi"})
    with pytest.raises(PriceError, match=r"instance type 'm7i.large' is not in the price table \(test-1"):
        pack_hourly_cost([pod("a", "odd", {"cpu": "1"})], {"odd": odd}, PRICES)


def test_node_without_instance_type_label_is_named() -> None:
    bare = {"metadata": {"name": "bare", "labels": {}}, "status": {"allocatable": {"cpu": "2"}}}
    with pytest.raises(PriceError, match=r"node bare has no node.kubernetes.io/instance-type label"):
        pack_hourly_cost([pod("a", "bare", {"cpu": "1"})], {"bare": bare}, PRICES)


def test_missing_node_is_named() -> None:
    with pytest.raises(PriceError, match="pod a runs on node gone, which was not given"):
        pack_hourly_cost([pod("a", "gone", {"cpu": "1"})], NODES, PRICES)


def test_bad_quantity_is_named() -> None:
    with pytest.raises(PriceError, match=r"pod a container server: cpu quantity 'lots' is not a Kubernetes quantity"):
        pod_requests(pod("a", "big", {"cpu": "lots"}))
