"""Reconcile one ModelPack: place its models, make its servers and route table exist, report status.

Level-triggered and idempotent: the function reads everything it needs from the API (the pack, the
route table holding the previous placement, the pack's Deployments and Services), so it can run after
any event, after a restart, or twice in a row; a second run that finds everything in place writes
nothing. API calls per run: 3 reads (+1 for pvc:// stores, +1 pod list while servers stay unavailable),
plus one write per changed object.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modelpack.api.common import API_VERSION
from modelpack.api.limits import pack_limit_problem
from modelpack.api.loading import format_validation_error
from modelpack.api.modelpack import ModelPack
from modelpack.placement import Placement, place
from modelpack_operator import events
from modelpack_operator import labels as L
from modelpack_operator.builders.availability import server_hpa, server_pdb
from modelpack_operator.builders.rbac import server_service_account
from modelpack_operator.builders.routes import (
    RouteTableTooLarge,
    remembered_placement,
    route_table_name,
    route_tables,
    routes,
)
from modelpack_operator.builders.server import models_config_map, server_deployment, server_service
from modelpack_operator.builders.store import parse_pvc
from modelpack_operator.kube import Kube, KubeError
from modelpack_operator.reconcile.apply import SyncReport, sync
from modelpack_operator.reconcile.pack_status import (
    PackObservation,
    ServerHealth,
    compute_status,
    deployment_health,
    pod_failures,
    stuck_servers,
)
from modelpack_operator.settings import OperatorSettings
from modelpack_operator.status import write_status

log = logging.getLogger(__name__)


class _TooLarge(ValueError):
    """The pack is over the operator's limits (LimitSettings)."""


def parse_pack(body: dict[str, Any]) -> ModelPack:
    """The API object as the typed model; raises ValueError naming the bad fields (CRD validation should prevent it)."""
    try:
        return ModelPack.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body})
    except ValidationError as err:
        raise ValueError(format_validation_error(err)) from None


def _store_problem(kube: Kube, pack: ModelPack, namespace: str) -> str | None:
    if not pack.spec.store.uri.startswith("pvc://"):
        return None
    claim, _ = parse_pvc(pack.spec.store.uri)
    if kube.get("v1", "PersistentVolumeClaim", namespace, claim) is None:
        return f"PersistentVolumeClaim {claim!r} (spec.store.uri) does not exist in namespace {namespace}"
    return None


def limit_problem(pack: ModelPack, settings: OperatorSettings) -> str | None:
    """Why the pack is more than this operator takes on, from its size alone (nothing expanded or placed)."""
    problem = pack_limit_problem(
        pack.spec,
        settings.limits.max_models_per_pack,
        settings.limits.max_servers_per_pack,
        source="MODELPACK_LIMITS_MAX_MODELS_PER_PACK / MODELPACK_LIMITS_MAX_SERVERS_PER_PACK",
    )
    return None if problem is None else f"{problem}; nothing was created"


def _refusal(err: KubeError) -> str | None:
    """The API server's message when it refused a child object for good (invalid, forbidden); None if transient."""
    return str(err) if 400 <= err.status < 500 and err.status not in (408, 409, 429) else None


def _ensure_service_account(kube: Kube, namespace: str, settings: OperatorSettings) -> None:
    if not (settings.server.manage_service_account and settings.server.service_account):
        return
    desired = server_service_account(namespace, settings.server.service_account)
    live = kube.get("v1", "ServiceAccount", namespace, settings.server.service_account)
    if live is None:  # an existing account (the admin's, or ours) is left as it is
        kube.apply(desired)


def _place(pack: ModelPack, route_shards: list[dict[str, Any]]) -> Placement:
    remembered = remembered_placement(route_shards)
    return place(
        pack.spec.models.expand(),
        pack.spec.models_per_server,
        previous=remembered.assignment,
        previous_models_per_server=remembered.models_per_server,
    )


def _explain_stuck_servers(
    kube: Kube,
    namespace: str,
    pack: str,
    deployments: list[dict[str, Any]],
    health: dict[int, ServerHealth],
    settings: OperatorSettings,
) -> None:
    """Read the pods of servers unavailable for a while (one bounded list call) and record why they fail."""
    now = datetime.now(UTC)
    stuck = [i for i in stuck_servers(deployments, now, settings.reconcile.pod_check_after_seconds) if i in health]
    if not stuck:
        return
    selector = f"{L.PACK}={pack},{L.SERVER} in ({','.join(str(i) for i in stuck)})"
    for index, failure in pod_failures(kube.list("v1", "Pod", namespace, selector)).items():
        if index in health and not health[index].failure:
            health[index] = replace(
                health[index],
                failure=failure.message,
                store_unavailable=failure.store_unavailable,
                reason=failure.reason,
            )


def reconcile_pack(kube: Kube, body: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """Bring one pack's objects to their desired state and write its status; returns the status."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    previous = body.get("status") or {}
    report = SyncReport()
    problem: tuple[str, str] | None = None
    placement: Placement | None = None
    store_problem: str | None = None
    health: dict[int, ServerHealth] = {}
    table: dict[str, str] | None = None
    replicas = 0
    shards = 1
    try:
        pack = parse_pack(body)
        replicas = pack.spec.autoscaling.min_replicas if pack.spec.autoscaling else pack.spec.replicas
        if (too_large := limit_problem(pack, settings)) is not None:
            raise _TooLarge(too_large)
        live_shards = kube.list("v1", "ConfigMap", namespace, L.routes_selector(name))
        placement = _place(pack, live_shards)
        desired_routes = route_tables(
            pack, placement, settings.server, limit=settings.reconcile.route_table_shard_bytes
        )
        shards = len(desired_routes)
    except _TooLarge as err:
        problem = ("TooLarge", str(err))
    except (ValueError, RouteTableTooLarge) as err:
        problem = ("InvalidSpec", str(err))
    if problem is None and placement is not None:
        store_problem = _store_problem(kube, pack, namespace)
        desired = []
        for server in placement.servers:
            if (models := models_config_map(pack, server)) is not None:
                desired.append(models)
            desired.append(server_deployment(pack, server, settings.server))
            desired.append(server_service(pack, server, settings.server))
            desired += [o for o in (server_hpa(pack, server), server_pdb(pack, server)) if o is not None]
        live_deployments: list[dict[str, Any]] = []
        try:
            _ensure_service_account(kube, namespace, settings)
            # The route table (the placement's memory) goes first: a restart after this point re-derives the
            # same servers.
            sync(kube, desired_routes, live_shards, concurrency=settings.reconcile.apply_concurrency)
            live_deployments = kube.list("apps/v1", "Deployment", namespace, L.pack_selector(name))
            live_services = kube.list("v1", "Service", namespace, L.pack_selector(name))
            live_models = kube.list("v1", "ConfigMap", namespace, L.models_selector(name))
            live_hpas = kube.list("autoscaling/v2", "HorizontalPodAutoscaler", namespace, L.pack_selector(name))
            live_pdbs = kube.list("policy/v1", "PodDisruptionBudget", namespace, L.pack_selector(name))
            sync(
                kube,
                desired,
                live_models + live_deployments + live_services + live_hpas + live_pdbs,
                report=report,
                concurrency=settings.reconcile.apply_concurrency,
            )
        except KubeError as err:
            refused = _refusal(err)
            if refused is None:
                raise  # transient: the next trigger or resync retries
            problem = ("ApplyRefused", f"the API server refused a child object: {refused}")
    if problem is None and placement is not None:
        by_name = {d["metadata"]["name"]: d for d in live_deployments}
        changed = {f"Deployment/{n}" for n in report.created + report.updated}
        for server in placement.servers:
            deployment_name = server.name(name)
            live = None if f"Deployment/{deployment_name}" in changed else by_name.get(deployment_name)
            # An autoscaled server is judged against what its HPA asks for now.
            wanted = (live or {}).get("spec", {}).get("replicas", 1) if pack.spec.autoscaling else replicas
            health[server.index] = deployment_health(live, wanted)
        _explain_stuck_servers(kube, namespace, name, live_deployments, health, settings)
        # Only small packs list their routes in status: a large one's table is not even built here.
        if sum(len(s.models) for s in placement.servers) <= settings.reconcile.routes_in_status_max:
            table = routes(pack, placement, settings.server)
    observation = PackObservation(
        generation=meta.get("generation"),
        placement=placement,
        health=health,
        replicas=replicas,
        route_table=route_table_name(name),
        route_table_shards=shards,
        routes=table,
        previous=previous,
        problem=problem,
        store_problem=store_problem,
    )
    status = {k: v for k, v in compute_status(observation).items() if v is not None}
    _report(kube, body, previous, status, report)
    return status


def _report(
    kube: Kube, body: dict[str, Any], previous: dict[str, Any], status: dict[str, Any], report: SyncReport
) -> None:
    meta = body["metadata"]
    if status != previous:
        write_status(kube, "ModelPack", meta, status)
    obj = {"apiVersion": API_VERSION, "kind": "ModelPack", "metadata": meta}
    servers = [n for n in report.created if n.startswith("Deployment/")]
    if servers:
        events.record(kube, obj, "Normal", "ServersCreated", f"created {len(servers)} servers: {_names(servers)}")
    updated = [n for n in report.updated if n.startswith("Deployment/")]
    if updated:
        events.record(kube, obj, "Normal", "ServersUpdated", f"rolling out {len(updated)} servers: {_names(updated)}")
    deleted = [n for n in report.deleted if n.startswith("Deployment/")]
    if deleted:
        events.record(kube, obj, "Normal", "ServersDeleted", f"deleted {len(deleted)} servers: {_names(deleted)}")
    phase, old_phase = status.get("phase"), previous.get("phase")
    if phase != old_phase or _degraded_reason(status) != _degraded_reason(previous):
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        if phase == "Ready":
            events.record(kube, obj, "Normal", "Ready", ready["message"])
        elif phase in ("Degraded", "Failed"):
            events.record(kube, obj, "Warning", degraded["reason"], degraded["message"])
    log.info("modelpack %s/%s: %s", meta["namespace"], meta["name"], status.get("phase"))


def _degraded_reason(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Degraded" and cond.get("status") == "True":
            return str(cond.get("reason"))
    return None


def _names(items: list[str], limit: int = 5) -> str:
    names = [i.split("/", 1)[1] for i in items]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
