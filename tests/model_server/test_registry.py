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
from modelpack.api.modelpack import Precision


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
    pools = [ThreadPoolExecutor(2), ThreadPoolExecutor(1)]
    made: list[Registry] = []

    def make(
        budget: int = 1 << 30,
        loader: CountingLoader | None = None,
        max_pending_loads: int = 32,
        store: Store | None = None,
        clock: FakeClock | None = None,
        retry_max_s: float = 60.0,
        precision: Precision | None = None,
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
            precision=precision,
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


async def test_a_model_not_built_at_the_servers_precision_is_refused_saying_how_to_rebuild(make_registry) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry(precision="int8-dynamic")  # the fleet is plain traces
    rebuild = r"model 'm-a': a plain trace \(no precision\), but this server serves int8-dynamic models .*"
    rebuild += r"`modelpack models build --precision int8-dynamic`"
    with pytest.raises(ModelFailedError, match=rebuild):
        await registry.config("m-a")  # a metadata read says so too, without loading weights
    loader = CountingLoader()
    registry = make_registry(precision="int8-dynamic", loader=loader)
    with pytest.raises(ModelFailedError, match=rebuild):
        await registry.ensure_loaded("m-a")
    assert registry.entry("m-a").state is ModelState.FAILED and registry.memory_used == 0
    assert loader.calls == []  # refused from config.json: the weights were never read
    assert sample(registry, "modelpack_model_load_seconds_count") == 1  # the attempt is still a (failed) load
    anything = make_registry()  # no precision asked: served as built
    await anything.ensure_loaded("m-a")
    assert anything.entry("m-a").state is ModelState.READY


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


def sample(registry: Registry, name: str) -> float:
    value = registry.metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_loads_of_different_models_run_in_parallel(make_registry) -> None:  # type: ignore[no-untyped-def]
    loader = CountingLoader()
    loader.gate.clear()
    registry = make_registry(loader=loader)
    both = [asyncio.create_task(registry.ensure_loaded(name)) for name in ("m-a", "m-b")]
    for _ in range(200):
        if len(loader.calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(loader.calls) == ["m-a", "m-b"]  # both started while neither had finished
    loader.gate.set()
    await asyncio.gather(*both)


async def test_parallel_loads_wait_for_memory_instead_of_overshooting(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    """Room for one model, requests for two: the second load waits for the first though a thread is free, and
    neither load evicts the other's model before its request used it. That was the hang of the first attempt:
    each finished load evicted the other's fresh, not yet pinned model, whose request loaded it again, forever."""
    size = model_size(fleet)
    loader = CountingLoader()
    registry = make_registry(budget=size + size // 2, loader=loader)
    await registry.ensure_loaded("m-a")  # learn the size
    assert registry.unload("m-a")
    loader.calls.clear()
    loader.gate.clear()
    both = [asyncio.create_task(registry.ensure_loaded(name)) for name in ("m-a", "m-b")]
    await _until(lambda: len(loader.calls) == 1, "the first load started")
    await asyncio.sleep(0.2)
    assert len(loader.calls) == 1  # the second load waits: two would not fit the budget
    loader.gate.set()
    await asyncio.wait_for(asyncio.gather(*both), 30)
    assert sorted(loader.calls) == ["m-a", "m-b"]  # each loaded once: no thrashing
    assert registry.memory_used <= registry.memory_budget


async def test_a_load_goes_ahead_when_everything_loaded_is_pinned(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    """Nothing evictable and no other load under way: waiting could only deadlock, so the load overshoots the
    budget briefly, and the budget holds again once the requests are done."""
    size = model_size(fleet)
    registry = make_registry(budget=size + size // 2)
    async with registry.use("m-a"):
        await asyncio.wait_for(registry.ensure_loaded("m-b"), 30)
        assert registry.entry("m-a").state is ModelState.READY  # pinned: never evicted under a request
    assert len(registry.loaded_names()) == 1 and registry.memory_used <= registry.memory_budget


async def test_load_wait_is_measured_apart_from_the_load(make_registry, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    size = model_size(fleet)
    loader = CountingLoader()
    registry = make_registry(budget=size + size // 2, loader=loader)
    await registry.ensure_loaded("m-b")  # learn the size: the next two loads cannot run at once
    assert registry.unload("m-b")
    loader.gate.clear()
    both = [asyncio.create_task(registry.ensure_loaded(name)) for name in ("m-b", "m-a")]
    await asyncio.sleep(0.3)  # m-b's load holds the memory; m-a waits the whole time
    loader.gate.set()
    await asyncio.gather(*both)
    assert sample(registry, "modelpack_model_load_wait_seconds_count") == 3
    assert sample(registry, "modelpack_model_load_wait_seconds_sum") >= 0.25  # m-a's wait, not its load
    assert sample(registry, "modelpack_model_load_seconds_count") == 3
