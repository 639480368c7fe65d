"""A server's HPA (spec.autoscaling), PodDisruptionBudget (several pods) and default zone/node spreading."""

from __future__ import annotations

from typing import Any

from modelpack.placement import place
from modelpack_operator import labels as L
from modelpack_operator.builders.availability import server_hpa, server_pdb
from modelpack_operator.builders.server import server_deployment
from modelpack_operator.settings import OperatorSettings
from tests.operator.factories import make_pack

SETTINGS = OperatorSettings().server


def _first(**spec: Any) -> tuple[Any, Any]:
    pack = make_pack(**spec)
    return pack, place(pack.spec.models.expand(), pack.spec.models_per_server).servers[0]


def test_an_autoscaled_pack_gets_one_hpa_per_server_and_its_deployments_leave_replicas_to_it() -> None:
    pack, server = _first(autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCpuUtilization": 70})
    hpa = server_hpa(pack, server)
    assert hpa is not None and hpa["metadata"]["name"] == "bert-s0000"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bert-s0000"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "ModelPack"
    assert "replicas" not in server_deployment(pack, server, SETTINGS)["spec"]


def test_in_flight_target_uses_the_servers_gauge_per_pod() -> None:
    pack, server = _first(autoscaling={"maxReplicas": 4, "targetInFlight": 8})
    hpa = server_hpa(pack, server)
    assert hpa is not None
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "modelpack_requests_in_flight"},
                "target": {"type": "AverageValue", "averageValue": "8"},
            },
        }
    ]


def test_without_autoscaling_there_is_no_hpa_and_replicas_stay_the_operators() -> None:
    pack, server = _first(replicas=3)
    assert server_hpa(pack, server) is None
    assert server_deployment(pack, server, SETTINGS)["spec"]["replicas"] == 3


def test_a_budget_only_for_servers_that_may_run_several_pods() -> None:
    pack, server = _first(replicas=3)
    pdb = server_pdb(pack, server)
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == {L.PACK: "bert", L.SERVER: "0"}
    assert server_pdb(*_first()) is None  # one pod: a budget would only block drains
    assert server_pdb(*_first(autoscaling={"maxReplicas": 3, "targetCpuUtilization": 50})) is not None


def test_pods_spread_over_zones_then_nodes_unless_the_template_says_otherwise() -> None:
    pack, server = _first()
    spread = server_deployment(pack, server, SETTINGS)["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    ]
    assert all(c["labelSelector"]["matchLabels"] == {L.PACK: "bert", L.SERVER: "0"} for c in spread)
    mine = [{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]
    pack, server = _first(compute={"type": "graviton", "podTemplate": {"spec": {"topologySpreadConstraints": mine}}})
    assert server_deployment(pack, server, SETTINGS)["spec"]["template"]["spec"]["topologySpreadConstraints"] == mine


def test_children_do_not_carry_argo_cds_instance_label() -> None:
    pack, server = _first(replicas=2)
    for obj in (server_deployment(pack, server, SETTINGS), server_pdb(pack, server)):
        assert obj is not None and "app.kubernetes.io/instance" not in obj["metadata"]["labels"]
