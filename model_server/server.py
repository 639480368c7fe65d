"""Run the app under uvicorn with graceful shutdown: on SIGTERM uvicorn stops accepting connections, waits for
in-flight requests (up to ``graceful_shutdown_s``), then the lifespan drains every batcher."""

from __future__ import annotations

import uvicorn

from model_server.app import create_app
from model_server.settings import Settings


def serve(settings: Settings) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # one log line per request costs more than a tiny model's forward pass
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        lifespan="on",
        loop="auto",
        http="auto",
        backlog=2048,
    )
    uvicorn.Server(config).run()
