"""Benchmark 3: density. Thousands of distinct tiny models registered in one server process, Zipf traffic.

Reports: idle overhead per registered model (RSS with N registered minus RSS with 1, over N-1), cold-load
latency p50/p99 (explicit loads of unloaded models, timed at the client), sequential loads per second, cache
hit rate and loads/s under Zipf-distributed open-loop traffic with a memory budget smaller than the fleet,
and RSS after the run.

Usage: python benchmarks/server_density.py --models 3000 --budget 512Mi --rate 100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

from hdrh.histogram import HdrHistogram
from server_common import Server, machine, open_loop, tensor_request, utc_now

from model_server.fleet import build_fleet, shape_for


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read().decode()


def post(url: str) -> int:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3000)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--budget", default="512Mi")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of unmeasured Zipf traffic first")
    parser.add_argument("--zipf-s", type=float, default=1.0)
    parser.add_argument("--cold-samples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="/tmp/modelpack-bench")
    parser.add_argument("--out")
    args = parser.parse_args()

    store = Path(args.work) / f"density-{args.size}"
    names = [f"model-{i:05d}" for i in range(args.models)]
    started = time.perf_counter()
    built = build_fleet(store, names, shape_for(args.size))
    build_s = time.perf_counter() - started
    print(f"machine: {machine()}; date: {utc_now()}")
    print(f"store: built {len(built.built)}, reused {len(built.reused)} in {build_s:.1f} s", flush=True)
    results: dict[str, object] = {
        "models": args.models,
        "size": args.size,
        "budget": args.budget,
        "machine": machine(),
        "date": utc_now(),
        "build_seconds": build_s,
        "built": len(built.built),
    }
    work = Path(args.work)
    common = ["--threads", str(args.threads), "--memory-budget", args.budget, "--max-queue-delay-ms", "2"]

    with Server.modelpack(store, "--models", names[0], *common, log=work / "density-one.log") as one:
        one.wait_ready()
        time.sleep(1)
        rss_one = one.rss_bytes()
    models_file = work / "density-models.txt"
    models_file.write_text("\n".join(names) + "\n")
    with Server.modelpack(store, "--models-file", str(models_file), *common, log=work / "density.log") as server:
        server.wait_ready()
        time.sleep(1)
        rss_all = server.rss_bytes()
        per_model = (rss_all - rss_one) / max(1, args.models - 1)
        print(
            f"RSS idle: 1 model registered {rss_one / 2**20:.1f} MiB, {args.models} registered "
            f"{rss_all / 2**20:.1f} MiB -> {per_model / 1024:.1f} KiB per registered model",
            flush=True,
        )
        results.update(rss_one_registered=rss_one, rss_all_registered=rss_all, idle_bytes_per_model=per_model)

        # Cold loads: explicit loads of models never loaded before, one at a time, timed at the client.
        cold = HdrHistogram(1, 60_000_000, 3)
        sample = names[-args.cold_samples :]
        t0 = time.perf_counter()
        for name in sample:
            t = time.perf_counter()
            post(f"{server.url}/v2/repository/models/{name}/load")
            cold.record_value(max(1, int((time.perf_counter() - t) * 1e6)))
        cold_s = time.perf_counter() - t0
        results["cold_load_ms"] = {q: cold.get_value_at_percentile(q) / 1000 for q in (50, 90, 99)}
        results["sequential_loads_per_s"] = len(sample) / cold_s
        print(
            f"cold load ({len(sample)} models): p50 {cold.get_value_at_percentile(50) / 1000:.1f} ms, "
            f"p99 {cold.get_value_at_percentile(99) / 1000:.1f} ms; {len(sample) / cold_s:.1f} loads/s",
            flush=True,
        )

        # Zipf traffic over the whole fleet; the budget holds only part of it, so the tail misses and evicts.
        weights = [1.0 / (rank**args.zipf_s) for rank in range(1, args.models + 1)]
        cumulative = list(itertools.accumulate(weights))
        total = cumulative[-1]

        def pick(rng) -> str:  # type: ignore[no-untyped-def]
            return names[bisect.bisect_left(cumulative, rng.random() * total)]

        body = tensor_request(1, 128)
        if args.warmup > 0:  # fill the budget so the measured hit rate is the steady state, not the cold start
            asyncio.run(open_loop(server.url, pick, body, 1, args.rate, args.warmup, seed=3))
        before = get(f"{server.url}/metrics")
        res = asyncio.run(open_loop(server.url, pick, body, 1, args.rate, args.seconds, seed=7))
        after = get(f"{server.url}/metrics")
        hits = metric(after, 'modelpack_model_cache_total{result="hit"}') - metric(
            before, 'modelpack_model_cache_total{result="hit"}'
        )
        misses = metric(after, 'modelpack_model_cache_total{result="miss"}') - metric(
            before, 'modelpack_model_cache_total{result="miss"}'
        )
        loads = metric(after, 'modelpack_model_loads_total{result="ok"}') - metric(
            before, 'modelpack_model_loads_total{result="ok"}'
        )
        rejected_loads = metric(after, "modelpack_load_rejections_total") - metric(
            before, "modelpack_load_rejections_total"
        )
        evictions = metric(after, "modelpack_model_evictions_total") - metric(before, "modelpack_model_evictions_total")
        loaded = metric(after, "modelpack_models_loaded")
        rss_after = server.rss_bytes()
        hit_rate = hits / max(1.0, hits + misses)
        results["zipf"] = {
            "s": args.zipf_s,
            "rate": args.rate,
            "seconds": args.seconds,
            **res.as_dict(),
            "hit_rate": hit_rate,
            "loads": loads,
            "loads_per_s": loads / args.seconds,
            "evictions": evictions,
            "load_rejections": rejected_loads,
            "models_loaded_at_end": loaded,
            "rss_after": rss_after,
        }
        print(
            f"zipf s={args.zipf_s} at {args.rate:.0f} req/s for {args.seconds:.0f} s: hit rate {hit_rate:.3f}, "
            f"{loads:.0f} loads ({loads / args.seconds:.1f}/s), {evictions:.0f} evictions, {loaded:.0f} loaded; "
            f"p50 {res.p50_ms:.1f} ms p99 {res.p99_ms:.1f} ms, statuses {res.statuses}; "
            f"RSS {rss_after / 2**20:.0f} MiB",
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
