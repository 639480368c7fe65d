"""Start one `modelpack serve` process per placed server and wait until each says it is ready.

A server that cannot bind its port (someone took it between our check and its bind) is restarted
on another free port; any other early exit or a readiness timeout is an error that names the server
and shows its log tail. The caller's :class:`ProcessGroup` stops everything on the way out.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpack import serving
from modelpack.api.modelpack import ServerSpec
from modelpack.local.ports import any_free_port, choose_port
from modelpack.local.processes import ManagedProcess, ProcessGroup
from modelpack.placement import Placement, server_name

PORT_TAKEN_MARKERS = ("address already in use", "errno 98")
MAX_PORT_RETRIES = 3


class ServerStartError(RuntimeError):
    """A server did not become ready; the message names it and carries its log tail."""


@dataclass
class LocalServer:
    name: str
    index: int
    models: tuple[str, ...]
    host: str
    port: int
    threads: int
    process: ManagedProcess
    ready_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServeConfig:
    """What every local server shares: the store, the pack's server spec, threads and where to write."""

    store_uri: str
    spec: ServerSpec
    host: str
    threads: int
    inference_workers: int
    work_dir: Path


def serve_argv(name: str, models: Sequence[str], port: int, cfg: ServeConfig) -> list[str]:
    """The `modelpack serve` command line of one server: the shared flags, plus what only a local process
    sets (its interpreter, inference threads, a short drain and quiet logs)."""
    models_file = cfg.work_dir / f"{name}.models"
    if serving.models_in_file(models):
        models_file.parent.mkdir(parents=True, exist_ok=True)
        models_file.write_text(serving.models_file_text(models))
    flags = serving.serve_args(
        cfg.spec,
        models,
        store_uri=cfg.store_uri,
        host=cfg.host,
        port=port,
        threads=cfg.threads,
        models_file=str(models_file),
    )
    local = ["--inference-workers", str(cfg.inference_workers), "--graceful-shutdown-s", "3", "--log-level", "warning"]
    return [sys.executable, "-m", "modelpack.cli.main", "serve", *flags, *local]


def is_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_taken(proc: ManagedProcess) -> bool:
    tail = proc.log_tail(30).lower()
    return any(marker in tail for marker in PORT_TAKEN_MARKERS)


EventCallback = Callable[[str], None]


def start_servers(
    group: ProcessGroup,
    placement: Placement,
    pack: str,
    cfg: ServeConfig,
    *,
    ready_timeout: float,
    on_event: EventCallback = lambda _msg: None,
) -> list[LocalServer]:
    """Start every server at once (they load in parallel), then wait for all of them."""
    servers: list[LocalServer] = []
    used: list[int] = []
    for server in placement.servers:
        name = server_name(pack, server.index)
        preferred = cfg.spec.port + server.index
        port = choose_port(cfg.host, preferred, used)
        if port != preferred:
            on_event(f"port {preferred} is in use: {name} gets port {port}")
        used.append(port)
        proc = group.start(name, serve_argv(name, server.models, port, cfg))
        servers.append(LocalServer(name, server.index, server.models, cfg.host, port, cfg.threads, proc))
    _wait_ready(group, servers, cfg, used, ready_timeout, on_event)
    return servers


def _wait_ready(
    group: ProcessGroup,
    servers: list[LocalServer],
    cfg: ServeConfig,
    used: list[int],
    timeout: float,
    on_event: EventCallback,
) -> None:
    started = time.monotonic()
    deadline = started + timeout
    retries = dict.fromkeys((s.name for s in servers), 0)
    pending = list(servers)
    while pending:
        for server in list(pending):
            if is_ready(server.url):
                server.ready_seconds = time.monotonic() - started
                pending.remove(server)
                continue
            if server.process.alive():
                continue
            if _port_taken(server.process) and retries[server.name] < MAX_PORT_RETRIES:
                retries[server.name] += 1
                old = server.port
                group.stop(server.process)
                server.port = any_free_port(server.host, used)
                used.append(server.port)
                on_event(f"port {old} was taken before {server.name} bound it: retrying on port {server.port}")
                server.process = group.start(server.name, serve_argv(server.name, server.models, server.port, cfg))
                continue
            raise ServerStartError(
                f"server {server.name} (port {server.port}) exited with code {server.process.exit_code()} "
                f"before it was ready; last lines of {server.process.log_path}:\n{server.process.log_tail()}"
            )
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            tails = "\n".join(f"--- {s.name} ({s.process.log_path}):\n{s.process.log_tail(10)}" for s in pending)
            raise ServerStartError(f"servers not ready after {timeout:g}s: {names}\n{tails}")
        time.sleep(0.25)
