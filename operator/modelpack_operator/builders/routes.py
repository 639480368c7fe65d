"""The pack's route table: one ConfigMap mapping every model to its server's Service URL.

It doubles as the placement's memory: ``placement.json`` keeps the assignment (model -> server index)
and the density it was made with, and the next reconcile passes them back to ``place()`` so models
stay on their servers across reconciles and operator restarts. One object for the whole pack: API
cost grows with servers, never with models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelpack.api.modelpack import ModelPack
from modelpack.placement import Placement
from modelpack_operator import labels as L
from modelpack_operator.builders.meta import object_meta, owner_reference, with_hash
from modelpack_operator.builders.server import service_url
from modelpack_operator.settings import ServerSettings

ROUTES_KEY = "routes.json"
PLACEMENT_KEY = "placement.json"
CONFIGMAP_LIMIT = 1_000_000
"""Bytes a ConfigMap may hold (etcd's 1.5 MB request limit, with room for metadata)."""


class RouteTableTooLarge(ValueError):
    """The pack has more models than one ConfigMap can route; the message says how many bytes over."""


def route_table_name(pack: str) -> str:
    return f"{pack}-routes"


def routes(pack: ModelPack, placement: Placement, settings: ServerSettings) -> dict[str, str]:
    """model -> Service URL, in server order."""
    out: dict[str, str] = {}
    for server in placement.servers:
        url = service_url(pack, server.index, settings)
        for model in server.models:
            out[model] = url
    return out


def route_table(pack: ModelPack, placement: Placement, settings: ServerSettings) -> dict[str, Any]:
    """The ConfigMap; raises :class:`RouteTableTooLarge` rather than build one the API server would refuse."""
    name = pack.metadata.name
    table = routes(pack, placement, settings)
    remembered = {"modelsPerServer": placement.models_per_server, "assignment": placement.assignment()}
    data = {
        ROUTES_KEY: json.dumps(table, separators=(",", ":")),
        PLACEMENT_KEY: json.dumps(remembered, separators=(",", ":"), sort_keys=True),
    }
    size = sum(len(v) for v in data.values())
    if size > CONFIGMAP_LIMIT:
        raise RouteTableTooLarge(
            f"the route table of {len(table)} models needs {size} bytes, over the {CONFIGMAP_LIMIT} a ConfigMap "
            "can hold: split the pack into several ModelPacks"
        )
    labels = {L.PACK: name, L.COMPONENT: L.ROUTES_COMPONENT, L.INSTANCE: name}
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(route_table_name(name), pack.metadata.namespace or "default", labels, owner),
        "data": data,
    }
    return with_hash(obj)


@dataclass(frozen=True)
class Remembered:
    """The previous placement as stored in the route table; empty when there is none (or it is unreadable)."""

    assignment: dict[str, int]
    models_per_server: int | None


def remembered_placement(configmap: dict[str, Any] | None) -> Remembered:
    """Read ``placement.json`` back; a missing or hand-mangled table means placing from scratch, not failing."""
    raw = ((configmap or {}).get("data") or {}).get(PLACEMENT_KEY)
    if not raw:
        return Remembered({}, None)
    try:
        doc = json.loads(raw)
        assignment = {str(k): int(v) for k, v in doc["assignment"].items()}
        density = int(doc["modelsPerServer"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return Remembered({}, None)
    return Remembered(assignment, density)


def read_routes(configmap: dict[str, Any]) -> dict[str, str]:
    """model -> URL from a route-table ConfigMap (what workers and ``kubectl`` users read)."""
    raw = (configmap.get("data") or {}).get(ROUTES_KEY) or "{}"
    table = json.loads(raw)
    if not isinstance(table, dict):
        raise ValueError(f"{ROUTES_KEY} is not a JSON object")
    return {str(k): str(v) for k, v in table.items()}
