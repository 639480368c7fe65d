"""The HTTP face of the server: Open Inference Protocol V2 routes over a :class:`Registry`.

``create_app`` does no work: the lifespan opens the store, registers models and sizes thread pools, so the
app can be built anywhere (tests, uvicorn factory) without touching disk or torch threads.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route

from model_server.batcher import BatcherClosedError, InferenceError, QueueFullError
from model_server.metrics import ServerMetrics
from model_server.protocol import BadRequestError, decode_infer, encode_infer, model_metadata, parse_json
from model_server.registry import (
    BatchingPolicy,
    LoadQueueFullError,
    ModelFailedError,
    ModelState,
    Registry,
    UnknownModelError,
)
from model_server.settings import Settings
from model_server.store import open_store

SERVER_NAME = "modelpack"
RETRY_AFTER_S = "1"


class ApiError(Exception):
    """Turned into ``{"error": message}`` with ``status``, the V2 protocol's error shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _load_failed(model_name: str, err: ModelFailedError) -> ApiError:
    """503 naming the model and why; Retry-After tells clients when the server will try loading it again."""
    headers = None if err.retry_after_s is None else {"Retry-After": str(max(1, math.ceil(err.retry_after_s)))}
    return ApiError(503, f"model '{model_name}' failed to load: {err}", headers)


def _json(doc: Any, status: int = 200) -> Response:
    body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """Refuse oversized bodies from Content-Length before reading, and while streaming when it is absent."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, f"bad Content-Length header {length!r}")
        if int(length) > limit:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _registry(request: Request) -> Registry:
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise ApiError(503, "server is starting", {"Retry-After": RETRY_AFTER_S})
    return registry


def create_app(settings: Settings) -> FastAPI:
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import torch  # deferred: importing torch costs seconds, and create_app must stay cheap

        from model_server.loaded import load_model
        from model_server.templates import Templates

        torch.set_num_threads(settings.threads)
        store = open_store(settings.store, settings.cache_dir)
        names = settings.models if settings.models is not None else await asyncio.to_thread(store.list_models)
        load_pool = ThreadPoolExecutor(settings.resolved_load_workers(), thread_name_prefix="load")
        inference_threads = settings.resolved_inference_workers()
        infer_pool = ThreadPoolExecutor(inference_threads, thread_name_prefix="infer")
        registry = Registry(
            store,
            memory_budget=settings.memory_budget,
            load_executor=load_pool,
            inference_executor=infer_pool,
            inference_threads=inference_threads,
            batching=BatchingPolicy(
                settings.max_batch_size, settings.max_queue_delay_ms / 1000.0, settings.max_queue_size
            ),
            metrics=metrics,
            max_pending_loads=settings.max_pending_loads,
            jit_optimize=settings.jit_optimize,
            loader=partial(load_model, templates=Templates(limit=0)) if settings.jit_load_every_model else load_model,
            retry_base_s=settings.load_retry_base_s,
            retry_max_s=settings.load_retry_max_s,
            precision=settings.precision,
        )
        registry.register(names)
        app.state.registry = registry
        if settings.preload:
            await registry.preload()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await registry.close()  # uvicorn already waited for in-flight requests; this drains any stragglers
            infer_pool.shutdown(wait=True)
            load_pool.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="modelpack model server", version="1", lifespan=lifespan)
    app.state.registry = None
    app.state.ready = False
    app.state.settings = settings
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> Response:
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready(request: Request) -> Response:
        is_ready = bool(request.app.state.ready)
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    @app.get("/v2")
    async def server_metadata() -> Response:
        from modelpack import __version__

        return _json({"name": SERVER_NAME, "version": __version__, "extensions": ["model_repository"]})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def _index(request: Request) -> Response:
        registry = _registry(request)
        only_ready = False
        if request.method == "POST":
            body = await read_body(request, settings.max_body_bytes)
            if body.strip():
                try:
                    doc = parse_json(body)
                except BadRequestError as err:
                    raise ApiError(400, str(err)) from None
                only_ready = doc.get("ready") is True
        rows = [
            {"name": e.name, "version": "1", "state": e.state.value, "reason": e.reason}
            for e in registry.entries()
            if not only_ready or e.state is ModelState.READY
        ]
        return _json(rows)

    app.add_api_route("/v2/repository/index", _index, methods=["GET", "POST"])

    @app.post("/v2/repository/models/{model_name}/load")
    async def load(model_name: str, request: Request) -> Response:
        registry = _registry(request)
        try:
            await registry.ensure_loaded(model_name)
        except UnknownModelError:
            raise ApiError(404, f"model '{model_name}' is not registered") from None
        except ModelFailedError as err:
            raise _load_failed(model_name, err) from None
        except LoadQueueFullError as err:
            raise ApiError(503, str(err), {"Retry-After": RETRY_AFTER_S}) from None
        return _json({"name": model_name, "state": ModelState.READY.value})

    @app.post("/v2/repository/models/{model_name}/unload")
    async def unload(model_name: str, request: Request) -> Response:
        registry = _registry(request)
        try:
            unloaded = registry.unload(model_name)
        except UnknownModelError:
            raise ApiError(404, f"model '{model_name}' is not registered") from None
        if not unloaded:
            raise ApiError(409, f"model '{model_name}' is serving requests; not unloaded")
        return _json({"name": model_name, "state": registry.entry(model_name).state.value})

    def _entry_or_404(registry: Registry, model_name: str) -> Any:
        try:
            return registry.entry(model_name)
        except UnknownModelError:
            raise ApiError(404, f"model '{model_name}' is not registered") from None

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{version}/ready")
    async def model_ready(model_name: str, request: Request, version: str | None = None) -> Response:
        entry = _entry_or_404(_registry(request), model_name)
        # Lazily loaded models are ready to serve: the first request loads them. FAILED ones are not.
        is_ready = entry.state is not ModelState.FAILED
        doc = {"name": model_name, "ready": is_ready, "state": entry.state.value, "reason": entry.reason}
        return _json(doc, 200 if is_ready else 503)

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{version}")
    async def metadata(model_name: str, request: Request, version: str | None = None) -> Response:
        registry = _registry(request)
        _entry_or_404(registry, model_name)
        try:
            config = await registry.config(model_name)
        except ModelFailedError as err:
            raise _load_failed(model_name, err) from None
        return _json(model_metadata(model_name, config))

    async def infer(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        started = time.perf_counter()
        status = 500
        metrics.in_flight.inc()
        try:
            response = await _infer(model_name, request)
            status = 200
            return response
        except ApiError as err:
            status = err.status
            raise
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(str(status)).inc()
            metrics.request_seconds.observe(time.perf_counter() - started)

    # The hot path: plain Starlette routes, first in the table. FastAPI's per-request dependency solving and a
    # dozen regex matches against earlier routes cost more CPU than parsing the request body.
    app.router.routes[:0] = [
        Route("/v2/models/{model_name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model_name}/versions/{version}/infer", infer, methods=["POST"]),
    ]

    async def _infer(model_name: str, request: Request) -> Response:
        registry = _registry(request)
        _entry_or_404(registry, model_name)
        body = await read_body(request, settings.max_body_bytes)
        try:
            doc = parse_json(body)
            config = await registry.config(model_name)
            decoded = decode_infer(doc, config)
            async with registry.use(model_name) as entry:
                model, batcher = entry.model, entry.batcher
                assert model is not None and batcher is not None  # READY and pinned
                inputs = model.tokenize(decoded.texts) if decoded.texts is not None else decoded.inputs or []
                outputs = await batcher.submit(inputs, batchable=config.max_batch_size > 0)
        except BadRequestError as err:
            raise ApiError(400, str(err)) from None
        except ModelFailedError as err:
            raise _load_failed(model_name, err) from None
        except (QueueFullError, LoadQueueFullError) as err:
            raise ApiError(503, f"model '{model_name}': {err}", {"Retry-After": RETRY_AFTER_S}) from None
        except BatcherClosedError:
            raise ApiError(503, "server is shutting down", {"Retry-After": RETRY_AFTER_S}) from None
        except InferenceError as err:
            raise ApiError(400, f"model '{model_name}' failed on this input: {err}") from None
        return _json(encode_infer(model_name, decoded, config, outputs))

    return app
