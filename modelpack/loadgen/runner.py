"""`run_load`: probe the targets, pre-encode bodies, then run one worker's share of a LoadTestSpec.

A run is split into `prepare` (network checks and body encoding, which may take a while for thousands of models)
and `execute` (the timed part), so workers and processes can all finish preparing and then start at one shared
wall-clock instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import aiohttp
from yarl import URL

from modelpack.api.loadtest import LoadTestSpec
from modelpack.loadgen.client import Client
from modelpack.loadgen.endpoints import Endpoint
from modelpack.loadgen.engine import Engine, Snapshot
from modelpack.loadgen.errors import LoadgenError
from modelpack.loadgen.outcome import DEFAULT_PER_MODEL, LoadOutcome, StepTally
from modelpack.loadgen.payloads import DEFAULT_SEQ_LEN, encode_body, generate_request
from modelpack.loadgen.probe import fetch_metadata, new_session
from modelpack.loadgen.sender import Target, new_client
from modelpack.loadgen.spread import make_chooser
from modelpack.loadgen.worker_plan import Plan, make_plan

ProgressCallback = Callable[[Snapshot], None]
PROGRESS_INTERVAL_S = 0.5


async def build_targets(
    session: aiohttp.ClientSession, spec: LoadTestSpec, endpoints: Sequence[Endpoint], seq_len: int
) -> list[Target]:
    """One pre-encoded body per model: generated from its metadata, or the given request for all."""
    metadata = await asyncio.gather(*(fetch_metadata(session, e) for e in endpoints))
    given = encode_body(spec.payload.request) if spec.payload.mode == "given" and spec.payload.request else None
    bodies: dict[str, bytes] = {}
    targets = []
    for i, (endpoint, meta) in enumerate(zip(endpoints, metadata, strict=True)):
        body = given
        if body is None:
            body = bodies.get(endpoint.model)
            if body is None:
                request = generate_request(
                    endpoint.model, meta, spec.payload, seq_len, seed=spec.target.models.seed + i
                )
                body = bodies[endpoint.model] = encode_body(request)
        targets.append(Target(endpoint.model, URL(endpoint.infer_url), body))
    return targets


class LoadRun:
    """One worker's run: `await prepare()`, then `await execute(start_at)`; use as an async context manager."""

    def __init__(
        self,
        spec: LoadTestSpec,
        endpoints: Sequence[Endpoint],
        *,
        worker_index: int = 0,
        workers: int = 1,
        seq_len: int = DEFAULT_SEQ_LEN,
        per_model: int = DEFAULT_PER_MODEL,
    ) -> None:
        if not endpoints:
            raise LoadgenError("no targets: give at least one model and server URL")
        if seq_len < 1:
            raise LoadgenError(f"seq_len must be at least 1, got {seq_len}")
        self.spec = spec
        self.endpoints = list(endpoints)
        self.plan: Plan = make_plan(spec, worker_index, workers)
        self.seq_len = seq_len
        self.per_model = per_model
        self.client: Client | None = None
        self.targets: list[Target] = []

    async def __aenter__(self) -> LoadRun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def prepare(self) -> None:
        pool = self.plan.max_in_flight
        if self.plan.concurrency_profile is not None:
            pool = max(1, self.plan.concurrency_profile.slots)
        async with new_session(pool) as session:
            self.targets = await build_targets(session, self.spec, self.endpoints, self.seq_len)
        self.client = new_client(pool, self.plan.timeout)

    async def execute(
        self,
        start_at: float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> LoadOutcome:
        if self.client is None:
            await self.prepare()
        assert self.client is not None
        plan = self.plan
        spread = self.spec.target
        chooser = make_chooser(
            spread.spread,
            len(self.targets),
            seed=plan.seed,
            worker_index=plan.worker_index,
            workers=plan.workers,
            zipf_exponent=spread.zipf_exponent,
        )
        engine = Engine(plan, self.client, self.targets, chooser, stop_event)
        now_wall, now_mono = time.time(), time.monotonic()
        t0 = now_mono if start_at is None else now_mono + max(0.0, start_at - now_wall)
        reporter = None
        if on_progress is not None:
            reporter = asyncio.create_task(_report(engine, on_progress, t0))
        try:
            await engine.run(t0)
        finally:
            if reporter is not None:
                reporter.cancel()
        if on_progress is not None:
            on_progress(engine.snapshot())
        steps = None
        if plan.steps:
            steps = [StepTally(plan.steps[k].rate, engine.step_tallies[k]) for k in range(engine.completed_steps)]
        return LoadOutcome(
            mode=plan.mode,
            tally=engine.tally,
            steps=steps,
            slo=self.spec.slo,
            per_model_limit=self.per_model,
            workers=1,
            interrupted=engine.interrupted,
        )


async def _report(engine: Engine, on_progress: ProgressCallback, t0: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        if time.monotonic() >= t0:
            on_progress(engine.snapshot())


async def run_load(
    spec: LoadTestSpec,
    endpoints: Sequence[Endpoint],
    *,
    worker_index: int = 0,
    workers: int = 1,
    start_at: float | None = None,
    progress: bool = False,
    seq_len: int = DEFAULT_SEQ_LEN,
    per_model: int = DEFAULT_PER_MODEL,
    stop_event: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> LoadOutcome:
    """Run worker `worker_index` of `workers` (each sends rate/workers) starting at wall-clock `start_at`.

    Raises :class:`LoadgenError` (or its subclass :class:`TargetError`) before sending anything when the spec or
    the targets are unusable. Setting `stop_event` ends the run early with partial results (``interrupted``).
    """
    async with LoadRun(
        spec, endpoints, worker_index=worker_index, workers=workers, seq_len=seq_len, per_model=per_model
    ) as run:
        await run.prepare()
        if progress and on_progress is None:
            from modelpack.loadgen.progress import LiveProgress

            with LiveProgress() as live:
                return await run.execute(start_at, on_progress=live.update, stop_event=stop_event)
        return await run.execute(start_at, on_progress=on_progress, stop_event=stop_event)
