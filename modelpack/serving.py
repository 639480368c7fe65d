"""The `modelpack serve` flags a ModelPack's server spec stands for.

One function, so a server started by the operator in a pod and one started by `modelpack run` on this
machine are tuned identically; each runtime adds only what differs (host, port, threads, store, models).
"""

from __future__ import annotations

from modelpack.api.modelpack import ServerSpec

STORE_UNAVAILABLE_EXIT = 4
"""Exit status of `modelpack serve` when its store cannot be read at start. The operator reads it from a
crashing server pod to report the pack as Degraded with reason StoreUnavailable."""


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
