"""Batcher units: batches form, respect limits and shapes, bound their queue, isolate failing requests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model_server.batcher import Batcher, BatcherClosedError, InferenceError, QueueFullError


class Doubler:
    """Records each batch's row count; fails on any row holding a negative value."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        (x,) = inputs
        self.batches.append(int(x.shape[0]))
        if (x < 0).any():
            raise IndexError("index out of range in self")
        return [x * 2]


@pytest.fixture
def pool():  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(1) as executor:
        yield executor


def rows(n: int, value: int = 1, width: int = 3) -> list[np.ndarray]:
    return [np.full((n, width), value, dtype=np.int64)]


async def test_requests_close_together_share_a_batch(pool) -> None:  # type: ignore[no-untyped-def]
    run = Doubler()
    batcher = Batcher(run, pool, max_batch_size=8, max_queue_delay_s=0.5, max_queue_size=64)
    results = await asyncio.gather(*(batcher.submit(rows(2, value=i)) for i in range(4)))
    assert run.batches == [8]  # filled to max_batch_size before the delay ran out
    for i, (out,) in enumerate(results):
        assert out.shape == (2, 3) and (out == 2 * i).all()  # each caller gets its own rows back
    await batcher.close()


async def test_batch_never_exceeds_max_batch_size(pool) -> None:  # type: ignore[no-untyped-def]
    run = Doubler()
    batcher = Batcher(run, pool, max_batch_size=4, max_queue_delay_s=0.05, max_queue_size=64)
    await asyncio.gather(*(batcher.submit(rows(1)) for i in range(10)))
    assert sum(run.batches) == 10 and max(run.batches) <= 4
    await batcher.close()


async def test_oversized_request_runs_alone(pool) -> None:  # type: ignore[no-untyped-def]
    run = Doubler()
    batcher = Batcher(run, pool, max_batch_size=4, max_queue_delay_s=0.01, max_queue_size=64)
    (out,) = await batcher.submit(rows(6))
    assert out.shape == (6, 3) and run.batches == [6]
    await batcher.close()


async def test_different_shapes_are_not_mixed(pool) -> None:  # type: ignore[no-untyped-def]
    run = Doubler()
    batcher = Batcher(run, pool, max_batch_size=8, max_queue_delay_s=0.05, max_queue_size=64)
    a, b = await asyncio.gather(batcher.submit(rows(2, width=3)), batcher.submit(rows(2, width=5)))
    assert a[0].shape == (2, 3) and b[0].shape == (2, 5)
    assert sorted(run.batches) == [2, 2]
    await batcher.close()


async def test_full_queue_is_refused(pool) -> None:  # type: ignore[no-untyped-def]
    batcher = Batcher(Doubler(), pool, max_batch_size=64, max_queue_delay_s=0.3, max_queue_size=2)
    first = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError, match="2 requests"):
        await batcher.submit(rows(1))
    await asyncio.gather(*first)
    await batcher.close()


async def test_one_bad_request_does_not_fail_its_batch(pool) -> None:  # type: ignore[no-untyped-def]
    batcher = Batcher(Doubler(), pool, max_batch_size=8, max_queue_delay_s=0.2, max_queue_size=64)
    good, bad, good2 = await asyncio.gather(
        batcher.submit(rows(1, 1)), batcher.submit(rows(1, -1)), batcher.submit(rows(1, 3)), return_exceptions=True
    )
    assert isinstance(bad, InferenceError) and "out of range" in str(bad)
    assert (good[0] == 2).all() and (good2[0] == 6).all()
    await batcher.close()


async def test_close_drains_queue_then_refuses(pool) -> None:  # type: ignore[no-untyped-def]
    batcher = Batcher(Doubler(), pool, max_batch_size=8, max_queue_delay_s=1.0, max_queue_size=64)
    pending = asyncio.create_task(batcher.submit(rows(1)))
    await asyncio.sleep(0)
    await batcher.close()  # runs the queued request without waiting out the full delay
    assert (pending.result()[0] == 2).all()
    with pytest.raises(BatcherClosedError):
        await batcher.submit(rows(1))


class Gated(Doubler):
    """A Doubler whose first batch blocks until released, so a test can queue requests behind a running batch."""

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.batches:
            self.running.set()
            self.release.wait(10)
        return super().__call__(inputs)


async def _until(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the first batch never started")


async def _queued(batcher: Batcher, n: int) -> None:
    for _ in range(1000):
        if len(batcher) == n:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{len(batcher)} requests queued, never {n}")


async def test_a_lone_request_to_an_idle_model_does_not_wait_for_the_delay(pool) -> None:  # type: ignore[no-untyped-def]
    run = Doubler()
    batcher = Batcher(run, pool, max_batch_size=8, max_queue_delay_s=30.0, max_queue_size=64)
    (out,) = await asyncio.wait_for(batcher.submit(rows(1)), timeout=10)  # far less than the 30 s bound
    assert (out == 2).all() and run.batches == [1]
    await batcher.close()


async def test_requests_arriving_during_a_batch_form_the_next_one(pool) -> None:  # type: ignore[no-untyped-def]
    run = Gated()
    batcher = Batcher(run, pool, max_batch_size=8, max_queue_delay_s=0.0, max_queue_size=64)
    first = asyncio.create_task(batcher.submit(rows(1)))
    await _until(run.running)
    later = [asyncio.create_task(batcher.submit(rows(1, value=i))) for i in range(3)]
    await _queued(batcher, 3)
    run.release.set()
    await asyncio.gather(first, *later)
    assert run.batches == [1, 3]
    assert [int(t.result()[0][0, 0]) for t in later] == [0, 2, 4]
    await batcher.close()


async def test_models_sharing_busy_threads_batch_what_queued_meanwhile(pool) -> None:  # type: ignore[no-untyped-def]
    slots = asyncio.Semaphore(1)  # one inference thread for both models
    run_a, run_b = Gated(), Doubler()
    a = Batcher(run_a, pool, max_batch_size=8, max_queue_delay_s=0.0, max_queue_size=64, slots=slots)
    b = Batcher(run_b, pool, max_batch_size=8, max_queue_delay_s=0.0, max_queue_size=64, slots=slots)
    busy = asyncio.create_task(a.submit(rows(1)))
    await _until(run_a.running)
    queued = [asyncio.create_task(b.submit(rows(1))) for _ in range(3)]
    await _queued(b, 3)
    assert run_b.batches == []  # B waits for the thread A holds
    run_a.release.set()
    await asyncio.gather(busy, *queued)
    assert run_b.batches == [3]  # one batch of what queued while the thread was busy
    await a.close()
    await b.close()


async def test_a_busy_model_holds_up_to_the_delay_for_a_fuller_batch(pool) -> None:  # type: ignore[no-untyped-def]
    run = Gated()
    batcher = Batcher(run, pool, max_batch_size=8, max_queue_delay_s=0.5, max_queue_size=64)
    first = asyncio.create_task(batcher.submit(rows(1)))
    await _until(run.running)
    behind = asyncio.create_task(batcher.submit(rows(1)))  # queued behind a running batch: the model is busy
    await _queued(batcher, 1)
    run.release.set()
    await first
    more = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(3)]  # arrive within the hold
    await asyncio.gather(behind, *more)
    assert run.batches == [1, 4]
    await batcher.close()
