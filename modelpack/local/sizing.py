"""How many torch threads each local server gets, from the cores this process may use.

On one machine the servers and the load generator share the cores: oversubscribing them (every
server taking the pod's `workerThreads`) makes every server slower and the latencies meaningless.
The load generator keeps one core to itself when there are at least four; below that it shares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on (affinity and cgroup-pinned CPUs, not the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    cores: int
    loadgen_cores: int
    threads_per_server: int
    inference_workers: int
    """Batches a server runs at once: its share of cores over its threads, so servers never oversubscribe."""
    reason: str


def plan_threads(cores: int, servers: int, spec_threads: int, override: int | None = None) -> ThreadPlan:
    """Threads per server: the cores left after the load generator's share, split evenly, capped by the spec."""
    if servers < 1:
        raise ValueError("servers must be at least 1")
    loadgen = 1 if cores >= 4 else 0
    if override is not None:
        workers = max(1, max(1, (cores - loadgen) // servers) // override)
        return ThreadPlan(cores, loadgen, override, workers, f"--threads {override}")
    share = max(1, (cores - loadgen) // servers)
    threads = max(1, min(spec_threads, share))
    reason = (
        f"{cores} cores"
        + (", 1 kept for the load generator" if loadgen else ", shared with the load generator")
        + f", {servers} servers: {threads} each"
        + (f" (spec.server.workerThreads {spec_threads} caps it)" if spec_threads < share else "")
    )
    return ThreadPlan(cores, loadgen, threads, max(1, share // threads), reason)


# Resident memory of one idle `modelpack serve` process (Python, torch, FastAPI): ~620 MiB measured with
# VmRSS on x86-64, rounded up. Models come on top, within each server's memory budget.
SERVER_BASE_BYTES = 700 * 2**20


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes; None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def max_local_servers(mem_available: int | None) -> int | None:
    """How many server processes fit in 80 % of the available memory; None when memory is unknown."""
    if mem_available is None:
        return None
    return max(1, int(mem_available * 0.8) // SERVER_BASE_BYTES)
