"""Benchmark 6: cold loads that keep up (issue 14). Many distinct tiny models, memory for about half of them,
Zipf-distributed open-loop traffic from modelpack's own load generator, in identical rounds on one server.

One run measures, side by side:
- the all-warm reference: a server whose budget holds every model, all preloaded, under the same traffic;
- ``--rounds`` identical rounds (same seed, so the same schedule and the same models) on a server started cold
  whose budget holds ``--budget-fraction`` of the fleet: round 1 includes the cold start, later rounds the
  steady state of misses, loads and evictions. One such server per ``--configs`` entry: ``default`` (parallel
  loads bounded by memory, models of a known architecture built from its template), ``jit-load`` (parallel
  loads, every model through ``torch.jit.load``) and ``one-load-thread`` (one load thread and
  ``torch.jit.load``: the load path before issue 14), so each change is measured against the others.
Per round: latency p50/p99 (from each request's scheduled send time, coordinated-omission free), 503s, loads,
and the server's own load-time and load-wait percentiles (``modelpack_model_load_seconds`` and
``modelpack_model_load_wait_seconds``, interpolated within the histogram's buckets); then the issue's ratios:
each round's p99 over the warm p99 (goal <= 5) and the round-to-round p50 spread (goal <= 20 %).

It also times the load path in-process on a sample of models, page cache warm: reading model.pt's bytes,
``torch.jit.load`` alone, and the server's whole load (config, jit.load, tokenizer, warm-up forward pass), to
show whether TorchScript loading sits at the page-cache limit or above it.

The store is built under ``--work`` (random weights, nothing downloaded) and deleted afterwards unless
``--keep-store``. All traffic goes to 127.0.0.1.

Usage: .venv/bin/python benchmarks/server_coldload.py --models 500 --rate 100 --seconds 60 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from server_common import ROOT, Server, machine, utc_now

from model_server.fleet import build_fleet, shape_for

LOADGEN = [sys.executable, "-m", "modelpack.cli.main", "loadgen"]
LOAD_SECONDS = "modelpack_model_load_seconds"
LOAD_WAIT_SECONDS = "modelpack_model_load_wait_seconds"
CONFIGS = {
    "default": [],  # parallel loads bounded by memory, template copies
    "jit-load": ["--jit-load-every-model"],  # parallel loads, every model through torch.jit.load
    "one-load-thread": ["--load-workers", "1", "--jit-load-every-model"],  # the load path before issue 14
}


def scrape(url: str) -> dict[str, Any]:
    """Counters and histogram buckets of one /metrics scrape, keyed by sample name and labels."""
    with urllib.request.urlopen(url + "/metrics", timeout=60) as resp:
        text = resp.read().decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            samples[key] = s.value
    return samples


def delta(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
    return float(after.get(key, 0.0)) - float(before.get(key, 0.0))


def histogram_delta(before: dict[str, Any], after: dict[str, Any], name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the observations made between two scrapes."""
    prefix = name + "_bucket{le="
    bounds = sorted((float(key[len(prefix) : -1]), key) for key in after if key.startswith(prefix))
    return [(bound, delta(before, after, key)) for bound, key in bounds]


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style ``histogram_quantile``: linear within the bucket holding the q-th observation."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower  # beyond the last finite bound: all one can say is "at least"
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cumulative
    return lower


def loadgen(url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [*LOADGEN, "--url", url, "--models-from-server", "--spread", "zipf"]
    cmd += ["--zipf-exponent", str(args.zipf_exponent), "--seed", str(args.seed), "--rate", str(args.rate)]
    cmd += ["--arrival", "poisson", "--duration", f"{args.seconds}s", "--warmup", "0s", "--timeout", "30s"]
    cmd += ["--per-model", "0", "--json", str(out), "--no-progress"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=args.seconds + 300)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def one_round(server: Server, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    before = scrape(server.url)
    res = loadgen(server.url, args, out)
    after = scrape(server.url)
    latency = res.get("latencyMs") or {}
    row: dict[str, Any] = {
        "requests": res["requests"],
        "successes": res["successes"],
        "achieved_rate": res["achievedRate"],
        "late_sends": res.get("lateSends", 0),
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "max_ms": latency.get("max"),
        "status_503": res.get("errorsByStatus", {}).get("503", 0),
        "errors": res["errors"],
        "errors_by_status": res.get("errorsByStatus", {}),
        "loads": delta(before, after, "modelpack_model_loads_total{result=ok}"),
        "failed_loads": delta(before, after, "modelpack_model_loads_total{result=failed}"),
        "load_rejections": delta(before, after, "modelpack_load_rejections_total"),
        "evictions": delta(before, after, "modelpack_model_evictions_total"),
        "hits": delta(before, after, "modelpack_model_cache_total{result=hit}"),
        "misses": delta(before, after, "modelpack_model_cache_total{result=miss}"),
    }
    for name, label in ((LOAD_SECONDS, "load"), (LOAD_WAIT_SECONDS, "load_wait")):
        buckets = histogram_delta(before, after, name)
        count = delta(before, after, name + "_count")
        row[f"{label}_mean_ms"] = 1000 * delta(before, after, name + "_sum") / count if count else None
        for q in (50, 90, 99):
            value = bucket_quantile(buckets, q / 100)
            row[f"{label}_p{q}_ms"] = None if value is None else 1000 * value
    return row


def load_path(store: Path, names: list[str], samples: int) -> dict[str, float]:
    """Median ms per model, page cache warm, of: reading model.pt, torch.jit.load alone, and the server's whole
    load (config, module, tokenizer, warm-up forward pass) with torch.jit.load and as a template copy."""
    import torch

    from model_server.loaded import LoadedModel, load_model
    from model_server.templates import Templates, jit_load

    torch.set_num_threads(1)
    picked = names[:: max(1, len(names) // samples)][:samples]
    for name in picked:  # the page cache holds them all, as it does for the server
        (store / name / "model.pt").read_bytes()
    never, shared = Templates(limit=0), Templates()
    load_model(names[-1], store / names[-1], templates=shared)  # the architecture's template, from another model
    timings: dict[str, list[float]] = {"read": [], "jit_load": [], "whole_jit": [], "whole_template": []}
    for name in picked:
        path = store / name / "model.pt"
        steps: dict[str, Callable[[], object]] = {
            "read": path.read_bytes,
            "jit_load": partial(jit_load, path),
            "whole_jit": partial(load_model, name, store / name, templates=never),
            "whole_template": partial(load_model, name, store / name, templates=shared),
        }
        for step, call in steps.items():
            t = time.perf_counter()
            loaded = call()
            if isinstance(loaded, LoadedModel):
                loaded.warm_up()  # part of the server's load: the first forward pass
            timings[step].append(time.perf_counter() - t)
    out: dict[str, float] = {"samples": len(picked), "model_pt_bytes": (store / picked[0] / "model.pt").stat().st_size}
    out.update({f"{step}_ms": 1000 * statistics.median(values) for step, values in timings.items()})
    return out


def model_size(store: Path, name: str) -> int:
    """What the server's budget counts for one model (every model of the fleet has the same shape)."""
    from model_server.loaded import load_model

    return load_model(name, store / name).size_bytes


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--size", default="tiny", help="tiny, small or base (model_server.bert.SIZES)")
    parser.add_argument("--budget-fraction", type=float, default=0.5, help="share of the fleet the budget holds")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s (Poisson arrivals)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zipf-exponent", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="the same in every round: identical rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per inference thread")
    parser.add_argument("--load-workers", type=int, help="server --load-workers (default: the server's own)")
    parser.add_argument("--load-path-samples", type=int, default=50)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="cold servers to run, each --rounds rounds")
    parser.add_argument("--work", default="/tmp/modelpack-coldload")
    parser.add_argument("--keep-store", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = work / f"store-{args.size}"
    names = [f"model-{i:04d}" for i in range(args.models)]
    try:
        results = run(args, work, store, names)
    finally:
        if not args.keep_store:
            shutil.rmtree(store, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace, work: Path, store: Path, names: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    built = build_fleet(store, names, shape_for(args.size))
    print(f"machine: {machine()}; date: {utc_now()}")
    print(
        f"store: {args.models} {args.size} models, built {len(built.built)}, reused {len(built.reused)} "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    size = model_size(store, names[0])
    budget = int(size * args.models * args.budget_fraction)
    print(f"model size (server accounting) {size / 2**20:.2f} MiB; budget {budget / 2**20:.0f} MiB", flush=True)
    path = load_path(store, names, args.load_path_samples)
    print(
        f"load path ({path['samples']} models, page cache warm, median): read model.pt "
        f"({path['model_pt_bytes'] / 2**20:.2f} MiB) {path['read_ms']:.2f} ms, torch.jit.load "
        f"{path['jit_load_ms']:.1f} ms; whole server load {path['whole_jit_ms']:.1f} ms with torch.jit.load, "
        f"{path['whole_template_ms']:.1f} ms as a template copy",
        flush=True,
    )
    models_file = work / "models.txt"
    models_file.write_text("\n".join(names) + "\n")
    flags = ["--models-file", str(models_file), "--threads", str(args.threads)]
    if args.load_workers:
        flags += ["--load-workers", str(args.load_workers)]
    results: dict[str, Any] = {
        "machine": machine(),
        "date": utc_now(),
        "models": args.models,
        "size": args.size,
        "model_bytes": size,
        "budget_bytes": budget,
        "rate": args.rate,
        "seconds": args.seconds,
        "zipf_exponent": args.zipf_exponent,
        "flags": flags[2:],
        "load_path": path,
    }

    warm_budget = str(int(size * args.models * 1.5))
    with Server.modelpack(store, *flags, "--memory-budget", warm_budget, "--preload", log=work / "warm.log") as warm:
        warm.wait_ready(timeout=900)
        reference = one_round(warm, args, work / "warm.json")
    results["warm"] = reference
    print(f"warm: {row_text(reference)}", flush=True)

    results["configs"] = {}
    for config in args.configs.split(","):
        if config not in CONFIGS:
            raise SystemExit(f"unknown config {config!r}: use {', '.join(CONFIGS)}")
        extra = CONFIGS[config]
        print(f"cold server, {config} ({' '.join(extra) or 'defaults'}):", flush=True)
        rounds = []
        log = work / f"cold-{config}.log"
        with Server.modelpack(store, *flags, *extra, "--memory-budget", str(budget), log=log) as cold:
            cold.wait_ready()
            for i in range(1, args.rounds + 1):
                row = one_round(cold, args, work / f"round-{config}-{i}.json")
                rounds.append(row)
                print(f"  round {i}: {row_text(row)}", flush=True)
        goal = judge(rounds, reference["p99_ms"])
        results["configs"][config] = {"flags": extra, "rounds": rounds, "goal": goal}
        print(
            f"  goal: 503s {goal['status_503']} (0), p99 / warm p99 "
            f"{', '.join(f'{x:.2f}' for x in goal['p99_over_warm_p99'])} (<= 5), round-to-round p50 spread "
            f"{100 * goal['p50_spread']:.0f} % (<= 20 %): {'met' if goal['met'] else 'NOT met'}",
            flush=True,
        )
    return results


def judge(rounds: list[dict[str, Any]], warm_p99: float) -> dict[str, Any]:
    """The issue's goal: no 503s, every round's p99 within 5x the all-warm p99, round p50s within 20 %."""
    p50s = [r["p50_ms"] for r in rounds]
    p99_ratios = [r["p99_ms"] / warm_p99 for r in rounds]
    spread = max(p50s) / min(p50s) - 1
    total_503 = sum(r["status_503"] for r in rounds)
    return {
        "p99_over_warm_p99": p99_ratios,
        "p50_spread": spread,
        "status_503": total_503,
        "met": total_503 == 0 and max(p99_ratios) <= 5 and spread <= 0.2,
    }


def row_text(r: dict[str, Any]) -> str:
    return (
        f"{r['successes']}/{r['requests']} ok ({r['achieved_rate']:.1f} req/s sent), p50 {fmt(r['p50_ms'])} ms, "
        f"p99 {fmt(r['p99_ms'])} ms, max {fmt(r['max_ms'])} ms, 503s {r['status_503']}, errors {r['errors']}; "
        f"hits {r['hits']:.0f} misses {r['misses']:.0f}, loads {r['loads']:.0f}, evictions {r['evictions']:.0f}, "
        f"load rejections {r['load_rejections']:.0f}; load ms p50/p90/p99 {fmt(r['load_p50_ms'])}/"
        f"{fmt(r['load_p90_ms'])}/{fmt(r['load_p99_ms'])} (mean {fmt(r['load_mean_ms'])}), "
        f"load wait ms p50/p90/p99 {fmt(r['load_wait_p50_ms'])}/{fmt(r['load_wait_p90_ms'])}/"
        f"{fmt(r['load_wait_p99_ms'])} (mean {fmt(r['load_wait_mean_ms'])})"
    )


if __name__ == "__main__":
    sys.exit(main())
