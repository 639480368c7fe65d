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


class EventKube(RecordingKube):
    """The pack exists; Events are posted, and a second Event of the same name is refused as the API server does."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[dict[str, Any]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((kind, namespace, name))
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace, "uid": "u"}}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        from modelpack_operator.kube import KubeError

        if any(p["metadata"].get("name") == body["metadata"].get("name") for p in self.posted):
            raise KubeError(409, "already exists")
        self.posted.append(body)
        return body


def _server_pod(restarts: int, last: dict[str, Any] | None) -> dict[str, Any]:
    """A server pod as the kubelet reports it after ``restarts`` restarts: running and ready again."""
    status = {"name": "server", "ready": True, "restartCount": restarts, "state": {"running": {}}}
    return {
        "metadata": {"name": "bert-s0000-7f9c", "namespace": "ns", "labels": {"modelpack.dev/server": "0"}},
        "spec": {"containers": [{"name": "server", "resources": {"limits": {"memory": "512Mi"}}}]},
        "status": {"containerStatuses": [{**status, "lastState": {"terminated": last} if last else {}}]},
    }


def test_an_oom_kill_after_ready_is_one_warning_event_on_the_pack_per_kill() -> None:
    kube = EventKube()
    runtime = R.Runtime(cast(Kube, kube), OperatorSettings())
    oom = {"exitCode": 137, "reason": "OOMKilled"}
    runtime.server_pod("ns", "bert", _server_pod(0, None))  # a healthy pod costs no API call
    runtime.server_pod("ns", "bert", _server_pod(1, {"exitCode": 1, "reason": "Error"}))  # not an OOM kill
    assert kube.gets == [] and kube.posted == []
    for _ in range(3):  # the same kill seen on every later status change of the pod
        runtime.server_pod("ns", "bert", _server_pod(1, oom))
    runtime.server_pod("ns", "bert", _server_pod(2, oom))  # a second kill
    assert [(e["type"], e["reason"], e["metadata"]["name"]) for e in kube.posted] == [
        ("Warning", "ServerOOMKilled", "bert-s0000-7f9c.oomkilled.server.1"),
        ("Warning", "ServerOOMKilled", "bert-s0000-7f9c.oomkilled.server.2"),
    ]
    assert kube.posted[0]["involvedObject"]["kind"] == "ModelPack" and kube.posted[0]["involvedObject"]["uid"] == "u"
    assert kube.posted[0]["message"] == (
        "pod bert-s0000-7f9c: OOMKilled, exit 137 (restarted 1 time): the server used more than its memory limit "
        "512Mi; raise spec.server.memoryBudget, or spec.compute.resources.limits.memory if the pack sets it"
    )
    assert len(kube.gets) == 2  # the pack is read once per new kill, never for a kill already reported
    # A second operator pod (or this one after a restart) reporting the same kill: refused as a conflict, quietly.
    R.Runtime(cast(Kube, kube), OperatorSettings()).server_pod("ns", "bert", _server_pod(2, oom))
    assert len(kube.posted) == 2
