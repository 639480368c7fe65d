"""A ModelPack's status, computed from its placement and its servers' Deployments (pure: no API calls).

Model readiness is derived from Deployment availability, not probed per model: a server pod is Ready
only when ``/v2/health/ready`` answers 200, which the server does once started, and it starts only after
checking it can read its store; so an available Deployment means every model placed on it can be served.
Why a server is not available comes from its Deployment and, for long-unavailable ones, its pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelpack.conditions import Cond, merge_conditions
from modelpack.placement import Placement
from modelpack.serving import STORE_UNAVAILABLE_EXIT
from modelpack_operator import labels as L

WAITING_FAILURES = frozenset(
    {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"}
)
"""Container waiting reasons that mean the server will not start by itself waiting longer."""


@dataclass(frozen=True)
class ServerHealth:
    """What one server Deployment says about itself."""

    ready: bool
    rolling: bool
    failure: str | None
    """ProgressDeadlineExceeded / ReplicaFailure message, or why its pods crash (see :func:`pod_failures`)."""
    store_unavailable: bool = False
    """The server exited because it cannot read the model store."""
    reason: str = "ServerFailing"
    """What kind of failure ``failure`` is, as the Degraded condition's reason (see :data:`FAILURE_REASONS`)."""


FAILURE_REASONS = (
    "StoreUnavailable",
    "Unschedulable",
    "ImagePullFailed",
    "OOMKilled",
    "CrashLoop",
    "ContainerConfigError",
    "PodsRefused",
    "ProgressDeadlineExceeded",
    "ServerFailing",
)
"""Degraded reasons for failing servers, most specific first: when servers fail differently, the first wins."""
IMAGE_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def deployment_health(deployment: Mapping[str, Any] | None, replicas: int) -> ServerHealth:
    """Ready = the current spec is rolled out and every replica is available."""
    if deployment is None:
        return ServerHealth(ready=False, rolling=True, failure=None)
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    observed = status.get("observedGeneration", 0) >= generation
    updated = status.get("updatedReplicas", 0) >= replicas
    available = status.get("availableReplicas", 0) >= replicas
    no_old = status.get("replicas", 0) <= replicas
    failure, reason = None, "ServerFailing"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            failure = f"{deployment['metadata']['name']}: {cond.get('message') or 'progress deadline exceeded'}"
            reason = "ProgressDeadlineExceeded"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            # The ReplicaSet cannot create pods: refused by admission (Pod Security, quota, a missing account).
            failure = f"{deployment['metadata']['name']}: {cond.get('message') or cond.get('reason')}"
            reason = "PodsRefused"
    ready = observed and updated and available and no_old and replicas > 0
    return ServerHealth(ready=ready, rolling=not (observed and updated and no_old), failure=failure, reason=reason)


def stuck_servers(
    deployments: Iterable[Mapping[str, Any]], now: datetime, after_seconds: float, limit: int = 10
) -> list[int]:
    """Servers unavailable for longer than ``after_seconds`` (at most ``limit``): the only ones whose pods are read.

    Reading pods costs a list call whose size grows with the pods; bounding it to a few long-unavailable
    servers keeps a large pack's rollout (thousands of briefly unavailable pods) from paying it.
    """
    out: list[int] = []
    for deployment in deployments:
        available = next(
            (c for c in (deployment.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), None
        )
        if available is None or available.get("status") != "False":
            continue
        try:
            since = datetime.fromisoformat(str(available.get("lastTransitionTime")).replace("Z", "+00:00"))
        except ValueError:
            continue
        index = ((deployment.get("metadata") or {}).get("labels") or {}).get(L.SERVER)
        if (now - since).total_seconds() >= after_seconds and index is not None and index.isdigit():
            out.append(int(index))
    return sorted(out)[:limit]


@dataclass(frozen=True)
class PodFailure:
    message: str
    store_unavailable: bool
    reason: str = "ServerFailing"


def pod_failures(pods: Iterable[Mapping[str, Any]]) -> dict[int, PodFailure]:
    """Why server pods fail to start, by server index, from what the kubelet reports (no logs are read).

    A crashed server's termination message is the tail of its log (FallbackToLogsOnError), whose last
    line is the error `modelpack serve` printed; exit status STORE_UNAVAILABLE_EXIT marks a store problem.
    """
    out: dict[int, PodFailure] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        index = (meta.get("labels") or {}).get(L.SERVER)
        if index is None or not index.isdigit() or int(index) in out:
            continue
        scheduled: dict[str, Any] = next(
            (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {}
        )
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            why = scheduled.get("message") or "no node fits"
            out[int(index)] = PodFailure(f"pod {meta.get('name')}: Unschedulable: {why}"[:300], False, "Unschedulable")
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("ready"):
                continue
            failure = container_failure(pod, cs)
            if failure is not None:
                out[int(index)] = failure
                break
    return out


def container_failure(pod: Mapping[str, Any], cs: Mapping[str, Any]) -> PodFailure | None:
    """Why one not-ready container of a server pod fails, or None while it may still start by itself.

    An OOM kill names the memory limit it hit and what raises it: the limit is the pod's, the knob the pack's.
    A restart count says the kubelet already tried (a crash loop, not one unlucky start).
    """
    name = (pod.get("metadata") or {}).get("name")
    waiting = (cs.get("state") or {}).get("waiting") or {}
    terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
    reason = waiting.get("reason")
    restarts = int(cs.get("restartCount") or 0)
    restarted = f" (restarted {restarts} time{'s' if restarts != 1 else ''})" if restarts else ""
    if terminated and terminated.get("exitCode", 0) != 0:
        code = int(terminated["exitCode"])
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, str(cs.get("name")))
            at = f"its memory limit {limit}" if limit else "its memory limit"
            message = (
                f"pod {name}: OOMKilled, exit {code}{restarted}: the server used more than {at}; raise "
                "spec.server.memoryBudget, or spec.compute.resources.limits.memory if the pack sets it"
            )
            return PodFailure(message[:300], False, "OOMKilled")
        lines = [ln for ln in str(terminated.get("message") or "").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else terminated.get("reason") or "no message"
        store = code == STORE_UNAVAILABLE_EXIT
        message = f"pod {name}: {reason or 'Error'}, exit {code}: {why}"[: 300 - len(restarted)] + restarted
        return PodFailure(message, store, "StoreUnavailable" if store else "CrashLoop")
    if reason in WAITING_FAILURES:
        detail = waiting.get("message") or ""
        kind = (
            "ImagePullFailed"
            if reason in IMAGE_FAILURES
            else "CrashLoop"
            if reason == "CrashLoopBackOff"
            else "ContainerConfigError"
        )
        return PodFailure(f"pod {name}: {reason}: {detail}"[:300].rstrip(": "), False, kind)
    return None


def oom_kills(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(Event name, message) of each container of a server pod whose last run ended in an OOM kill.

    An OOM kill after the server was Ready (its models grew past the limit under load) is restarted by the
    kubelet and the Deployment soon looks available again, so the pack's conditions never show it: this Event
    does. The name is one per container restart, so the kill is recorded once however often the pod is seen.
    """
    meta = pod.get("metadata") or {}
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("reason") != "OOMKilled":
            continue
        failure = container_failure(pod, {**cs, "state": {}})
        name = f"{meta.get('name')}.oomkilled.{cs.get('name')}.{int(cs.get('restartCount') or 0)}"
        if failure is not None:
            out.append((name[:253], failure.message))
    return out


def _memory_limit(pod: Mapping[str, Any], container: str) -> str | None:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
            return None if limit is None else str(limit)
    return None


@dataclass(frozen=True)
class PackObservation:
    """Everything the status is computed from."""

    generation: int | None
    placement: Placement | None
    health: Mapping[int, ServerHealth]
    replicas: int
    route_table: str
    routes: Mapping[str, str] | None
    previous: Mapping[str, Any]
    """The status as last written (conditions keep their transition times)."""
    problem: tuple[str, str] | None = None
    """(reason, message) of a problem that stops the pack being reconciled (phase Failed)."""
    store_problem: str | None = None
    """Why the store looks unavailable (e.g. a missing PersistentVolumeClaim); phase Degraded."""
    route_table_shards: int = 1
    """ConfigMaps the route table spans (``route_table``, then ``route_table``-1, -2, ...)."""


def compute_status(obs: PackObservation, now: str | None = None) -> dict[str, Any]:
    """The whole ``.status`` of the pack, in the API's camelCase."""
    previous_phase = obs.previous.get("phase")
    previous_conditions = obs.previous.get("conditions")
    if obs.problem is not None or obs.placement is None:
        reason, message = obs.problem or ("Unknown", "no placement")
        conds = [
            Cond("Ready", False, reason, message),
            Cond("Progressing", False, reason, message),
            Cond("Degraded", True, reason, message),
        ]
        return {
            "phase": "Failed",
            "observedGeneration": obs.generation,
            "conditions": merge_conditions(previous_conditions, conds, obs.generation, now),
        }
    servers = obs.placement.servers
    ready = [s for s in servers if obs.health.get(s.index, ServerHealth(False, True, None)).ready]
    rolling = [s for s in servers if obs.health.get(s.index, ServerHealth(False, True, None)).rolling]
    failures = [h.failure for h in obs.health.values() if h.failure]
    store_failures = [h.failure for h in obs.health.values() if h.failure and h.store_unavailable]
    ready_models = sum(len(s.models) for s in ready)
    total_models = sum(len(s.models) for s in servers)
    all_ready = len(ready) == len(servers) and len(servers) > 0
    summary = f"{len(ready)}/{len(servers)} servers ready, {ready_models}/{total_models} models servable"

    degraded: tuple[str, str] | None = None
    if obs.store_problem:
        degraded = ("StoreUnavailable", obs.store_problem)
    elif store_failures:
        degraded = ("StoreUnavailable", "; ".join(store_failures[:3]))
    elif failures:
        failing = [h for h in obs.health.values() if h.failure]
        reason = min((h.reason for h in failing), key=FAILURE_REASONS.index)
        first = [h.failure for h in failing if h.reason == reason and h.failure]
        others = [h.failure for h in failing if h.reason != reason and h.failure]
        degraded = (reason, "; ".join([*first, *others][:3]))
    elif not all_ready and not rolling and obs.replicas > 0 and previous_phase in ("Ready", "Degraded"):
        degraded = ("ServersUnavailable", summary)

    if all_ready and degraded is None:
        phase = "Ready"
    elif degraded is not None:
        phase = "Degraded"
    elif obs.replicas == 0:
        phase = "Pending"
    else:
        phase = "Progressing"

    if all_ready:
        ready_cond = Cond("Ready", True, "AllServersReady", summary)
    elif obs.replicas == 0:
        ready_cond = Cond("Ready", False, "ScaledToZero", "spec.replicas is 0: no server pods run")
    else:
        ready_cond = Cond("Ready", False, "ServersNotReady", summary)
    if degraded is not None and not all_ready:
        # Not progressing by itself: say so with the same reason, never Progressing=True next to Degraded=True.
        progressing = Cond("Progressing", False, degraded[0], f"stalled: {degraded[1]}")
    elif rolling:
        progressing = Cond("Progressing", True, "RollingOut", f"{len(rolling)} of {len(servers)} servers rolling out")
    elif not all_ready and obs.replicas > 0:
        progressing = Cond("Progressing", True, "ServersStarting", f"{summary}; waiting for the rest to be available")
    else:
        progressing = Cond("Progressing", False, "RolloutComplete", f"{len(servers)} servers at the current spec")
    degraded_cond = Cond("Degraded", True, *degraded) if degraded else Cond("Degraded", False, "AsExpected", "")

    conds = [ready_cond, progressing, degraded_cond]
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": obs.generation,
        "servers": len(servers),
        "readyServers": len(ready),
        "models": total_models,
        "readyModels": ready_models,
        "routeTable": obs.route_table,
        "routeTableShards": obs.route_table_shards,
        "conditions": merge_conditions(
            previous_conditions, [ready_cond, progressing, degraded_cond], obs.generation, now
        ),
    }
    if obs.routes is not None:
        status["routes"] = dict(obs.routes)
    return status
