"""The kwok node builders: pure functions, so checked without a cluster."""

from __future__ import annotations

import pytest

from modelpack.pools import GPU_RESOURCE, NEURON_RESOURCE, POOLS, get_pool
from tests.cluster.nodes import DEFAULT_POOLS, build_node, build_nodes, parse_pools


def test_graviton_node_is_arm64_c7g_with_eks_labels() -> None:
    node = build_node(get_pool("graviton"), 1)
    labels = node["metadata"]["labels"]
    assert node["metadata"]["name"] == "graviton-1"
    assert labels["kubernetes.io/arch"] == "arm64"
    assert labels["node.kubernetes.io/instance-type"] == "c7g.4xlarge"
    assert labels["eks.amazonaws.com/nodegroup"] == "graviton"
    assert labels["modelpack.dev/pool"] == "graviton"
    assert labels["type"] == "kwok"
    assert labels["topology.kubernetes.io/zone"] == "us-west-2b"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["status"]["capacity"] == {"cpu": "16", "memory": "32Gi", "pods": "234"}
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["status"]["nodeInfo"]["architecture"] == "arm64"
    assert "taints" not in node["spec"]


def test_x86_node_is_amd64_c6i() -> None:
    labels = build_node(get_pool("x86"), 0)["metadata"]["labels"]
    assert (labels["kubernetes.io/arch"], labels["node.kubernetes.io/instance-type"]) == ("amd64", "c6i.4xlarge")


@pytest.mark.parametrize(
    ("pool", "resource", "instance"),
    [("inferentia", NEURON_RESOURCE, "inf2.xlarge"), ("gpu", GPU_RESOURCE, "g5.xlarge")],
)
def test_accelerator_nodes_expose_their_device_and_are_tainted(pool: str, resource: str, instance: str) -> None:
    node = build_node(get_pool(pool), 0)
    assert node["status"]["capacity"][resource] == "1"
    assert node["status"]["capacity"]["cpu"] == "4"
    assert node["status"]["capacity"]["memory"] == "16Gi"
    assert node["status"]["capacity"]["pods"] == "58"
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == instance
    assert node["spec"]["taints"] == [{"key": resource, "effect": "NoSchedule"}]
    assert get_pool(pool).accelerator_resource() == resource


def test_cpu_pools_have_no_accelerator() -> None:
    assert get_pool("graviton").accelerator_resource() is None
    assert get_pool("x86").accelerator_resource() is None


def test_zones_rotate_within_a_pool() -> None:
    zones = [build_node(get_pool("x86"), i)["metadata"]["labels"]["topology.kubernetes.io/zone"] for i in range(4)]
    assert zones == ["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2a"]


def test_build_nodes_counts_per_pool_with_unique_names() -> None:
    nodes = build_nodes(DEFAULT_POOLS)
    names = [n["metadata"]["name"] for n in nodes]
    assert len(names) == sum(DEFAULT_POOLS.values()) == len(set(names))
    assert sorted(names) == ["gpu-0", "graviton-0", "graviton-1", "inferentia-0", "x86-0", "x86-1"]


def test_builders_return_fresh_dicts() -> None:
    first = build_node(get_pool("gpu"), 0)
    first["status"]["capacity"]["cpu"] = "999"
    first["metadata"]["labels"]["type"] = "changed"
    second = build_node(get_pool("gpu"), 0)
    assert second["status"]["capacity"]["cpu"] == "4"
    assert second["metadata"]["labels"]["type"] == "kwok"
    assert POOLS["gpu"].capacity["cpu"] == "4"


def test_unknown_pool_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown pool 'arm'.*known pools: gpu, graviton, inferentia, x86"):
        build_nodes({"arm": 1})


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pool 'x86' must be a non-negative integer, got -1"):
        build_nodes({"x86": -1})
    with pytest.raises(ValueError, match=r"node index must be >= 0"):
        build_node(get_pool("x86"), -1)


def test_parse_pools() -> None:
    assert parse_pools("graviton=2, x86=1,") == {"graviton": 2, "x86": 1}
    assert parse_pools("") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("graviton", r"pool entry 'graviton' must look like NAME=COUNT"),
        ("tpu=1", r"unknown pool 'tpu' in 'tpu=1'"),
        ("x86=two", r"node count 'two' for pool 'x86' is not an integer"),
        ("gpu=-3", r"node count for pool 'gpu' must be >= 0, got -3"),
    ],
)
def test_parse_pools_errors_name_the_entry(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pools(spec)


def test_pool_data_is_read_only_and_hashable() -> None:
    pool = get_pool("x86")
    with pytest.raises(TypeError):
        pool.capacity["cpu"] = "1"  # type: ignore[index]
    assert len({p: p.name for p in POOLS.values()}) == 4


def test_get_pool_names_the_known_pools() -> None:
    with pytest.raises(ValueError, match=r"unknown pool 'trn1'; known pools: gpu, graviton, inferentia, x86"):
        get_pool("trn1")
