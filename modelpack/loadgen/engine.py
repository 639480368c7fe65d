"""The run itself: an open-loop dispatcher (sends on schedule whatever the server does) or closed-loop slots.

Latency is taken from the *scheduled* send time and service time from the actual send, so a stalled server
shows up in latency even when the generator could not send during the stall (no coordinated omission). When
``maxInFlight`` requests are outstanding the dispatcher waits for a free slot instead of queueing; the sends it
then makes are late (counted, and their wait is in their latency); sends still waiting when the window ends are
counted as dropped (errors of class ``other``), and so are sends still pending 1 s after the window ended
when the generator itself fell behind (CPU-bound). The achieved rate divides by the window or by the time of
the last measured send, whichever is longer, so a lagging generator cannot report the requested rate.

Nothing here grows without bound: one task per request in flight, histograms of fixed size, and every wait
ends at the window end plus the request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import numpy as np

from modelpack.loadgen.client import Client
from modelpack.loadgen.schedule import arrivals
from modelpack.loadgen.sender import Target, send
from modelpack.loadgen.slo import evaluate_slo
from modelpack.loadgen.spread import Chooser
from modelpack.loadgen.summary import results_from
from modelpack.loadgen.tally import Tally, bucket_seconds_for
from modelpack.loadgen.worker_plan import Plan

YIELD_EVERY = 32
MIN_SLEEP_S = 0.001  # the event loop's timer resolution (uvloop/libuv: 1 ms)
RECORD_BATCH = 1024  # results queued before they are added to the tallies (also added at every read)
OVERDUE_GRACE_S = 1.0  # a generator this far behind when the window has ended drops the rest
DRAIN_GRACE_S = 1.0


@dataclass(frozen=True)
class Snapshot:
    """Live figures for a progress display (measured window only)."""

    elapsed: float
    total: float
    phase: str
    sent: int
    ok: int
    errors: int
    p99_ms: float | None


class Engine:
    def __init__(
        self,
        plan: Plan,
        client: Client,
        targets: list[Target],
        chooser: Chooser,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.targets = targets
        self.chooser = chooser
        self.stop_event = stop_event
        self.tally = Tally(bucket_seconds=bucket_seconds_for(plan.measured))
        step_s = plan.steps[0].end - plan.steps[0].start if plan.steps else 0.0
        self.step_seconds = step_s
        self.step_tallies = [Tally(bucket_seconds=bucket_seconds_for(step_s)) for _ in plan.steps]
        self.step_pending = [0] * len(plan.steps)
        self.completed_steps = 0
        self.stop_at = plan.end
        self.interrupted = False
        self.t0 = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.slot_tasks: list[asyncio.Task[None]] = []
        self._slot = asyncio.Event()
        self._sent_n = 0
        self._pending: list[tuple[float, str, float, float, float, tuple[str | None, int | None]]] = []

    # ---- time ---------------------------------------------------------------------------------------------
    def now_rel(self) -> float:
        return time.monotonic() - self.t0

    async def _sleep_until(self, t_rel: float) -> None:
        """Sleep until `t_rel` or until the stop time moves before it (checked at least every 50 ms).

        No busy-waiting for sub-millisecond precision: measured here, spinning the last millisecond nearly
        doubled CPU use at 1,000 req/s for no clear gain on a shared 2-core machine. Every sleep is at least
        `MIN_SLEEP_S`: uvloop rounds timers to whole milliseconds, so a 0.3 ms sleep returned at once and above
        2,000 req/s the dispatcher spun on a full core (docs/perf/loadgen.md §2); sends are late by up to about
        a millisecond instead, which the schedule delay reports.
        """
        while (delay := min(t_rel, self.stop_at) - self.now_rel()) > 0:
            await asyncio.sleep(min(max(delay, MIN_SLEEP_S), 0.05))

    def stop_now(self) -> None:
        self.stop_at = min(self.stop_at, max(self.now_rel(), 0.0))

    # ---- recording ----------------------------------------------------------------------------------------
    def _record(
        self,
        t_rel: float,
        target: Target,
        t_sched: float,
        t_send: float,
        t_done: float,
        result: tuple[str | None, int | None],
    ) -> None:
        """Queue a measured result; `_flush` adds the queue to the tallies in one vectorized batch."""
        if t_rel < self.plan.warmup:
            return
        self._pending.append((t_rel, target.model, t_sched, t_send, t_done, result))
        if len(self._pending) >= RECORD_BATCH:
            self._flush()

    def _flush(self) -> None:
        """Add the queued results to the window's tally and to their sweep step's: exactly what one `record_success`
        or `record_failure` per result would add (counters, histograms, timeline), at a fraction of the CPU."""
        rows, self._pending = self._pending, []
        if not rows:
            return
        m = np.array([r[0] for r in rows]) - self.plan.warmup
        t_sched = np.array([r[2] for r in rows])
        t_send = np.array([r[3] for r in rows])
        t_done = np.array([r[4] for r in rows])
        delay, latency, service = t_send - t_sched, t_done - t_sched, t_done - t_send
        ok = np.array([r[5][0] is None for r in rows])
        sinks = [(self.tally, m, np.ones(len(rows), dtype=bool))]
        if self.step_tallies:
            steps = np.minimum((m // self.step_seconds).astype(np.int64), len(self.step_tallies) - 1)
            for k in np.unique(steps).tolist():
                sinks.append((self.step_tallies[k], m - k * self.step_seconds, steps == k))
        for tally, rel, selected in sinks:
            tally.note_send(float(np.max((rel + delay)[selected])))
            good = selected & ok
            positions = np.flatnonzero(good).tolist()
            tally.record_successes(
                [rows[i][1] for i in positions], rel[good], latency[good], service[good], delay[good]
            )
            for i in np.flatnonzero(selected & ~ok).tolist():
                error, status = rows[i][5]
                assert error is not None
                tally.record_failure(rows[i][1], float(rel[i]), float(delay[i]), error, status)

    def _drop(self, t_rel: float) -> None:
        if t_rel >= self.plan.warmup:
            m = t_rel - self.plan.warmup
            self.tally.record_dropped(1)
            if self.step_tallies:
                self.step_tallies[min(int(m // self.step_seconds), len(self.step_tallies) - 1)].record_dropped(1)

    # ---- requests -----------------------------------------------------------------------------------------
    async def _request(self, t_rel: float, target: Target, step: int) -> None:
        t_sched = self.t0 + t_rel
        t_send = time.monotonic()
        try:
            result = await send(self.client, target)
            self._record(t_rel, target, t_sched, t_send, time.monotonic(), result)
        finally:
            if step >= 0:
                self.step_pending[step] -= 1
            self._slot.set()

    def _spawn(self, t_rel: float, target: Target) -> None:
        step = -1
        if self.step_tallies and t_rel >= self.plan.warmup:
            step = min(int((t_rel - self.plan.warmup) // self.step_seconds), len(self.step_tallies) - 1)
            self.step_pending[step] += 1
        task = asyncio.get_running_loop().create_task(self._request(t_rel, target, step))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _wait_slot(self) -> bool:
        while len(self.tasks) >= self.plan.max_in_flight:
            remaining = self.stop_at - self.now_rel()
            if remaining <= 0:
                return False
            self._slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot.wait(), timeout=min(remaining, 0.05))
        return True

    # ---- open loop ----------------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        assert self.plan.rate_profile is not None
        schedule = arrivals(self.plan.rate_profile, self.plan.arrival, self.plan.phase, self.plan.seed)
        burst = 0
        for n, t_rel in enumerate(schedule):
            if t_rel >= self.stop_at:
                break
            delay = t_rel - self.now_rel()
            if delay > 0:
                burst = 0
                await self._sleep_until(t_rel)
                if t_rel >= self.stop_at:
                    break
            overdue = self.now_rel() > self.stop_at + OVERDUE_GRACE_S
            if overdue or (len(self.tasks) >= self.plan.max_in_flight and not await self._wait_slot()):
                self._drop(t_rel)
                for later in schedule:
                    if later >= self.stop_at:
                        break
                    self._drop(later)
                break
            self._spawn(t_rel, self.targets[self.chooser(n)])
            burst += 1
            if burst >= YIELD_EVERY:
                burst = 0
                await asyncio.sleep(0)

    # ---- closed loop --------------------------------------------------------------------------------------
    async def _slot_loop(self, slot: int) -> None:
        profile = self.plan.concurrency_profile
        assert profile is not None
        await self._sleep_until(0.0)
        while (rel := self.now_rel()) < self.stop_at:
            if slot >= profile.active_slots(rel):
                await asyncio.sleep(min(0.05, self.stop_at - rel))
                continue
            target = self.targets[self.chooser(self._sent_n)]
            self._sent_n += 1
            t_send = time.monotonic()
            result = await send(self.client, target)
            self._record(t_send - self.t0, target, t_send, t_send, time.monotonic(), result)

    # ---- sweep --------------------------------------------------------------------------------------------
    async def _monitor_sweep(self) -> None:
        for k, step in enumerate(self.plan.steps):
            await self._sleep_until(step.end)
            if self.stop_at < step.end:
                return
            deadline = time.monotonic() + self.plan.timeout + DRAIN_GRACE_S
            while self.step_pending[k] > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self._flush()
            self._finish_step(k)
            verdict = evaluate_slo(self.plan.slo, results_from(self.step_tallies[k]))
            if verdict is not None and not verdict.met:
                self.stop_now()
                return
        self.stop_now()

    def _finish_step(self, k: int) -> None:
        tally = self.step_tallies[k]
        tally.duration_seconds = self.step_seconds
        tally.planned_requests = self.plan.steps[k].rate / self.plan.workers * self.step_seconds
        self.completed_steps = k + 1

    # ---- whole run ----------------------------------------------------------------------------------------
    async def _watch_stop(self) -> None:
        assert self.stop_event is not None
        await self.stop_event.wait()
        self.interrupted = True
        self.stop_now()
        # Closed-loop slots wait on their request: give them the drain grace, then abandon what is left.
        await asyncio.sleep(DRAIN_GRACE_S)
        for task in self.slot_tasks:
            task.cancel()

    async def run(self, t0: float) -> None:
        """Run from monotonic time `t0` (warm-up first) until the plan ends, the sweep breaks, or stop is set."""
        self.t0 = t0
        helpers = []
        if self.stop_event is not None:
            helpers.append(asyncio.create_task(self._watch_stop()))
        try:
            if self.plan.open_loop:
                main = [self._dispatch()]
                if self.plan.steps:
                    main.append(self._monitor_sweep())
                await asyncio.gather(*main)
            else:
                profile = self.plan.concurrency_profile
                assert profile is not None
                self.slot_tasks = [asyncio.create_task(self._slot_loop(s)) for s in range(profile.slots)]
                if self.slot_tasks:
                    await asyncio.wait(self.slot_tasks)
                for task in self.slot_tasks:
                    if not task.cancelled() and (error := task.exception()) is not None:
                        raise error
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            for task in list(self.tasks):
                task.cancel()
        self._finish()

    async def _drain(self) -> None:
        if not self.tasks:
            return
        grace = DRAIN_GRACE_S if self.interrupted else self.plan.timeout + DRAIN_GRACE_S
        await asyncio.wait(list(self.tasks), timeout=grace)

    def _finish(self) -> None:
        self._flush()
        end = min(self.stop_at, self.plan.end)
        self.tally.duration_seconds = max(0.0, end - self.plan.warmup)
        profile = self.plan.rate_profile
        if profile is not None and self.tally.duration_seconds > 0:
            self.tally.planned_requests = profile.cumulative(end) - profile.cumulative(self.plan.warmup)

    def snapshot(self) -> Snapshot:
        self._flush()
        rel = self.now_rel()
        if rel < self.plan.warmup:
            phase = "warm-up"
        elif self.plan.steps:
            k = min(int((rel - self.plan.warmup) // self.step_seconds), len(self.plan.steps) - 1)
            phase = f"step {k + 1}/{len(self.plan.steps)} @ {self.plan.steps[k].rate:g}/s"
        else:
            phase = "measuring"
        t = self.tally
        return Snapshot(
            elapsed=max(0.0, rel),
            total=self.plan.end,
            phase=phase,
            sent=t.sent,
            ok=t.successes,
            errors=t.errors,
            p99_ms=t.latency.get_value_at_percentile(99) / 1000.0 if t.latency.get_total_count() else None,
        )
