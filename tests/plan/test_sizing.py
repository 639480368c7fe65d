"""Sizing arithmetic against hand-computed fleets."""

from __future__ import annotations

import pytest

from modelpack.plan import PlanError, PlanRequest, ServerShape, plan
from modelpack.plan.sizing import eks_allocatable, servers_per_node
from modelpack.pricing import PriceTable, default_price_table

GI = 2**30
MI = 2**20
PRICES = default_price_table()
SERVER = ServerShape(cpu_millicores=2000, memory_bytes=4 * GI)


def request(**overrides: object) -> PlanRequest:
    base: dict[str, object] = {
        "models": 3000,
        "models_per_server": 16,
        "target_rps": 5000.0,
        "rps_per_server": 200.0,
        "compute": "graviton",
        "server": SERVER,
    }
    base.update(overrides)
    return PlanRequest(**base)  # type: ignore[arg-type]


def test_eks_allocatable_of_c7g_4xlarge() -> None:
    # 16 cores: 60 + 10 + 2*5 + 12*2.5 = 110m reserved; 32Gi - (255 + 11*110 + 100)Mi.
    cpu, memory, acc = eks_allocatable(PRICES.instances["c7g.4xlarge"])
    assert cpu == 15890
    assert memory == 32 * GI - 1565 * MI
    assert acc == 0


def test_servers_per_node_and_limit() -> None:
    assert servers_per_node(PRICES.instances["c7g.4xlarge"], SERVER) == (7, "cpu")
    # Memory-heavy servers: 31203Mi / 8Gi = 3.
    assert servers_per_node(PRICES.instances["c7g.4xlarge"], ServerShape(1000, 8 * GI)) == (3, "memory")
    # One Neuron device per inf2.xlarge: one server, whatever the CPU.
    inf = ServerShape(cpu_millicores=1000, memory_bytes=2 * GI, accelerators=1)
    assert servers_per_node(PRICES.instances["inf2.xlarge"], inf) == (1, "accelerators")
    assert servers_per_node(PRICES.instances["inf2.48xlarge"], inf) == (12, "accelerators")


def test_graviton_fleet_of_3000_models() -> None:
    options = plan(request(), PRICES)
    # 3000/16 -> 188 servers; 5000/188 = 26.6 req/s each < 200: one replica each.
    assert {(o.server_groups, o.replicas_per_group, o.server_pods) for o in options} == {(188, 1, 188)}
    by_type = {o.instance_type: o for o in options}
    # c7g.large (1930m allocatable) and c7g.medium cannot hold a 2-CPU server.
    assert "c7g.large" not in by_type and "c7g.medium" not in by_type
    # c7g.8xlarge: 31850m -> 15 per node; ceil(188/15) = 13 nodes x 1.16 = 15.08/h.
    best = options[0]
    assert best.instance_type == "c7g.8xlarge"
    assert (best.servers_per_node, best.nodes) == (15, 13)
    assert best.hourly_cost == pytest.approx(15.08)
    assert best.monthly_cost == pytest.approx(15.08 * 730)
    assert best.cost_per_million_requests == pytest.approx(15.08 / (5000 * 3600) * 1e6)
    assert best.utilization == pytest.approx(188 / 195)
    assert (by_type["c7g.4xlarge"].servers_per_node, by_type["c7g.4xlarge"].nodes) == (7, 27)
    assert by_type["c7g.xlarge"].nodes == 188
    costs = [o.hourly_cost for o in options]
    assert costs == sorted(costs)
    assert {o.family for o in options} == {"c7g"}


def test_rate_beyond_one_replica_adds_replicas() -> None:
    # 100k req/s over 188 servers: 531.9 each -> ceil(531.9/200) = 3 replicas -> 564 pods.
    options = plan(request(target_rps=100_000.0), PRICES)
    assert (options[0].replicas_per_group, options[0].server_pods) == (3, 564)


def test_x86_compares_two_families() -> None:
    options = plan(request(compute="x86"), PRICES)
    assert {o.family for o in options} == {"c6i", "c5"}
    only_c5 = plan(request(compute="x86", families=("c5",)), PRICES)
    assert {o.family for o in only_c5} == {"c5"}


def test_inferentia_one_server_per_device() -> None:
    inf = ServerShape(cpu_millicores=1000, memory_bytes=2 * GI, accelerators=1)
    options = plan(request(compute="inferentia", server=inf, models=160, target_rps=100.0), PRICES)
    by_type = {o.instance_type: o for o in options}
    # 10 servers: 10 x inf1.xlarge (0.228) = 2.28/h is the cheapest.
    assert options[0].instance_type == "inf1.xlarge"
    assert options[0].hourly_cost == pytest.approx(2.28)
    assert by_type["inf2.48xlarge"].nodes == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": 0}, "--models must be at least 1, got 0"),
        ({"target_rps": 0.0}, "--target-rps must be greater than 0, got 0"),
        ({"models_per_server": 0}, "--models-per-server must be at least 1, got 0"),
        ({"rps_per_server": -5.0}, "measured throughput per server must be greater than 0, got -5"),
        ({"families": ("g5",)}, "--family g5: not graviton compute"),
        ({"families": ("m7i",)}, "--family m7i: not in the price table"),
        ({"compute": "gpu"}, "gpu servers need --accelerators-per-server of at least 1"),
        ({"server": ServerShape(cpu_millicores=200_000, memory_bytes=GI)}, "no graviton instance type in the price"),
    ],
)
def test_bad_requests_are_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan(request(**overrides), PRICES)


def test_compute_without_families_in_table() -> None:
    table = PriceTable.model_validate(
        {
            "region": "r",
            "source": "s",
            "lastChecked": "d",
            "families": {"c7g": "graviton"},
            "instances": {"c7g.large": {"hourly": 1, "vcpu": 2, "memoryGib": 4}},
        }
    )
    with pytest.raises(PlanError, match="the price table has no instance types for x86 compute"):
        plan(request(compute="x86"), table)
