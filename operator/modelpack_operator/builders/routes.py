"""The pack's route table: model -> server Service URL, split over as few ConfigMaps as it fits in.

It doubles as the placement's memory: ``placement.json`` keeps the assignment (model -> server index)
and the density it was made with, and the next reconcile passes them back to ``place()`` so models
stay on their servers across reconciles and operator restarts.

A ConfigMap holds at most ~1 MiB, about 12,000 models' routes, so a larger pack's table is split
into shards: ``<pack>-routes``, ``<pack>-routes-1``, ``<pack>-routes-2``, ... Each shard holds whole
servers (their routes and their part of the placement), so every shard reads on its own and the
table of a pack is the union of its shards. API cost grows with shards (one per ~12,000 models),
never with models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelpack.api.modelpack import ModelPack
from modelpack.placement import Placement, Server
from modelpack_operator import labels as L
from modelpack_operator.builders.meta import object_meta, owner_reference, with_hash
from modelpack_operator.builders.server import service_url
from modelpack_operator.settings import ServerSettings

ROUTES_KEY = "routes.json"
PLACEMENT_KEY = "placement.json"
CONFIGMAP_LIMIT = 1_000_000
"""Bytes of data one shard may hold (a ConfigMap's 1 MiB limit, with room for metadata)."""


class RouteTableTooLarge(ValueError):
    """One server's routes alone overflow a ConfigMap; the message says how many bytes over."""


def route_table_name(pack: str, shard: int = 0) -> str:
    """Shard 0 keeps the plain name, so a pack that fits one ConfigMap has the name users expect."""
    return f"{pack}-routes" if shard == 0 else f"{pack}-routes-{shard}"


def route_table_names(pack: str, shards: int) -> list[str]:
    return [route_table_name(pack, k) for k in range(max(1, shards))]


def routes(pack: ModelPack, placement: Placement, settings: ServerSettings) -> dict[str, str]:
    """model -> Service URL, in server order."""
    return {model: url for server in placement.servers for model, url in _server_routes(pack, server, settings)}


def _server_routes(pack: ModelPack, server: Server, settings: ServerSettings) -> list[tuple[str, str]]:
    url = service_url(pack, server.index, settings)
    return [(model, url) for model in server.models]


def _entry_bytes(key: str, value: str | int) -> int:
    """Bytes one ``"key":value,`` entry takes in the compact JSON the shard stores."""
    return len(json.dumps(key)) + len(json.dumps(value)) + 2


def _shard_servers(
    pack: ModelPack, placement: Placement, settings: ServerSettings, limit: int
) -> list[list[tuple[Server, list[tuple[str, str]]]]]:
    """Whole servers (with their routes) per shard, greedily in server order, so shards change only where
    servers do."""
    # Bytes of a shard with no entries: the two JSON objects around them.
    envelope = len("{}") + len(json.dumps({"assignment": {}, "modelsPerServer": placement.models_per_server}))
    shards: list[list[tuple[Server, list[tuple[str, str]]]]] = [[]]
    used = envelope
    for server in placement.servers:
        server_routes = _server_routes(pack, server, settings)
        size = sum(_entry_bytes(model, url) + _entry_bytes(model, server.index) for model, url in server_routes)
        if envelope + size > limit:
            raise RouteTableTooLarge(
                f"server {server.index} alone routes {len(server.models)} models in {size} bytes, over the {limit} "
                "a ConfigMap can hold: lower spec.modelsPerServer or shorten the model names"
            )
        if shards[-1] and used + size > limit:
            shards.append([])
            used = envelope
        shards[-1].append((server, server_routes))
        used += size
    return shards


def route_tables(
    pack: ModelPack, placement: Placement, settings: ServerSettings, *, limit: int = CONFIGMAP_LIMIT
) -> list[dict[str, Any]]:
    """The shards as ConfigMaps; raises :class:`RouteTableTooLarge` rather than build one the API would refuse."""
    name = pack.metadata.name
    namespace = pack.metadata.namespace or "default"
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    out = []
    for k, shard in enumerate(_shard_servers(pack, placement, settings, limit)):
        table = {model: url for _, server_routes in shard for model, url in server_routes}
        assignment = {model: server.index for server, _ in shard for model in server.models}
        remembered = {"modelsPerServer": placement.models_per_server, "assignment": assignment}
        labels = {L.PACK: name, L.COMPONENT: L.ROUTES_COMPONENT}
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": object_meta(route_table_name(name, k), namespace, labels, owner),
            "data": {
                ROUTES_KEY: json.dumps(table, separators=(",", ":")),
                PLACEMENT_KEY: json.dumps(remembered, separators=(",", ":"), sort_keys=True),
            },
        }
        out.append(with_hash(obj))
    return out


@dataclass(frozen=True)
class Remembered:
    """The previous placement as stored in the route table; empty when there is none (or it is unreadable)."""

    assignment: dict[str, int]
    models_per_server: int | None


def remembered_placement(configmaps: Iterable[Mapping[str, Any] | None]) -> Remembered:
    """Read ``placement.json`` back from every shard; a missing or hand-mangled shard only forgets its own models."""
    assignment: dict[str, int] = {}
    density: int | None = None
    for configmap in configmaps:
        raw = ((configmap or {}).get("data") or {}).get(PLACEMENT_KEY)
        if not raw:
            continue
        try:
            doc = json.loads(raw)
            part = {str(k): int(v) for k, v in doc["assignment"].items()}
            shard_density = int(doc["modelsPerServer"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        assignment.update(part)
        density = density or shard_density
    return Remembered(assignment, density)


def read_routes(configmaps: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """model -> URL from a pack's route-table shards (what ``kubectl`` users and tests read)."""
    out: dict[str, str] = {}
    for configmap in configmaps:
        out.update(parse_routes(((configmap.get("data") or {}).get(ROUTES_KEY)) or "{}"))
    return out


def parse_routes(text: str) -> dict[str, str]:
    """One shard's ``routes.json``; raises ValueError when it is not a JSON object."""
    table = json.loads(text)
    if not isinstance(table, dict):
        raise ValueError(f"{ROUTES_KEY} is not a JSON object")
    return {str(k): str(v) for k, v in table.items()}
