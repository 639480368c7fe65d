"""Which models this server knows, which are in memory, and keeping memory within the budget.

All state changes happen on the event loop (no locks): loads run on the load pool and report back.
- Lazy, single-flight loading: concurrent first requests share one load task.
- LRU eviction by measured size (parameter + buffer bytes) when a load would exceed the budget.
- A model is pinned (refcount) for the whole of every request using it, from the moment the request asks for
  it, waiting for its load included, and is never evicted while pinned; if everything is pinned the budget is
  exceeded briefly and restored when requests finish. Pinning from the request on, not from when the model is
  READY, is what keeps parallel loads from thrashing: otherwise two loads sharing room for one evict each
  other's just-loaded model before its waiters resume to pin it, and load again, forever.
- Loads are bounded too: beyond ``max_pending_loads`` models waiting to load, requests needing another load are
  refused (503 + Retry-After) instead of queueing behind loads that cannot keep up with the miss rate.
- Loads run in parallel on the load pool, bounded by memory as well as threads: before a load starts, idle models
  are evicted to make room for its expected size (its last measured size, else the mean of all measured loads), and
  that size is reserved against the budget until the model's real size replaces it, in the same event-loop
  step. A load that does not fit waits for another load to finish or a model to be unpinned, so parallel loads
  cannot overshoot the budget; when no other load is under way it proceeds anyway (what cannot be evicted is
  pinned by running requests: the same brief overshoot as above). Time waiting for memory or for a load thread
  (``modelpack_model_load_wait_seconds``) is kept apart from the load itself (``modelpack_model_load_seconds``).
- A failed load (or a model missing from the store at registration) keeps its reason (repository index, /ready)
  and stays FAILED for a back-off: ``retry_base_s`` after the first failure, doubling per consecutive failure up
  to ``retry_max_s``. Requests meanwhile get the reason and when the next retry is allowed; the first request
  after that tries again (at most one load attempt per request), so a transient store failure, or a model
  copied into the store later, heals without a restart. A successful load resets the back-off.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from model_server.batcher import Batcher
from model_server.config import ModelConfig, check_precision, load_config
from model_server.loaded import LoadedModel, load_model
from model_server.memory import Trimmer
from model_server.metrics import ServerMetrics
from model_server.store import Store
from modelpack.api.modelpack import Precision


class ModelState(StrEnum):
    UNAVAILABLE = "UNAVAILABLE"  # registered, not in memory (never loaded, or evicted)
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"


class UnknownModelError(KeyError):
    """No model of that name is registered."""


class ModelFailedError(RuntimeError):
    """The model could not be loaded; the message says why, ``retry_after_s`` when the next attempt is allowed."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoadQueueFullError(RuntimeError):
    """Too many models are waiting to load; loading more would only grow everyone's wait without bound."""


@dataclass(eq=False)
class Entry:
    """Per registered model. Kept small: idle overhead per registered model must stay far below 1 MB."""

    name: str
    state: ModelState = ModelState.UNAVAILABLE
    reason: str = ""
    model: LoadedModel | None = None
    batcher: Batcher | None = None
    pins: int = 0
    loading: asyncio.Task[None] | None = None
    config: ModelConfig | None = None
    loads: int = field(default=0)
    failures: int = 0  # consecutive failed loads, for the back-off; 0 after a success
    size_bytes: int = 0  # measured at its last load: what the next load of this model reserves
    # Registry clock time from which a FAILED model may be tried again; -inf, not 0.0: a clock that counts from
    # boot (or from anywhere) owes nothing to zero.
    retry_at: float = float("-inf")


Loader = Callable[[str, Path, ModelConfig | None], LoadedModel]


@dataclass
class BatchingPolicy:
    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int


class Registry:
    def __init__(
        self,
        store: Store,
        *,
        memory_budget: int,
        load_executor: Executor,
        inference_executor: Executor,
        batching: BatchingPolicy,
        inference_threads: int = 1,
        metrics: ServerMetrics,
        loader: Loader = load_model,
        max_pending_loads: int = 32,
        jit_optimize: bool = False,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        precision: Precision | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.memory_budget = memory_budget
        self.memory_used = 0
        self._load_executor = load_executor
        self._inference_executor = inference_executor
        # One slot per inference thread, shared by every model's batcher: a batch is formed when a thread is free.
        self._inference_slots = asyncio.Semaphore(max(1, inference_threads))
        self._batching = batching
        self.metrics = metrics
        self._loader = loader
        self.max_pending_loads = max_pending_loads
        self.jit_optimize = jit_optimize
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.precision = precision
        self._clock = clock
        self._trimmer = Trimmer()
        self._pending_loads = 0
        self._reserved = 0  # expected bytes of loads under way, counted against the budget before they allocate
        self._memory_waiters: list[asyncio.Future[None]] = []  # loads waiting for room, woken to check again
        self._sizes_total = self._sizes_count = 0  # every measured load: a never-loaded model's expected size
        self._entries: dict[str, Entry] = {}
        self._lru: OrderedDict[str, Entry] = OrderedDict()  # loaded models, least recently used first
        metrics.memory_budget.set(memory_budget)

    # -- registration and inspection -------------------------------------------------------------
    def register(self, names: list[str]) -> None:
        for name in names:
            if name in self._entries:
                continue
            entry = Entry(name)
            problem = self.store.problem(name)
            if problem is not None:
                self._fail(entry, problem)
            self._entries[name] = entry
        self.metrics.models_registered.set(len(self._entries))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(name) from None

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def loaded_names(self) -> list[str]:
        """Least recently used first."""
        return list(self._lru)

    async def config(self, name: str) -> ModelConfig:
        """The model's config without loading its weights (metadata requests)."""
        entry = self.entry(name)
        if entry.model is not None:
            return entry.model.config
        if entry.config is None:
            if entry.state is ModelState.FAILED and not self._retry_due(entry):
                raise self._failed(entry)
            try:
                # Not on the load pool: a metadata or validation read must not queue behind slow model loads.
                entry.config = await asyncio.to_thread(lambda: self._checked_config(name))
            except Exception as err:
                self._fail(entry, str(err))
                raise self._failed(entry) from None
        return entry.config

    # -- use ------------------------------------------------------------------------------------
    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Entry]:
        """Pin a loaded model for the duration of a request, loading it first if needed."""
        entry = self.entry(name)
        hit = entry.state is ModelState.READY
        self.metrics.cache.labels("hit" if hit else "miss").inc()
        attempted = False  # one load attempt per request, even with no back-off
        entry.pins += 1  # before the load, so nothing evicts it between its load and this request's use
        try:
            while entry.state is not ModelState.READY:
                if entry.state is ModelState.FAILED and (attempted or not self._retry_due(entry)):
                    raise self._failed(entry)
                if entry.loading is None:
                    if self._pending_loads >= self.max_pending_loads:
                        self.metrics.load_rejections.inc()
                        raise LoadQueueFullError(f"{self._pending_loads} models are already waiting to load")
                    self._pending_loads += 1
                    entry.loading = asyncio.get_running_loop().create_task(self._load(entry))
                attempted = True
                await asyncio.shield(entry.loading)
            self._lru.move_to_end(name)
            yield entry
        finally:
            entry.pins -= 1
            if entry.pins == 0:
                if self.memory_used + self._reserved > self.memory_budget:
                    self._evict_until(self.memory_budget - self._reserved)
                self._wake_memory_waiters()  # it may be evictable now, making room for a waiting load

    async def ensure_loaded(self, name: str) -> None:
        async with self.use(name):
            pass

    # -- loading and eviction -------------------------------------------------------------------
    async def _load(self, entry: Entry) -> None:
        loop = asyncio.get_running_loop()
        entry.state, entry.reason = ModelState.LOADING, ""
        requested = time.perf_counter()
        reserved = 0
        span: list[float] = []  # when the load thread began and ended: the load alone, without any wait

        def timed_load() -> LoadedModel:
            span.append(time.perf_counter())
            try:
                return self._load_blocking(entry.name, entry.config)
            finally:
                span.append(time.perf_counter())

        try:
            reserved = await self._reserve(self._expected_size(entry))
            model = await loop.run_in_executor(self._load_executor, timed_load)
        except Exception as err:
            self.metrics.loads.labels("failed").inc()
            self._fail(entry, str(err) or type(err).__name__)
            return
        finally:
            entry.loading = None
            self._pending_loads -= 1
            # No await from here to the accounting below: the reservation turns into memory_used in one step,
            # so no waiting load ever sees the room this one holds as free.
            self._release(reserved)
            if span:
                self.metrics.load_wait_seconds.observe(span[0] - requested)
                self.metrics.load_seconds.observe(span[-1] - span[0])
        entry.size_bytes = model.size_bytes
        self._sizes_total += model.size_bytes
        self._sizes_count += 1
        if model.size_bytes > self.memory_budget:
            self.metrics.loads.labels("failed").inc()
            self._fail(
                entry, f"model needs {model.size_bytes} bytes, more than the whole memory budget ({self.memory_budget})"
            )
            return
        self._evict_until(self.memory_budget - self._reserved - model.size_bytes)
        entry.model, entry.config = model, model.config
        batch_limit = model.config.max_batch_size or 1
        entry.batcher = Batcher(
            model.run,
            self._inference_executor,
            max_batch_size=min(self._batching.max_batch_size, batch_limit),
            max_queue_delay_s=self._batching.max_queue_delay_s,
            max_queue_size=self._batching.max_queue_size,
            metrics=self.metrics,
            slots=self._inference_slots,
        )
        entry.state, entry.failures = ModelState.READY, 0
        entry.loads += 1
        self._lru[entry.name] = entry
        self.memory_used += model.size_bytes
        self.metrics.models_loaded_by_precision.labels(model.config.precision or "plain").inc()
        self.metrics.loads.labels("ok").inc()
        self.metrics.bytes_loaded.inc(model.size_bytes)
        self._update_gauges()

    def _expected_size(self, entry: Entry) -> int:
        """Its size at its last load, else the mean size of every load so far (0 before the first)."""
        if entry.size_bytes:
            return entry.size_bytes
        return self._sizes_total // self._sizes_count if self._sizes_count else 0

    async def _reserve(self, size: int) -> int:
        """Make room for a load of ``size`` bytes and count it against the budget; wait while other loads hold
        room that eviction cannot free. Never waits with no other load under way, so it cannot deadlock: every
        wait ends when some load finishes (or a model is unpinned)."""
        while True:
            self._evict_until(self.memory_budget - self._reserved - size)
            if self.memory_used + self._reserved + size <= self.memory_budget or self._reserved == 0:
                self._reserved += size
                return size
            waiter = asyncio.get_running_loop().create_future()
            self._memory_waiters.append(waiter)
            await waiter

    def _release(self, size: int) -> None:
        self._reserved -= size
        self._wake_memory_waiters()

    def _wake_memory_waiters(self) -> None:
        """Synchronous: waiters only resume later on the loop, each re-checking the room left then."""
        waiters, self._memory_waiters = self._memory_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _load_blocking(self, name: str, config: ModelConfig | None) -> LoadedModel:
        # The config (and with it the precision) is checked before the weights are read: a model built for
        # another precision is refused without deserializing its graph.
        model_dir = self._model_dir(name)
        config = config or load_config(model_dir)
        check_precision(config, self.precision, f"model {name!r}")
        self._trimmer.maybe_trim()  # evicted models' pages go back to the OS before new ones are allocated
        model = self._loader(name, model_dir, config)
        model.jit_optimize = self.jit_optimize
        model.warm_up()
        return model

    def _checked_config(self, name: str) -> ModelConfig:
        config = load_config(self._model_dir(name))
        check_precision(config, self.precision, f"model {name!r}")
        return config

    def _model_dir(self, name: str) -> Path:
        """Blocking. Repeats registration's check, so a retry names the same problem while it lasts."""
        problem = self.store.problem(name)
        if problem is not None:
            raise ModelFailedError(problem)
        return self.store.model_dir(name)

    def _fail(self, entry: Entry, reason: str) -> None:
        entry.state, entry.reason = ModelState.FAILED, reason
        now = self._clock()
        if now < entry.retry_at:
            return  # a concurrent attempt (config reads are not single-flight) already failed and set the back-off
        entry.failures += 1
        entry.retry_at = now + min(self.retry_max_s, self.retry_base_s * 2.0 ** min(entry.failures - 1, 1000))

    def _retry_due(self, entry: Entry) -> bool:
        return self._clock() >= entry.retry_at

    def _failed(self, entry: Entry) -> ModelFailedError:
        wait = max(0.0, entry.retry_at - self._clock())
        return ModelFailedError(f"{entry.reason} (retrying after {wait:.1f} s)", retry_after_s=wait)

    def _evict_until(self, target: int) -> None:
        """Synchronous (no await), so no request can pin a model between the check and the eviction."""
        for name, entry in list(self._lru.items()):
            if self.memory_used <= target:
                return
            if entry.pins == 0:
                self._evict(name, entry)

    def _evict(self, name: str, entry: Entry) -> None:
        del self._lru[name]
        model, batcher = entry.model, entry.batcher
        entry.model, entry.batcher, entry.state = None, None, ModelState.UNAVAILABLE
        if model is not None:
            self.memory_used -= model.size_bytes
            self.metrics.models_loaded_by_precision.labels(model.config.precision or "plain").dec()
        self.metrics.evictions.inc()
        self._trimmer.note_free()
        self._update_gauges()
        if batcher is not None:
            batcher.close_nowait()  # unpinned, so its queue is empty: this only ends its task

    def unload(self, name: str) -> bool:
        """Evict now if idle; False when requests are using the model."""
        entry = self.entry(name)
        if name not in self._lru:
            return True
        if entry.pins:
            return False
        self._evict(name, entry)
        return True

    def _update_gauges(self) -> None:
        self.metrics.models_loaded.set(len(self._lru))
        self.metrics.memory_used.set(self.memory_used)

    async def preload(self) -> None:
        """Load models in registration order until the budget is full (later loads would evict earlier ones)."""
        for entry in self.entries():
            if entry.state is ModelState.FAILED:
                continue
            try:
                await self.ensure_loaded(entry.name)
            except ModelFailedError:
                continue
            if self.memory_used + (entry.model.size_bytes if entry.model else 0) > self.memory_budget:
                break

    async def close(self) -> None:
        """Drain every batcher: queued requests still get answers."""
        for entry in list(self._lru.values()):
            if entry.batcher is not None:
                await entry.batcher.close()
