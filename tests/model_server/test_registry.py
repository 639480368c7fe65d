"""Registry units over a real store and real TorchScript loads: single-flight, LRU by size, pinning, failures
and their retries (on a fake clock: no test waits for a back-off)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from model_server.config import ModelConfig
from model_server.loaded import LoadedModel, load_model
from model_server.metrics import ServerMetrics
from model_server.registry import (
    BatchingPolicy,
    LoadQueueFullError,
    ModelFailedError,
    ModelState,
    Registry,
    UnknownModelError,
)
from model_server.store import LocalStore, Store


class CountingLoader:
    """The real loader, counting calls; ``gate`` lets a test hold loads open to overlap requests."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, name: str, model_dir: Path, config: ModelConfig | None) -> LoadedModel:
        self.calls.append(name)
        self.gate.wait(10)
        return load_model(name, model_dir, config)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition`` holds (5 s at most): the state awaited, never a fixed sleep."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


class FlakyStore(LocalStore):
    """A local store whose first ``failures`` downloads fail, like a throttled or briefly unreachable S3."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.calls = 0

    def model_dir(self, name: str) -> Path:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(f"SlowDown: throttled reading {name}")
        return super().model_dir(name)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def make_registry(fleet: Path) -> AsyncIterator:  # type: ignore[type-arg]
    pools = [ThreadPoolExecutor(1), ThreadPoolExecutor(1)]
    made: list[Registry] = []

    def make(
        budget: int = 1 << 30,
        loader: CountingLoader | None = None,
        max_pending_loads: int = 32,
        store: Store | None = None,
        clock: FakeClock | None = None,
        retry_max_s: float = 60.0,
    ) -> Registry:
        registry = Registry(
            store or LocalStore(fleet),
            memory_budget=budget,
            load_executor=pools[0],
            inference_executor=pools[1],
            batching=BatchingPolicy(8, 0.001, 16),
            metrics=ServerMetrics(),
            loader=loader or CountingLoader(),
            max_pending_loads=max_pending_loads,
            retry_base_s=1.0,
            retry_max_s=retry_max_s,
            clock=clock or FakeClock(),
        )
        registry.register(["m-a", "m-b", "m-c", "corrupt", "no-weights"])
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()
    for pool in pools:
        pool.shutdown()


def model_size(fleet: Path) -> int:
    return load_model("m-a", fleet / "m-a").size_bytes


async def test_concurrent_first_requests_load_once(make_registry) -> None:  # type: ignore[no-untyped-def]
    loader = CountingLoader()
    loader.gate.clear()
    registry = make_registry(loader=loader)
    waiters = [asyncio.create_task(registry.ensure_loaded("m-a")) for _ in range(5)]
    await _until(lambda: loader.calls == ["m-a"], "the load started")
    assert registry.entry("m-a").state is ModelState.LOADING
    loader.gate.set()
    await asyncio.gather(*waiters)
    assert loader.calls == ["m-a"]
    assert registry.entry("m-a").state is ModelState.READY


async def test_lru_eviction_by_measured_size(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    size = model_size(fleet)
    assert size > 0
    registry = make_registry(budget=2 * size + size // 2)  # room for two
    await registry.ensure_loaded("m-a")
    await registry.ensure_loaded("m-b")
    await registry.ensure_loaded("m-a")  # m-a is now the most recently used
    await registry.ensure_loaded("m-c")  # evicts m-b, the least recently used
    assert registry.loaded_names() == ["m-a", "m-c"]
    assert registry.entry("m-b").state is ModelState.UNAVAILABLE
    assert registry.memory_used == 2 * size <= registry.memory_budget


async def test_a_model_in_use_is_never_evicted(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    size = model_size(fleet)
    registry = make_registry(budget=size + size // 2)  # room for one
    async with registry.use("m-a") as entry:
        async with registry.use("m-b"):  # must not evict pinned m-a: over budget while both are in use
            assert set(registry.loaded_names()) == {"m-a", "m-b"}
            assert registry.memory_used > registry.memory_budget
        # m-b's release restores the budget by evicting the only unpinned model: m-b itself.
        assert entry.state is ModelState.READY and entry.model is not None
        assert registry.loaded_names() == ["m-a"]
        assert registry.entry("m-b").state is ModelState.UNAVAILABLE
    assert registry.memory_used <= registry.memory_budget


async def test_model_larger_than_budget_fails_with_reason(make_registry) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry(budget=1000)
    with pytest.raises(ModelFailedError, match="memory budget"):
        await registry.ensure_loaded("m-a")
    assert registry.entry("m-a").state is ModelState.FAILED


async def test_failed_load_keeps_reason_and_is_not_retried_during_back_off(make_registry) -> None:  # type: ignore[no-untyped-def]
    loader = CountingLoader()
    registry = make_registry(loader=loader)
    assert registry.entry("no-weights").state is ModelState.FAILED  # at registration, without loading
    assert "model.pt" in registry.entry("no-weights").reason
    with pytest.raises(ModelFailedError, match="TorchScript"):
        await registry.ensure_loaded("corrupt")
    with pytest.raises(ModelFailedError, match=r"TorchScript.*\(retrying after 1\.0 s\)"):
        await registry.ensure_loaded("corrupt")
    assert loader.calls == ["corrupt"]
    assert "retrying" not in registry.entry("corrupt").reason  # the index shows the reason alone
    await registry.ensure_loaded("m-a")  # others still load


async def test_transient_store_failure_heals_after_back_off(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    store, clock = FlakyStore(fleet, failures=2), FakeClock()
    registry = make_registry(store=store, clock=clock)
    with pytest.raises(ModelFailedError, match=r"throttled reading m-a \(retrying after 1\.0 s\)"):
        await registry.ensure_loaded("m-a")
    entry = registry.entry("m-a")
    assert entry.state is ModelState.FAILED and entry.reason == "SlowDown: throttled reading m-a"
    clock.advance(0.6)
    with pytest.raises(ModelFailedError, match=r"retrying after 0\.4 s"):
        await registry.ensure_loaded("m-a")  # still backing off: the store is not asked again
    assert store.calls == 1
    clock.advance(0.4)
    both = await asyncio.gather(registry.ensure_loaded("m-a"), registry.ensure_loaded("m-a"), return_exceptions=True)
    assert all(isinstance(err, ModelFailedError) and "retrying after 2.0 s" in str(err) for err in both), both
    assert store.calls == 2  # concurrent requests after the back-off share one retry
    clock.advance(2.0)
    await registry.ensure_loaded("m-a")
    assert entry.state is ModelState.READY and entry.failures == 0 and entry.reason == ""


async def test_back_off_doubles_caps_and_resets_on_success(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    store, clock = FlakyStore(fleet, failures=5), FakeClock()
    registry = make_registry(store=store, clock=clock, retry_max_s=5.0)
    for wait in (1.0, 2.0, 4.0, 5.0, 5.0):
        with pytest.raises(ModelFailedError, match=rf"retrying after {wait:.1f} s"):
            await registry.ensure_loaded("m-a")
        clock.advance(wait)
    await registry.ensure_loaded("m-a")
    assert registry.unload("m-a")
    store.failures = store.calls + 1  # the next download fails again
    with pytest.raises(ModelFailedError, match=r"retrying after 1\.0 s"):
        await registry.ensure_loaded("m-a")


async def test_model_missing_from_store_is_retried(make_registry, fleet: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Registered before it is in the store (``--models``): FAILED at registration, then found once copied in."""
    root, clock = tmp_path / "store", FakeClock()
    shutil.copytree(fleet, root)
    registry = make_registry(store=LocalStore(root), clock=clock)
    registry.register(["late"])
    with pytest.raises(ModelFailedError, match=r"no folder 'late' in store .* \(retrying after 1\.0 s\)"):
        await registry.config("late")
    clock.advance(1.0)
    with pytest.raises(ModelFailedError, match=r"no folder 'late'.*retrying after 2\.0 s"):
        await registry.config("late")
    shutil.copytree(root / "m-b", root / "late")
    clock.advance(2.0)
    assert (await registry.config("late")).inputs
    await registry.ensure_loaded("late")
    assert registry.entry("late").state is ModelState.READY


async def test_unknown_model(make_registry) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry()
    with pytest.raises(UnknownModelError):
        await registry.ensure_loaded("zzz")


async def test_config_without_loading_weights(make_registry) -> None:  # type: ignore[no-untyped-def]
    loader = CountingLoader()
    registry = make_registry(loader=loader)
    config = await registry.config("m-a")
    assert [s.name for s in config.inputs] == ["input_ids", "attention_mask"]
    assert loader.calls == []


async def test_unload_refuses_while_pinned(make_registry) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry()
    async with registry.use("m-a"):
        assert registry.unload("m-a") is False
    assert registry.unload("m-a") is True
    assert registry.entry("m-a").state is ModelState.UNAVAILABLE


async def test_loads_waiting_are_bounded(make_registry) -> None:  # type: ignore[no-untyped-def]
    loader = CountingLoader()
    loader.gate.clear()
    registry = make_registry(loader=loader, max_pending_loads=1)
    first = asyncio.create_task(registry.ensure_loaded("m-a"))
    second = asyncio.create_task(registry.ensure_loaded("m-a"))  # joins the load already waiting
    await _until(lambda: loader.calls == ["m-a"], "the first load started")
    with pytest.raises(LoadQueueFullError, match="1 models are already waiting"):
        await registry.ensure_loaded("m-b")
    loader.gate.set()
    await asyncio.gather(first, second)
    assert loader.calls == ["m-a"]
    await registry.ensure_loaded("m-b")  # room again once the load finished
