"""Server settings: one typed object that both ``modelpack serve`` flags and MODELPACK_* env vars fill in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model_server.cpus import available_cpus
from modelpack.api.modelpack import Precision


def _default_threads() -> int:
    return available_cpus()


@dataclass
class Settings:
    store: str
    """Model store: a directory, ``file:///path`` or ``s3://bucket/prefix``."""

    models: list[str] | None = None
    """Models to register; None registers every folder in the store."""

    host: str = "127.0.0.1"
    """Address to listen on; pods use 0.0.0.0."""

    port: int = 8080
    """HTTP port."""

    threads: int = field(default_factory=_default_threads)
    """torch intra-op threads per inference; defaults to the CPUs the cgroup quota/affinity allow."""

    inference_workers: int = 0
    """Inference threads (batches of different models run in parallel); 0 = max(1, CPUs // threads), so the
    CPUs are used fully but never oversubscribed by intra-op threads."""

    load_workers: int = 0
    """Threads that load models from disk, separate from inference so a cold load never blocks warm models;
    0 = one per CPU, at least 2 (loads also wait on disk and memory, and the budget bounds them further)."""

    max_pending_loads: int = 32
    """Models waiting to load at once; requests that need yet another load get 503 + Retry-After meanwhile."""

    load_retry_base_s: float = 1.0
    """After a model fails to load (or is missing from the store), seconds until a request may try again; the wait
    doubles per consecutive failure and resets on success. Requests meanwhile get 503 with the reason."""

    load_retry_max_s: float = 60.0
    """Longest wait between retries of a failed model."""

    jit_optimize: bool = False
    """TorchScript's optimizing (profiling) executor: off by default, as its per-model, per-shape warm-up costs
    more than it saves when a process serves many models."""

    jit_load_every_model: bool = False
    """Load every model with ``torch.jit.load``, never as a copy of an already loaded model of its architecture
    (templates.py): for comparison, or for a store whose models must not share compiled code."""

    memory_budget: int = 2 * 1024**3
    """Bytes of loaded models (parameters + buffers); least recently used idle models are evicted beyond it."""

    max_batch_size: int = 8
    """Largest dynamic batch; a model's config.json may lower it."""

    max_queue_delay_ms: float = 0.0
    """Upper bound on holding a busy model's next batch for more requests, ms. Never applied to a request reaching
    an idle model; 0 (the default) never holds: batches form from what queued while the model ran."""

    max_queue_size: int = 256
    """Requests waiting per model; beyond it the server answers 503 with Retry-After."""

    preload: bool = False
    """Load every registered model at start (in LRU order, within the memory budget)."""

    precision: Precision | None = None
    """The artifact every model must be built as (the pack's ``server.precision``); a model built otherwise
    fails to load, naming the command that rebuilds it. None: serve whatever each model's config records."""

    max_body_bytes: int = 16 * 1024**2
    """Largest request body; bigger ones get 413 before being read."""

    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "modelpack" / "store")
    """Where models from s3:// stores are downloaded."""

    graceful_shutdown_s: float = 30.0
    """On SIGTERM, how long in-flight requests may take before the server exits anyway."""

    log_level: str = "info"
    """uvicorn log level."""

    def resolved_load_workers(self) -> int:
        return self.load_workers if self.load_workers > 0 else max(2, available_cpus())

    def resolved_inference_workers(self) -> int:
        if self.inference_workers > 0:
            return self.inference_workers
        return max(1, available_cpus() // max(1, self.threads))
