"""Several processes for one worker's share when one core cannot keep the schedule (`--processes N`).

Each process prepares (probes targets, encodes bodies), reports ready, then all start at one wall-clock instant
the parent picks; each sends rate/N with its own event loop, and the parent merges their tallies exactly.
Ctrl-C reaches every process of the terminal's process group: each stops, drains briefly and returns what it
measured, so partial results survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from modelpack.api.loadtest import LoadTestSpec
from modelpack.loadgen import eventloop
from modelpack.loadgen.endpoints import Endpoint
from modelpack.loadgen.engine import Snapshot
from modelpack.loadgen.errors import LoadgenError, TargetError
from modelpack.loadgen.outcome import DEFAULT_PER_MODEL, LoadOutcome, merge_outcomes
from modelpack.loadgen.payloads import DEFAULT_SEQ_LEN
from modelpack.loadgen.runner import LoadRun

START_MARGIN_S = 0.5
READY_TIMEOUT_S = 300.0
RESULT_MARGIN_S = 60.0


async def _child_main(
    spec: dict[str, Any],
    endpoints: list[Endpoint],
    index: int,
    total: int,
    options: dict[str, int],
    events: Any,
    start_conn: Connection,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        run = LoadRun(LoadTestSpec.model_validate(spec), endpoints, worker_index=index, workers=total, **options)
        async with run:
            await run.prepare()
            events.put(("ready", index, None))
            start_at = await loop.run_in_executor(None, start_conn.recv)
            if start_at is None:
                return
            outcome = await run.execute(
                start_at, on_progress=lambda s: events.put(("progress", index, s)), stop_event=stop
            )
            events.put(("result", index, outcome.to_json()))
    except LoadgenError as err:
        events.put(("error", index, (isinstance(err, TargetError), str(err))))


def _child(*args: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop installs its own handler
    eventloop.run(_child_main(*args))


def run_load_processes(
    spec: LoadTestSpec,
    endpoints: Sequence[Endpoint],
    processes: int,
    *,
    worker_index: int = 0,
    workers: int = 1,
    start_at: float | None = None,
    seq_len: int = DEFAULT_SEQ_LEN,
    per_model: int = DEFAULT_PER_MODEL,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> LoadOutcome:
    """Worker `worker_index` of `workers`, split over `processes` local processes (global share index·N + p)."""
    if processes < 1:
        raise LoadgenError(f"processes must be at least 1, got {processes}")
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    total = workers * processes
    options = {"seq_len": seq_len, "per_model": per_model}
    pipes = []
    children = []
    for p in range(processes):
        parent_end, child_end = ctx.Pipe()
        index = worker_index * processes + p
        proc = ctx.Process(
            target=_child, args=(spec.to_dict(), list(endpoints), index, total, options, events, child_end), daemon=True
        )
        proc.start()
        pipes.append(parent_end)
        children.append(proc)

    def on_sigint(signum: int, frame: object) -> None:
        # Forward, in case the signal did not come from the terminal (which signals the whole group).
        for proc in children:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        _wait_ready(events, children, pipes)
        begin = start_at if start_at is not None else time.time() + START_MARGIN_S
        for pipe in pipes:
            pipe.send(begin)
        return _collect(events, children, begin, spec, processes, on_progress)
    finally:
        signal.signal(signal.SIGINT, previous)
        for proc in children:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def _wait_ready(events: Any, children: list[Any], pipes: list[Connection]) -> None:
    ready: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < len(children):
        try:
            kind, index, payload = events.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline or any(p.exitcode not in (None, 0) for p in children):
                _abort(pipes)
                raise LoadgenError("a load-generator process died while preparing") from None
            continue
        if kind == "error":
            _abort(pipes)
            is_target, message = payload
            raise (TargetError if is_target else LoadgenError)(message)
        if kind == "ready":
            ready.add(index)


def _abort(pipes: list[Connection]) -> None:
    for pipe in pipes:
        with contextlib.suppress(OSError):
            pipe.send(None)


def _collect(
    events: Any,
    children: list[Any],
    begin: float,
    spec: LoadTestSpec,
    processes: int,
    on_progress: Callable[[Snapshot], None] | None,
) -> LoadOutcome:
    from modelpack.loadgen.worker_plan import make_plan

    plan = make_plan(spec)
    deadline = begin + plan.end + plan.timeout + RESULT_MARGIN_S
    results: dict[int, LoadOutcome] = {}
    latest: dict[int, Snapshot] = {}
    while len(results) < processes:
        try:
            kind, index, payload = events.get(timeout=0.5)
        except queue.Empty:
            if time.time() > deadline or all(p.exitcode is not None for p in children):
                break
            continue
        if kind == "result":
            results[index] = LoadOutcome.from_json(payload)
        elif kind == "progress" and on_progress is not None:
            latest[index] = payload
            on_progress(_combine(list(latest.values())))
    if not results:
        raise LoadgenError("no load-generator process returned results")
    merged = merge_outcomes([results[i] for i in sorted(results)])
    merged.interrupted = merged.interrupted or len(results) < processes
    return merged


def _combine(snaps: list[Snapshot]) -> Snapshot:
    """Live view over processes: counts add up; p99 is the worst process's (exact p99 comes after merging)."""
    p99s = [s.p99_ms for s in snaps if s.p99_ms is not None]
    return Snapshot(
        elapsed=max(s.elapsed for s in snaps),
        total=max(s.total for s in snaps),
        phase=snaps[0].phase,
        sent=sum(s.sent for s in snaps),
        ok=sum(s.ok for s in snaps),
        errors=sum(s.errors for s in snaps),
        p99_ms=max(p99s) if p99s else None,
    )
