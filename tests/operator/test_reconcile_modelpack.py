"""A pack's reconcile against an in-memory API: its objects, shrinking, a long model list, and the limits."""

from __future__ import annotations

from typing import Any

from modelpack.api.common import API_VERSION
from modelpack_operator import labels as L
from modelpack_operator.reconcile.modelpack import reconcile_pack
from modelpack_operator.settings import LimitSettings, OperatorSettings
from tests.operator.factories import pack_doc
from tests.operator.harness import condition
from tests.operator.memkube import MemKube

SETTINGS = OperatorSettings()


def _reconcile(kube: MemKube, settings: OperatorSettings = SETTINGS) -> dict[str, Any]:
    body = kube.get(API_VERSION, "ModelPack", "ns", "bert")
    assert body is not None
    return reconcile_pack(kube.as_kube(), body, settings)


def _names(kube: MemKube, kind: str, selector: str) -> list[str]:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    return sorted(o["metadata"]["name"] for o in kube.list(api_version, kind, "ns", selector))


def test_a_pack_becomes_servers_services_and_its_route_table_then_shrinks() -> None:
    kube = MemKube(pack_doc(models={"count": 5}, modelsPerServer=2))
    status = _reconcile(kube)
    assert status["servers"] == 3 and status["models"] == 5
    assert _names(kube, "Deployment", L.pack_selector("bert")) == ["bert-s0000", "bert-s0001", "bert-s0002"]
    assert _names(kube, "Service", L.pack_selector("bert")) == ["bert-s0000", "bert-s0001", "bert-s0002"]
    assert _names(kube, "ConfigMap", L.routes_selector("bert")) == ["bert-routes"]
    assert condition(status, "Ready")["status"] == "False"  # no Deployment is available yet
    kube.put(pack_doc(models={"count": 2}, modelsPerServer=2))
    status = _reconcile(kube)
    assert status["servers"] == 1
    assert _names(kube, "Deployment", L.pack_selector("bert")) == ["bert-s0000"]


def test_a_server_of_many_models_gets_its_list_config_map_and_loses_it_when_the_list_shrinks() -> None:
    kube = MemKube(pack_doc(models={"count": 8000}, modelsPerServer=8000))
    _reconcile(kube)
    assert _names(kube, "ConfigMap", L.models_selector("bert")) == ["bert-s0000-models"]
    kube.put(pack_doc(models={"count": 8}, modelsPerServer=8000))
    _reconcile(kube)
    assert _names(kube, "ConfigMap", L.models_selector("bert")) == []
    assert _names(kube, "ConfigMap", L.routes_selector("bert")) == ["bert-routes"]  # not pruned with them


def test_a_pack_over_the_limit_makes_nothing_and_says_why() -> None:
    kube = MemKube(pack_doc(models={"count": 50}, modelsPerServer=2))
    settings = OperatorSettings(limits=LimitSettings(max_servers_per_pack=10))
    status = _reconcile(kube, settings)
    assert status["phase"] == "Failed" and condition(status, "Degraded")["reason"] == "TooLarge"
    assert "over the limit of 10" in condition(status, "Ready")["message"]
    assert kube.list("apps/v1", "Deployment", "ns") == []
    assert [e["reason"] for e in kube.events] == ["TooLarge"]
