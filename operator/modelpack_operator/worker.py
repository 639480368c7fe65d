"""One load-test worker: read the route table, run its share of the load, report through a ConfigMap.

Whatever happens after the environment is parsed, the worker writes a result ConfigMap, so the
LoadTest can name the failure ("worker 2: target.models.names: not served: bert-9") rather than
leave the operator to infer it from a missing result.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from modelpack.loadgen import Endpoint, LoadgenError, run_load, select_models
from modelpack_operator import workerenv as E
from modelpack_operator.builders.routes import parse_routes
from modelpack_operator.kube import Kube, KubeError
from modelpack_operator.results import result_configmap
from modelpack_operator.workerenv import WorkerConfig

log = logging.getLogger(__name__)


class RouteTableError(ValueError):
    """The mounted route table is missing, or a shard is not a JSON object of model -> URL."""


def read_route_files(cfg: WorkerConfig) -> dict[str, str]:
    """The union of every shard mounted in the routes directory (one ``*.json`` per route-table ConfigMap)."""
    where = cfg.routes_dir
    files = sorted(where.glob("*.json")) if where.is_dir() else []
    if not files:
        raise RouteTableError(f"route table directory {where} holds no *.json shards ({E.ROUTES})")
    table: dict[str, str] = {}
    for path in files:
        try:
            table.update(parse_routes(path.read_text()))
        except (OSError, ValueError) as err:
            raise RouteTableError(f"route table shard {path} is unreadable: {err}") from None
    if not table:
        raise RouteTableError(f"route table in {where} holds no routes (expected JSON objects model -> URL)")
    return table


def endpoints_for(cfg: WorkerConfig, routes: dict[str, str]) -> list[Endpoint]:
    names = select_models(cfg.spec.target.models, list(routes))
    return [Endpoint(model=name, url=routes[name]) for name in names]


def write_result(kube: Kube, obj: dict[str, Any]) -> None:
    """Create the result ConfigMap, or overwrite the one a previous attempt of this index left."""
    if kube.create(obj) is not None:
        return
    meta = obj["metadata"]
    live = kube.get("v1", "ConfigMap", meta["namespace"], meta["name"])
    if live is None:  # deleted between the two calls
        kube.create(obj)
        return
    kube.replace({**obj, "metadata": {**meta, "resourceVersion": live["metadata"]["resourceVersion"]}})


def run_worker(cfg: WorkerConfig, kube: Kube) -> int:
    """Exit status of the worker: 0 when the load ran (whatever the latencies), 1 when it could not."""
    outcome: dict[str, Any] | None = None
    error: str | None = None
    try:
        endpoints = endpoints_for(cfg, read_route_files(cfg))
        log.info("worker %d/%d: %d models, starting at %.3f", cfg.index, cfg.workers, len(endpoints), cfg.start_at)
        result = asyncio.run(
            run_load(cfg.spec, endpoints, worker_index=cfg.index, workers=cfg.workers, start_at=cfg.start_at)
        )
        outcome = result.to_json()
    except (LoadgenError, RouteTableError) as err:
        error = str(err)
    except Exception as err:  # report anything, so the LoadTest says what broke instead of "no result"
        log.exception("worker %d failed", cfg.index)
        error = f"{type(err).__name__}: {err}"
    obj = result_configmap(
        cfg.loadtest, cfg.uid, cfg.namespace, cfg.index, outcome=outcome, error=error, generation=cfg.generation
    )
    try:
        write_result(kube, obj)
    except KubeError as err:
        raise KubeError(err.status, f"cannot write result ConfigMap {obj['metadata']['name']}: {err}") from None
    if error:
        log.error("worker %d: %s", cfg.index, error)
        return 1
    return 0
