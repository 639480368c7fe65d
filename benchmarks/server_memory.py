"""Benchmark 5: server memory above its budget. What a pod needs on top of ``server.memoryBudget``.

Starts ``modelpack serve`` the way the operator does (the ModelPack server spec's tuning flags, from
``modelpack.serving.tuning_flags``) over more distinct models than the budget holds, requests every model in
turn (each pass misses, loads and evicts, so the cache stays full), and samples the RSS of the server and any
child processes from /proc. Reports peak (VmHWM, and the highest sampled sum over the process tree) and steady
(VmRSS after the passes) RSS, each minus the budget: the overhead the operator adds to the memory request and
limit (``MODELPACK_SERVER_MEMORY_OVERHEAD``). Also reads the server's own accounting from /metrics.

Usage: python benchmarks/server_memory.py --models 150 --budget 256Mi --threads 1,2 --runs 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp
from server_common import Server, machine, tensor_request, utc_now

from model_server.fleet import build_fleet, shape_for
from modelpack.api.base import parse_quantity
from modelpack.api.modelpack import ServerSpec
from modelpack.serving import tuning_flags

MI = 2**20


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Sums VmRSS over the process tree every ``interval`` s; keeps the highest sum seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak, self.processes = pid, interval, 0, 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        pids = tree(self.pid)
        self.processes = max(self.processes, len(pids))
        return sum(status_kib(p, "VmRSS") for p in pids) * 1024

    def hwm(self) -> int:
        """Sum of each process's own peak (an upper bound on the tree's peak)."""
        return sum(status_kib(p, "VmHWM") for p in tree(self.pid)) * 1024

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for name in (
        "modelpack_model_memory_bytes",
        "modelpack_model_memory_budget_bytes",
        "modelpack_models_loaded",
        "modelpack_model_evictions_total",
        'modelpack_model_loads_total{result="ok"}',
    ):
        match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
        out[name] = float(match.group(1)) if match else float("nan")
    return out


async def request_all(url: str, names: list[str], body: bytes, concurrency: int) -> dict[str, int]:
    """One request per model, ``concurrency`` in flight; retries a 503 (load queue full) after a short wait."""
    statuses: dict[str, int] = {}
    queue = list(reversed(names))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker() -> None:
            while queue:
                name = queue.pop()
                for _ in range(50):
                    async with session.post(
                        f"{url}/v2/models/{name}/infer", data=body, headers={"content-type": "application/json"}
                    ) as resp:
                        await resp.read()
                        status = resp.status
                    if status != 503:
                        break
                    await asyncio.sleep(0.1)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def run_once(store: Path, names: list[str], args: argparse.Namespace, threads: int, log: Path) -> dict[str, object]:
    spec = ServerSpec(memory_budget=args.budget, worker_threads=threads)
    models_file = log.with_suffix(".models")
    models_file.write_text("\n".join(names) + "\n")
    flags = ["--models-file", str(models_file), "--threads", str(threads), *tuning_flags(spec)]
    budget = parse_quantity(args.budget)
    body = tensor_request(args.rows, args.seq_len)
    with Server.modelpack(store, *flags, log=log) as server:
        server.wait_ready()
        time.sleep(1)
        sampler = Sampler(server.proc.pid)
        idle = sampler.rss()
        started = time.perf_counter()
        with sampler:
            statuses: dict[str, int] = {}
            for _ in range(args.passes):
                for code, n in asyncio.run(request_all(server.url, names, body, args.concurrency)).items():
                    statuses[code] = statuses.get(code, 0) + n
        elapsed = time.perf_counter() - started
        time.sleep(args.settle)
        steady = sampler.rss()
        hwm = sampler.hwm()
        peak = max(sampler.peak, steady, hwm)
        m = metrics(server.url)
    result: dict[str, object] = {
        "threads": threads,
        "flags": flags[2:],
        "processes": sampler.processes,
        "seconds": elapsed,
        "statuses": statuses,
        "idle_rss_mib": idle / MI,
        "steady_rss_mib": steady / MI,
        "peak_rss_mib": peak / MI,
        "steady_overhead_mib": (steady - budget) / MI,
        "peak_overhead_mib": (peak - budget) / MI,
        "accounted_mib": m["modelpack_model_memory_bytes"] / MI,
        "metrics": m,
    }
    print(
        f"threads {threads}: {statuses} in {elapsed:.1f} s; {m['modelpack_models_loaded']:.0f} loaded, "
        f"{m['modelpack_model_evictions_total']:.0f} evictions, accounted {m['modelpack_model_memory_bytes'] / MI:.0f}"
        f" of {budget / MI:.0f} MiB; RSS idle {idle / MI:.0f}, steady {steady / MI:.0f}, peak {peak / MI:.0f} MiB "
        f"({sampler.processes} process(es)) -> overhead steady {(steady - budget) / MI:.0f}, "
        f"peak {(peak - budget) / MI:.0f} MiB",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=150, help="distinct models (more than the budget holds)")
    parser.add_argument("--size", default="tiny", help="tiny, small or base (model_server.bert.SIZES)")
    parser.add_argument("--layers", type=int, help="override the size's encoder layers")
    parser.add_argument("--hidden", type=int, help="override the size's hidden width (heads: hidden / 64)")
    parser.add_argument("--budget", default="256Mi")
    parser.add_argument("--threads", default="1,2", help="comma-separated --threads values, one server each")
    parser.add_argument("--runs", type=int, default=2, help="servers started per --threads value")
    parser.add_argument("--passes", type=int, default=2, help="requests to every model, in order")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the passes before steady RSS")
    parser.add_argument("--work", default="/tmp/modelpack-bench")
    parser.add_argument("--out")
    args = parser.parse_args()

    work = Path(args.work)
    shape = args.size + (f"-l{args.layers}" if args.layers else "") + (f"-h{args.hidden}" if args.hidden else "")
    store = work / f"memory-{shape}"
    names = [f"model-{i:04d}" for i in range(args.models)]
    started = time.perf_counter()
    heads = args.hidden // 64 if args.hidden else None
    built = build_fleet(store, names, shape_for(args.size, layers=args.layers, hidden=args.hidden, heads=heads))
    print(f"machine: {machine()}; date: {utc_now()}")
    print(
        f"store: {args.models} {shape} models, built {len(built.built)}, reused {len(built.reused)} "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    runs = []
    for run in range(args.runs):
        for threads in (int(t) for t in args.threads.split(",")):
            log = work / f"memory-{shape}-t{threads}-r{run}.log"
            runs.append(run_once(store, names, args, threads, log))
    worst = max(float(r["peak_overhead_mib"]) for r in runs)  # type: ignore[arg-type]
    print(f"worst peak overhead above the {args.budget} budget: {worst:.0f} MiB", flush=True)
    if args.out:
        results = {"size": shape, "models": args.models, "budget": args.budget, "machine": machine()}
        Path(args.out).write_text(json.dumps({**results, "date": utc_now(), "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
