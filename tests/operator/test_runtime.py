"""The runtime's routing of triggers: which events cost a reconcile (and so API calls) and which do not."""

from __future__ import annotations

from typing import Any, cast

from modelpack_operator import runtime as R
from modelpack_operator.kube import Kube
from modelpack_operator.settings import OperatorSettings


class RecordingKube:
    """Answers every GET with "not found" and records it: a reconcile of a missing pack is exactly one GET."""

    def __init__(self) -> None:
        self.gets: list[tuple[str, str, str]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((kind, namespace, name))
        return None


def _runtime() -> tuple[R.Runtime, RecordingKube]:
    kube = RecordingKube()
    return R.Runtime(cast(Kube, kube), OperatorSettings()), kube


def test_server_events_of_a_live_pack_reconcile_it() -> None:
    runtime, kube = _runtime()
    runtime.server_changed("ns", "bert", "uid-live")
    runtime.server_changed("ns", "bert", None)  # a Deployment without owner (adopted by label) still counts
    assert kube.gets == [("ModelPack", "ns", "bert")] * 2


def test_garbage_collection_of_a_deleted_packs_servers_costs_nothing() -> None:
    runtime, kube = _runtime()
    runtime.pack_deleted("uid-old")
    for _ in range(100):
        runtime.server_changed("ns", "bert", "uid-old")
    assert kube.gets == []
    runtime.server_changed("ns", "bert", "uid-new")  # a pack of the same name created again
    assert kube.gets == [("ModelPack", "ns", "bert")]


def test_deleted_pack_memory_is_bounded_oldest_first(monkeypatch: Any) -> None:
    monkeypatch.setattr(R, "DELETED_PACKS_REMEMBERED", 2)
    runtime, kube = _runtime()
    for uid in ("a", "b", "c"):
        runtime.pack_deleted(uid)
    runtime.server_changed("ns", "p", "b")
    runtime.server_changed("ns", "p", "c")
    assert kube.gets == []
    runtime.server_changed("ns", "p", "a")  # forgotten: reconciled (one GET that finds nothing)
    assert kube.gets == [("ModelPack", "ns", "p")]
