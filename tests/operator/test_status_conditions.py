"""Conditions keep lastTransitionTime while their status holds; pack status from Deployment availability."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelpack.conditions import Cond, merge_conditions
from modelpack.placement import place
from modelpack.serving import STORE_UNAVAILABLE_EXIT
from modelpack_operator.reconcile.pack_status import (
    PackObservation,
    PodFailure,
    ServerHealth,
    compute_status,
    deployment_health,
    pod_failures,
    stuck_servers,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = merge_conditions(None, [Cond("Ready", False, "ServersNotReady", "0/1")], 1, now=T0)
    same = merge_conditions(first, [Cond("Ready", False, "ServersNotReady", "0/1 still")], 2, now=T1)
    flipped = merge_conditions(same, [Cond("Ready", True, "AllServersReady", "1/1")], 2, now=T1)
    assert first[0]["lastTransitionTime"] == T0
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "0/1 still"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == T1 and flipped[0]["status"] == "True"


def _deployment(
    generation: int = 1,
    observed: int = 1,
    available: int = 1,
    updated: int = 1,
    replicas: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p-s0000", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "availableReplicas": available,
            "updatedReplicas": updated,
            "replicas": replicas,
            "conditions": conditions or [],
        },
    }


def test_a_server_is_ready_only_when_the_current_spec_is_fully_available() -> None:
    assert deployment_health(_deployment(), 1).ready
    assert not deployment_health(_deployment(generation=2), 1).ready  # spec change not yet observed
    assert not deployment_health(_deployment(available=0), 1).ready
    assert not deployment_health(_deployment(replicas=2), 1).ready  # an old pod still around
    assert not deployment_health(None, 1).ready
    stuck = _deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "slow"}])
    assert deployment_health(stuck, 1).failure == "p-s0000: slow"


def _observe(ready: list[bool], previous: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    placement = place([f"m{i}" for i in range(2 * len(ready))], 2)
    health = {
        i: ServerHealth(ready=r, rolling=not r and kw.pop("rolling", True), failure=None) for i, r in enumerate(ready)
    }
    obs = PackObservation(
        generation=3,
        placement=placement,
        health=health,
        replicas=1,
        route_table="p-routes",
        routes=None,
        previous=previous or {},
        **kw,
    )
    return compute_status(obs, now=T0)


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_all_servers_ready_makes_the_pack_ready_with_counts() -> None:
    status = _observe([True, True])
    assert status["phase"] == "Ready"
    assert (status["servers"], status["readyServers"], status["models"], status["readyModels"]) == (2, 2, 4, 4)
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Progressing")["status"] == "False"
    assert _cond(status, "Degraded")["status"] == "False"


def test_rolling_out_is_progressing_and_counts_only_ready_models() -> None:
    status = _observe([True, False])
    assert status["phase"] == "Progressing"
    assert status["readyModels"] == 2
    assert _cond(status, "Ready")["message"] == "1/2 servers ready, 2/4 models servable"


def test_losing_a_server_after_ready_without_rollout_is_degraded() -> None:
    status = _observe([True, False], previous={"phase": "Ready"}, rolling=False)
    assert status["phase"] == "Degraded"
    assert _cond(status, "Degraded")["reason"] == "ServersUnavailable"


def test_store_problem_and_invalid_spec() -> None:
    degraded = _observe([False], store_problem="claim x missing")
    assert degraded["phase"] == "Degraded"
    assert _cond(degraded, "Degraded")["message"] == "claim x missing"
    failed = compute_status(
        PackObservation(3, None, {}, 1, "p-routes", None, {}, problem=("InvalidSpec", "duplicate model names: a")),
        now=T0,
    )
    assert failed["phase"] == "Failed"
    assert _cond(failed, "Ready")["reason"] == "InvalidSpec"


def _server(index: int, available: str | None, since: str = T0) -> dict[str, Any]:
    conditions = [] if available is None else [{"type": "Available", "status": available, "lastTransitionTime": since}]
    labels = {"modelpack.dev/server": str(index)}
    return {"metadata": {"name": f"p-s{index:04d}", "labels": labels}, "status": {"conditions": conditions}}


def test_only_servers_unavailable_for_long_have_their_pods_read_and_only_a_few() -> None:
    now = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)  # two minutes after T0
    deployments = [
        _server(0, "True"),
        _server(1, "False"),
        _server(2, "False", "2026-01-01T00:01:30Z"),
        _server(3, None),
    ]
    assert stuck_servers(deployments, now, after_seconds=60) == [1]
    assert stuck_servers(deployments, now, after_seconds=0) == [1, 2]
    many = [_server(i, "False") for i in range(50)]
    assert stuck_servers(many, now, after_seconds=60, limit=10) == list(range(10))


def _pod(index: int, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-s{index:04d}-abc", "labels": {"modelpack.dev/server": str(index)}},
        "status": {"containerStatuses": [{"name": "server", "ready": False, **container}]},
    }


def test_pod_failures_say_why_servers_do_not_start() -> None:
    store_log = "INFO starting\nmodelpack serve: error: store unavailable: cannot read s3://b/p: AccessDenied\n"
    pods = [
        _pod(
            0,
            state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
            lastState={"terminated": {"exitCode": STORE_UNAVAILABLE_EXIT, "message": store_log}},
        ),
        _pod(1, state={"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "srv:typo"'}}),
        _pod(2, state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
        _pod(3, state={"waiting": {"reason": "ContainerCreating"}}),  # still starting: no verdict
        _pod(4, ready=True, state={"running": {}}, lastState={"terminated": {"exitCode": 1, "message": "old"}}),
    ]
    failures = pod_failures(pods)
    assert failures[0] == PodFailure(
        "pod p-s0000-abc: CrashLoopBackOff, exit 4: modelpack serve: error: store unavailable: "
        "cannot read s3://b/p: AccessDenied",
        True,
        "StoreUnavailable",
    )
    assert failures[1] == PodFailure(
        'pod p-s0001-abc: ImagePullBackOff: Back-off pulling image "srv:typo"', False, "ImagePullFailed"
    )
    assert failures[2].reason == "OOMKilled" and failures[2].message.startswith("pod p-s0002-abc: OOMKilled, exit 137:")
    assert set(failures) == {0, 1, 2}


def test_an_oom_killed_server_in_a_crash_loop_names_its_limit_and_what_raises_it() -> None:
    """What the kubelet reports for a server whose memory limit is too small: OOMKilled, then back-off."""
    pod = _pod(
        0,
        restartCount=3,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    )
    pod["spec"] = {"containers": [{"name": "server", "resources": {"limits": {"memory": "96Mi"}}}]}
    failure = pod_failures([pod])[0]
    assert failure == PodFailure(
        "pod p-s0000-abc: OOMKilled, exit 137 (restarted 3 times): the server used more than its memory limit "
        "96Mi; raise spec.server.memoryBudget, or spec.compute.resources.limits.memory if the pack sets it",
        False,
        "OOMKilled",
    )
    # OOMKilled outranks a plain crash elsewhere in the pack: the Degraded reason says what to fix first.
    crash = _pod(1, restartCount=1, lastState={"terminated": {"exitCode": 1, "message": "Traceback\nValueError: x"}})
    crashed = pod_failures([crash])[1]
    assert crashed == PodFailure("pod p-s0001-abc: Error, exit 1: ValueError: x (restarted 1 time)", False, "CrashLoop")
    placement = place(["a", "b", "c", "d"], 2)
    health = {
        0: ServerHealth(False, False, failure.message, reason=failure.reason),
        1: ServerHealth(False, False, crashed.message, reason=crashed.reason),
    }
    status = compute_status(PackObservation(1, placement, health, 1, "p-routes", None, {}), now=T0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Degraded"
    assert conds["Degraded"]["reason"] == "OOMKilled"
    assert conds["Degraded"]["message"].startswith("pod p-s0000-abc: OOMKilled, exit 137")
    assert "ValueError: x" in conds["Degraded"]["message"]
    assert conds["Ready"]["status"] == "False" and conds["Progressing"]["reason"] == "OOMKilled"


def test_an_unschedulable_pod_carries_the_schedulers_message() -> None:
    message = "0/6 nodes are available: 3 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity."
    pod = {
        "metadata": {"name": "p-s0000-abc", "labels": {"modelpack.dev/server": "0"}},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}],
        },
    }
    failure = pod_failures([pod])[0]
    assert failure.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in failure.message
    placement = place(["a", "b"], 2)
    health = {0: ServerHealth(False, False, failure.message, reason=failure.reason)}
    status = compute_status(PackObservation(1, placement, health, 1, "p-routes", None, {}), now=T0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Degraded"
    assert conds["Degraded"]["status"] == "True" and conds["Degraded"]["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in conds["Degraded"]["message"]
    assert conds["Progressing"]["status"] == "False" and conds["Progressing"]["reason"] == "Unschedulable"


def test_servers_starting_are_progressing_not_a_contradiction() -> None:
    placement = place(["a", "b"], 2)
    health = {0: ServerHealth(False, False, None)}  # rolled out, not available yet, no failure known
    status = compute_status(PackObservation(1, placement, health, 1, "p-routes", None, {}), now=T0)
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Progressing"
    assert conds["Progressing"]["status"] == "True" and conds["Progressing"]["reason"] == "ServersStarting"
    assert conds["Degraded"]["status"] == "False"


def test_a_server_exiting_for_its_store_makes_the_pack_store_unavailable() -> None:
    placement = place(["a", "b", "c", "d"], 2)
    health = {
        0: ServerHealth(False, False, "pod p-s0000-x: CrashLoopBackOff, exit 4: store unavailable", True),
        1: ServerHealth(False, False, "pod p-s0001-y: ImagePullBackOff: no such image", False, "ImagePullFailed"),
    }
    status = compute_status(PackObservation(1, placement, health, 1, "p-routes", None, {}), now=T0)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert status["phase"] == "Degraded"
    assert degraded["reason"] == "StoreUnavailable" and "exit 4: store unavailable" in degraded["message"]
    health[0] = ServerHealth(False, False, None)
    status = compute_status(PackObservation(1, placement, health, 1, "p-routes", None, {}), now=T0)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ImagePullFailed" and "ImagePullBackOff: no such image" in degraded["message"]
