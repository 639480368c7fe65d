"""What a `modelpack serve` process is, for both runtimes: the flags a server spec stands for, the memory a
server pod requests, and the exit status that means "store unavailable".

One definition, so a server started by the operator in a pod and one started by `modelpack run` on this
machine are tuned identically (each runtime adds only what differs: host, port, threads, store, models), and
so the server and the operator agree on what a crash means.
"""

from __future__ import annotations

from modelpack.api.base import parse_quantity
from modelpack.api.modelpack import ServerSpec

DEFAULT_MEMORY_OVERHEAD = "1408Mi"
"""Memory a server pod gets on top of ``server.memoryBudget`` (operator setting ``MODELPACK_SERVER_MEMORY_OVERHEAD``).

The budget counts only loaded models' tensors (+3 MiB each); the process also holds the Python and torch
runtime (~560 MiB idle), each model's first-run buffers, the model being loaded before the LRU evicts for it, and
evicted models still pinned by in-flight requests. Measured with ``benchmarks/server_memory.py`` at the default
shape (2Gi budget, 16 models of ~122 MiB each, every model requested so the cache fills and evicts): peak RSS
1,034 MiB above the budget; this is that + 25 %, rounded up to a multiple of 128Mi. Larger models need more (a
bert-base pack peaked 1,531 MiB above its budget). docs/perf/server-memory.md holds every run.
"""

STORE_UNAVAILABLE_EXIT = 4
"""Exit status of `modelpack serve` when its store cannot be read at start. The operator reads it from a
crashing server pod to report the pack as Degraded with reason StoreUnavailable."""


def memory_request(memory_budget: str, overhead: str = DEFAULT_MEMORY_OVERHEAD) -> str:
    """A server pod's memory request (and limit): its budget + the overhead, each rounded up to whole MiB."""
    return f"{-(-parse_quantity(memory_budget) // 2**20) + -(-parse_quantity(overhead) // 2**20)}Mi"


def tuning_flags(spec: ServerSpec) -> list[str]:
    """Memory budget, dynamic batching and preloading, as `modelpack serve` flags."""
    flags = [
        "--memory-budget",
        spec.memory_budget,
        "--max-batch-size",
        str(spec.batching.max_batch_size),
        "--max-queue-delay-ms",
        f"{spec.batching.max_queue_delay_ms:g}",
        "--max-queue-size",
        str(spec.batching.max_queue_size),
    ]
    if spec.preload:
        flags.append("--preload")
    return flags
