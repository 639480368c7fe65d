"""Dynamic batching for one model without a batching tax: a request to an idle model runs at once.

One asyncio task per loaded model forms batches; the forward pass runs on the shared inference thread pool, and a
batch is only formed once one of that pool's threads is free (``slots``, shared by every model of the server).
Whatever queued while the threads were busy, this model's own last batch included, runs as the next batch, so
batches grow with load and never wait for a timer at low load. ``max_queue_delay_s`` is an upper bound on an extra
hold for a fuller batch, used only when it can pay: after a batch that had requests queued behind it (a busy
model), never for a lone request to an idle one. On CPUs, where a batch costs about its rows, the default is 0.
Only requests whose per-row shapes match are batched together (BERT inputs padded to seq_len always match).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from model_server.metrics import ServerMetrics

RunBatch = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


class QueueFullError(Exception):
    """The model's queue holds max_queue_size requests already; the client should back off and retry."""


class InferenceError(Exception):
    """The model's forward pass raised for this request's data."""


class BatcherClosedError(Exception):
    """The batcher stopped (model evicted or server shutting down) before the request ran."""


@dataclass
class _Pending:
    inputs: Sequence[np.ndarray]
    rows: int
    key: tuple[tuple[int, ...], ...]
    future: asyncio.Future[list[np.ndarray]]
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        run: RunBatch,
        executor: Executor,
        *,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        metrics: ServerMetrics | None = None,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue_delay_s = max(0.0, max_queue_delay_s)
        self.max_queue_size = max_queue_size
        self._metrics = metrics
        self._slots = slots if slots is not None else asyncio.Semaphore(1)
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def __len__(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: Sequence[np.ndarray], *, batchable: bool = True) -> list[np.ndarray]:
        """Queue one request (arrays with the same leading batch dim) and wait for its rows of the outputs.

        ``batchable=False`` (models without a batch dimension) makes the request run alone.
        """
        if self._closed:
            raise BatcherClosedError("batcher is closed")
        if len(self._queue) >= self.max_queue_size:
            if self._metrics:
                self._metrics.queue_full.inc()
            raise QueueFullError(f"queue is full ({self.max_queue_size} requests waiting)")
        rows = int(inputs[0].shape[0]) if batchable else self.max_batch_size
        key = tuple(tuple(a.shape[1:]) for a in inputs)
        pending = _Pending(inputs, rows, key, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._wakeup.set()
        return await pending.future

    def close_nowait(self) -> None:
        """Refuse new requests; the task ends once the queue is empty."""
        self._closed = True
        self._wakeup.set()

    async def close(self) -> None:
        """Run what is queued, then stop; the server drains every batcher on shutdown."""
        self._closed = True
        self._wakeup.set()
        await self._task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        busy = False  # did requests queue behind the last batch? Only then can holding for more fill a batch
        while True:
            if not self._queue:
                if self._closed:
                    return
                busy = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if busy and self.max_queue_delay_s > 0:
                await self._hold(self._queue[0].enqueued + self.max_queue_delay_s)
            async with self._slots:  # while every inference thread is busy, arrivals join the coming batch
                batch = self._take_batch()
                await self._execute(loop, batch)
            busy = bool(self._queue)

    async def _hold(self, deadline: float) -> None:
        """Wait until the batch is full, the deadline passes or the batcher closes."""
        while not self._closed and self._queued_rows() < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _queued_rows(self) -> int:
        return sum(p.rows for p in self._queue)

    def _take_batch(self) -> list[_Pending]:
        """The oldest request plus every later one with the same shapes that still fits."""
        first = self._queue.popleft()
        batch, rows, skipped = [first], first.rows, deque[_Pending]()
        while self._queue and rows < self.max_batch_size:
            candidate = self._queue.popleft()
            if candidate.key == first.key and rows + candidate.rows <= self.max_batch_size:
                batch.append(candidate)
                rows += candidate.rows
            else:
                skipped.append(candidate)
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # a client that went away cancelled its future
        if not live:
            return
        started = time.perf_counter()
        if self._metrics:
            for p in live:
                self._metrics.queue_seconds.observe(started - p.enqueued)
            self._metrics.batch_size.observe(sum(p.rows for p in live))
        try:
            outputs = await loop.run_in_executor(self._executor, _run_joined, self._run, [p.inputs for p in live])
        except Exception as err:
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(InferenceError(str(err) or type(err).__name__))
                return
            # One bad request (e.g. a token id beyond the vocabulary) must not fail the others in its batch.
            for p in live:
                await self._execute(loop, [p])
            return
        finally:
            if self._metrics:
                self._metrics.compute_seconds.observe(time.perf_counter() - started)
        if len(live) == 1:
            if not live[0].future.done():
                live[0].future.set_result(outputs)
            return
        offset = 0
        for p in live:
            part = [o[offset : offset + p.rows] for o in outputs]
            offset += p.rows
            if not p.future.done():
                p.future.set_result(part)


def _run_joined(run: RunBatch, requests: list[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Concatenate in the worker thread too: numpy copies are work the event loop should not do."""
    if len(requests) == 1:
        return run(requests[0])
    joined = [np.concatenate(parts) for parts in zip(*requests, strict=True)]
    return run(joined)
