"""What a `modelpack serve` process is, for both runtimes: its command line (and when its model list goes in a
file), the resources a server requests, and the exit status that means "store unavailable".

One definition, so a server started by the operator in a pod and one started by `modelpack run` on this
machine are tuned identically (each runtime adds only what differs: host, port, threads, store, models), and
so the server and the operator agree on what a crash means.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelpack.api.base import parse_quantity
from modelpack.api.modelpack import ModelPackSpec, ServerSpec
from modelpack.pools import get_pool

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


MODELS_ARG_LIMIT = 64 * 1024
"""Longest comma-joined model list passed as ``--models``; a longer one (a server may hold 10,000 models) goes in
a file, one name per line, since Linux limits one argument to 128 KiB."""


def models_in_file(models: Sequence[str]) -> bool:
    """Whether this server's model list is passed as a file (``--models-file``) rather than ``--models``."""
    return len(",".join(models)) >= MODELS_ARG_LIMIT


def models_file_text(models: Sequence[str]) -> str:
    """What the ``--models-file`` of a server holds."""
    return "\n".join(models) + "\n"


def serve_args(
    spec: ServerSpec,
    models: Sequence[str],
    *,
    store_uri: str,
    host: str,
    port: int,
    threads: int,
    models_file: str,
) -> list[str]:
    """The flags after ``modelpack serve`` of one server. ``models_file`` is where the runtime puts
    :func:`models_file_text` when :func:`models_in_file` says so (a mounted ConfigMap, a file in the run
    directory); it is not read otherwise."""
    listing = ["--models-file", models_file] if models_in_file(models) else ["--models", ",".join(models)]
    return [
        "--store",
        store_uri,
        *listing,
        "--host",
        host,
        "--port",
        str(port),
        "--threads",
        str(threads),
        *tuning_flags(spec),
    ]


def server_resources(spec: ModelPackSpec, memory_overhead: str = DEFAULT_MEMORY_OVERHEAD) -> dict[str, dict[str, str]]:
    """Requests and limits of one server: CPU = torch threads, memory = model budget + runtime overhead,
    the compute's accelerators; ``compute.resources`` overrides each.

    Memory is limited to the request: a server past its budget is a bug to surface as OOMKilled, not to let
    grow into its neighbours' memory. CPU is not limited (throttling only adds latency).
    """
    memory = memory_request(spec.server.memory_budget, memory_overhead)
    accelerator = get_pool(spec.compute.type).accelerator_resource()
    accelerators = {accelerator: str(spec.compute.accelerators_per_server)} if accelerator else {}
    requests = {"cpu": str(spec.server.worker_threads), "memory": memory, **accelerators}
    limits = {"memory": memory, **accelerators}
    override = spec.compute.resources
    if override is not None:
        requests.update(override.requests or {})
        limits.update(override.limits or {})
        # A request raised without its limit would sit above the generated limit, which the API server refuses;
        # the limit follows it (and extended resources must have requests == limits anyway).
        for key, value in (override.requests or {}).items():
            if key in limits and key not in (override.limits or {}):
                limits[key] = value
    return {"requests": requests, "limits": limits}


def tuning_flags(spec: ServerSpec) -> list[str]:
    """Memory budget, dynamic batching, preloading and the precision asked for, as `modelpack serve` flags."""
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
    if spec.precision is not None:  # set in the pack: the server refuses models built otherwise
        flags += ["--precision", spec.precision]
    return flags
