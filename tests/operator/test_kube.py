"""The operator's API client against the real API server: lists read in pages, without managedFields."""

from __future__ import annotations

import pytest

from modelpack_operator import kube as K
from modelpack_operator.kube import Kube

pytestmark = pytest.mark.cluster


def test_list_follows_every_page_and_drops_managed_fields(
    kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": namespace}}
        kube.apply({**cm, "metadata": {**cm["metadata"], "labels": {"page-test": "yes"}}, "data": {"i": str(i)}})
    live = kube.get("v1", "ConfigMap", namespace, "cm-0")
    assert live is not None and live["metadata"]["managedFields"]  # the server does keep them
    monkeypatch.setattr(K, "LIST_PAGE", 2)  # 5 objects: 3 pages
    items = kube.list("v1", "ConfigMap", namespace, "page-test=yes")
    assert sorted(i["metadata"]["name"] for i in items) == [f"cm-{i}" for i in range(5)]
    assert all("managedFields" not in i["metadata"] for i in items)
    assert all(i["apiVersion"] == "v1" and i["kind"] == "ConfigMap" for i in items)
    assert kube.list("v1", "ConfigMap", namespace, "page-test=no") == []
