"""`modelpack run`: the operator's job on one machine, from YAML to results.json and report.html.

Order: validate the files, build missing models, place them (the operator's placement function),
start one server process per placed server, run the LoadTest in this process, scrape the servers'
counters, judge the SLO, print, write the results directory. Every process started is stopped on
the way out, whatever happened (errors, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import contextlib
import platform
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from modelpack.api.loadtest import Cost, Results
from modelpack.api.modelpack import ModelPack
from modelpack.local import console as out
from modelpack.local.build import build_models
from modelpack.local.discovery import discover
from modelpack.local.load import run_loadtest
from modelpack.local.metrics import interesting, scrape
from modelpack.local.objects import ObjectsError, load_objects, select
from modelpack.local.output import default_out_dir, write_results
from modelpack.local.processes import ProcessGroup
from modelpack.local.servers import LocalServer, ServeConfig, start_servers
from modelpack.local.sizing import (
    SERVER_BASE_BYTES,
    available_cores,
    available_memory,
    max_local_servers,
    plan_threads,
)
from modelpack.local.status import build_status
from modelpack.local.store import resolve_store
from modelpack.placement import place
from modelpack.report import ReportData, ServerInfo

EXIT_OK = 0
EXIT_LOADTEST_FAILED = 1
"""The SLO was missed or most requests failed (the LoadTest's phase is Failed)."""
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130


@dataclass
class RunOptions:
    files: Sequence[str]
    endpoints: Sequence[str] = ()
    out_dir: Path | None = None
    results_base: Path = Path("modelpack-results")
    host: str = "127.0.0.1"
    threads: int | None = None
    ready_timeout: float = 120.0
    price_per_hour: float | None = None
    model_size: str = "tiny"
    layers: int | None = None
    hidden: int | None = None
    max_servers: int | None = None
    cwd: Path = field(default_factory=Path.cwd)


@dataclass
class RunReport:
    """What the CLI needs after a run: the exit code and where things were written."""

    exit_code: int
    out_dir: Path
    report: Path | None


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM takes Ctrl-C's clean-up path: servers stopped, nothing left running."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def machine_summary() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{available_cores()} cores{', ' + model if model else ''}, {platform.system()} {platform.machine()}"


def _cost(opts: RunOptions, results: Results | None) -> Cost | None:
    if opts.price_per_hour is None or results is None:
        return None
    from modelpack.cost import local_cost

    return local_cost(opts.price_per_hour, results.throughput)


def _server_infos(
    servers: Sequence[LocalServer], start: dict[str, dict[str, float]], end: dict[str, dict[str, float]]
) -> list[ServerInfo]:
    return [
        ServerInfo(
            name=s.name,
            url=s.url,
            models=list(s.models),
            threads=s.threads,
            metrics_start=start.get(s.name, {}),
            metrics_end=end.get(s.name, {}),
        )
        for s in servers
    ]


def _endpoint_infos(
    routes: dict[str, str], start: dict[str, dict[str, float]], end: dict[str, dict[str, float]]
) -> list[ServerInfo]:
    urls = list(dict.fromkeys(routes.values()))
    return [
        ServerInfo(
            name=url,
            url=url,
            models=[m for m, u in routes.items() if u == url],
            metrics_start=start.get(url, {}),
            metrics_end=end.get(url, {}),
        )
        for url in urls
    ]


def _servers_that_died(servers: Sequence[LocalServer]) -> list[str]:
    """A server that crashed mid-run explains a wall of connect errors: say which, with its last words."""
    notes = []
    for s in servers:
        if not s.process.alive():
            tail = s.process.log_tail(5).replace("\n", " | ")
            notes.append(f"server {s.name} exited with code {s.process.exit_code()} during the run: {tail}")
    return notes


def _scrape_all(targets: dict[str, str]) -> dict[str, dict[str, float]]:
    return {name: interesting(scrape(url)) for name, url in targets.items()}


def run_local(opts: RunOptions, console: Console) -> RunReport:
    """Everything `modelpack run` does; raises on bad input (the CLI maps exceptions to messages)."""
    packs, tests = load_objects(opts.files)
    objs = select(packs, tests, need_pack=not opts.endpoints)
    loadtest = objs.loadtest
    started = datetime.now(UTC)
    out_dir = opts.out_dir or default_out_dir(opts.cwd / opts.results_base, loadtest.metadata.name, started)
    notes: list[str] = []
    with ProcessGroup(log_dir=out_dir / "logs") as group, _sigterm_as_interrupt():
        servers: list[LocalServer] = []
        if objs.pack is not None:
            servers = _start_pack(objs.pack, opts, group, console, notes)
            routes = {m: s.url for s in servers for m in s.models}
            targets = {s.name: s.url for s in servers}
        else:
            routes = discover(list(opts.endpoints))
            targets = {url: url for url in dict.fromkeys(routes.values())}
            console.print(f"found {len(routes)} models on {len(targets)} endpoint(s)")
        metrics_start = _scrape_all(targets)
        console.print(
            f"running LoadTest {loadtest.metadata.name} (Ctrl-C stops it and keeps what was measured)", soft_wrap=True
        )
        load = run_loadtest(loadtest, routes, console)  # None: abandoned by a second Ctrl-C
        metrics_end = _scrape_all(targets)
        died = _servers_that_died(servers)
    for note in died:
        console.print(f"warning: {note}", style="bold red")
    notes += died
    interrupted = load is None or load.interrupted
    results = load.results if load else None
    if interrupted:
        notes.append("Interrupted by the user: results cover only part of the planned run.")
    finished = datetime.now(UTC)
    status = build_status(
        results=results,
        slo=loadtest.spec.slo,
        started=started,
        finished=finished,
        sweep=load.sweep if load else None,
        cost=_cost(opts, results),
        interrupted=interrupted,
        workers=loadtest.spec.workers,
    )
    if servers:
        infos = _server_infos(servers, metrics_start, metrics_end)
    else:
        infos = _endpoint_infos(routes, metrics_start, metrics_end)
    data = ReportData(
        loadtest=loadtest,
        status=status,
        timeline=[bucket.to_dict() for bucket in load.timeline] if load else [],
        servers=infos,
        pack_name=objs.pack.metadata.name if objs.pack else None,
        machine=machine_summary(),
        notes=notes,
    )
    console.print(out.results_table(loadtest.metadata.name, status))
    out.print_verdict(console, status)
    report = write_results(out_dir, data, [o for o in (objs.pack, loadtest) if o is not None])
    console.print(f"results: {out_dir / 'results.json'}", soft_wrap=True)
    console.print(f"report:  {report}", soft_wrap=True)
    if interrupted:
        return RunReport(EXIT_INTERRUPTED, out_dir, report)
    if status.phase == "Failed":
        return RunReport(EXIT_LOADTEST_FAILED, out_dir, report)
    return RunReport(EXIT_OK, out_dir, report)


def check_server_count(pack: str, models: int, per_server: int, servers: int, limit: int | None) -> None:
    """Refuse a pack that would start more server processes than this machine's memory holds."""
    if limit is None:
        limit = max_local_servers(available_memory())
    if limit is not None and servers > limit:
        raise ObjectsError(
            f"ModelPack {pack!r} needs {servers} servers ({models} models, spec.modelsPerServer {per_server}); "
            f"this machine has memory for about {limit} (~{SERVER_BASE_BYTES // 2**20} MiB each before models): "
            f"raise spec.modelsPerServer to at least {-(-models // limit)}, or pass --max-servers N to try anyway"
        )


def _start_pack(
    pack: ModelPack, opts: RunOptions, group: ProcessGroup, console: Console, notes: list[str]
) -> list[LocalServer]:
    spec = pack.spec
    first_note = len(notes)
    if spec.replicas == 0:
        raise ObjectsError(
            f"ModelPack {pack.metadata.name!r}: spec.replicas is 0 (scaled to zero): nothing to load-test"
        )
    store = resolve_store(spec.store, opts.cwd)
    names = spec.models.expand()
    placement = place(names, spec.models_per_server)
    check_server_count(pack.metadata.name, len(names), spec.models_per_server, len(placement.servers), opts.max_servers)
    precision = spec.server.resolved_precision(spec.compute.type)
    build_models(
        store, names, console, size=opts.model_size, layers=opts.layers, hidden=opts.hidden, precision=precision
    )
    plan = plan_threads(available_cores(), len(placement.servers), spec.server.worker_threads, opts.threads)
    if spec.replicas != 1:
        notes.append(f"spec.replicas is {spec.replicas}: locally each server runs as one process.")
    if spec.compute.type in ("inferentia", "gpu"):
        notes.append(f"compute.type {spec.compute.type}: locally the models run on this machine's CPU.")
    for note in notes[first_note:]:
        console.print(f"note: {note}", style="yellow")
    console.print(f"starting {len(placement.servers)} servers for {len(names)} models")
    cfg = ServeConfig(
        store_uri=store.uri,
        spec=spec.server,
        host=opts.host,
        threads=plan.threads_per_server,
        inference_workers=plan.inference_workers,
        work_dir=group.log_dir,
    )
    servers = start_servers(
        group,
        placement,
        pack.metadata.name,
        cfg,
        ready_timeout=opts.ready_timeout,
        on_event=lambda msg: console.print(f"note: {msg}", style="yellow"),
    )
    console.print(out.placement_table(pack.metadata.name, servers))
    console.print(f"threads per server: {plan.reason}")
    return servers
