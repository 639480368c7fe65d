"""Benchmark 4: ``modelpack serve`` against KServe's Python model server, same model, same client, same threads.

Both servers run at once (idle while the other is measured) and runs alternate, so load from other processes
hits both alike. KServe runs from its own venv (``--kserve-python``) so it can never disturb the project's.
Compared: peak rows/s with full-batch requests; peak rows/s with single-row requests at 1, 8 and 32
connections (where modelpack's dynamic batching applies and KServe runs each request alone); and the
latency-throughput curve, open-loop Poisson 1-row requests at 10 % to 100 % of KServe's peak, against the raw
model's in-process call as the floor. modelpack runs with its default batching settings.

Usage: python benchmarks/server_kserve.py --size tiny --batch 8 --threads 1 --seconds 10 --rounds 3 \
    --plot docs/perf/server-kserve-curve.svg --out /tmp/kserve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from server_common import (
    Server,
    closed_loop,
    free_port,
    machine,
    open_loop,
    raw_throughput,
    tensor_request,
    utc_now,
)

from model_server.fleet import build_fleet, shape_for

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kserve-python", default="/tmp/kserve-venv/bin/python")
    parser.add_argument("--work", default="/tmp/modelpack-bench")
    parser.add_argument("--concurrency", default="1,8,32", help="connection counts for the 1-row peaks")
    parser.add_argument("--curve", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0", help="fractions of KServe's peak")
    parser.add_argument("--curve-seconds", type=float, default=10.0)
    parser.add_argument("--plot", help="write the latency-throughput curve here (.svg or .png)")
    parser.add_argument("--out")
    args = parser.parse_args()

    work = Path(args.work)
    store = work / f"store-{args.size}-{args.seq_len}"
    name = f"bench-{args.size}"
    build_fleet(store, [name], shape_for(args.size, seq_len=args.seq_len))
    print(f"machine: {machine()}; date: {utc_now()}", flush=True)
    port = free_port()
    kserve_argv = [
        args.kserve_python,
        str(HERE / "server_kserve_model.py"),
        "--model-dir",
        str(store / name),
        "--name",
        name,
        "--port",
        str(port),
        "--threads",
        str(args.threads),
    ]
    # The server's own batching defaults: what a user gets (docs/model-server.md states them).
    flags = ["--models", name, "--preload", "--threads", str(args.threads), "--max-batch-size", str(args.batch)]
    full_body, single_body = tensor_request(args.batch, args.seq_len), tensor_request(1, args.seq_len)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, Any] = {
        "size": args.size,
        "batch": args.batch,
        "threads": args.threads,
        "concurrency": concurrencies,
        "machine": machine(),
        "date": utc_now(),
        "load_average_start": os.getloadavg()[0],
    }
    raw_rows_per_s, _ = raw_throughput(store / name, 1, args.seq_len, args.threads, args.seconds)
    results["raw_single_ms"] = 1000 / raw_rows_per_s
    print(f"raw model, 1 row in-process: {results['raw_single_ms']:.2f} ms per call", flush=True)
    with (
        Server.modelpack(store, *flags, log=work / "cmp-modelpack.log") as ours,
        Server(kserve_argv, port, work / "cmp-kserve.log") as peer,
    ):
        ours.wait_ready()
        peer.wait_ready(f"/v2/models/{name}/ready")
        servers = (("modelpack", ours), ("kserve", peer))
        for _, server in servers:
            asyncio.run(closed_loop(server.url, [name], single_body, 1, 4, 2.0))  # warm-up
        rows = [
            peak_round(i, servers, name, full_body, single_body, args.batch, concurrencies, args.seconds)
            for i in range(args.rounds)
        ]
        for key in rows[0]:
            results[f"median_{key}"] = statistics.median(r[key] for r in rows)
        results["rounds"] = rows
        kserve_peak = max(float(results[f"median_kserve_single_c{c}"]) for c in concurrencies)
        results["kserve_single_peak"] = kserve_peak
        fractions = [float(f) for f in args.curve.split(",")] if args.curve else []
        results["curve"] = [
            curve_point(servers, name, single_body, fraction, kserve_peak, args.curve_seconds) for fraction in fractions
        ]
    results["load_average_end"] = os.getloadavg()[0]
    if args.plot and results["curve"]:
        plot_curve(results, Path(args.plot))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def peak_round(
    index: int,
    servers: tuple[tuple[str, Server], ...],
    name: str,
    full_body: bytes,
    single_body: bytes,
    batch: int,
    concurrencies: list[int],
    seconds: float,
) -> dict[str, float]:
    """One round of closed-loop peaks, servers alternating: full-batch requests over 2 connections, then 1-row
    requests at each connection count (where modelpack's batcher applies and KServe runs each request alone)."""
    row: dict[str, float] = {}
    for label, server in servers:
        cpu0 = server.cpu_seconds()
        full = asyncio.run(closed_loop(server.url, [name], full_body, batch, 2, seconds))
        row[f"{label}_full"] = full.rows_per_s
        row[f"{label}_full_cpu_ms_per_row"] = (server.cpu_seconds() - cpu0) * 1000 / max(1, full.ok * batch)
        errors = full.errors
        for c in concurrencies:
            single = asyncio.run(closed_loop(server.url, [name], single_body, 1, c, seconds))
            row[f"{label}_single_c{c}"] = single.rows_per_s
            errors += single.errors
        row[f"{label}_errors"] = errors
    row["full_ratio"] = row["modelpack_full"] / row["kserve_full"]
    for c in concurrencies:
        row[f"single_c{c}_ratio"] = row[f"modelpack_single_c{c}"] / row[f"kserve_single_c{c}"]
    singles = ", ".join(
        f"{c} conn. {row[f'modelpack_single_c{c}']:.0f} vs {row[f'kserve_single_c{c}']:.0f} "
        f"({row[f'single_c{c}_ratio']:.2f}x)"
        for c in concurrencies
    )
    print(
        f"round {index + 1}: {batch}-row requests modelpack {row['modelpack_full']:.1f} vs kserve "
        f"{row['kserve_full']:.1f} rows/s ({row['full_ratio']:.2f}x); 1-row requests/s: {singles}; "
        f"errors {row['modelpack_errors']:.0f} / {row['kserve_errors']:.0f}",
        flush=True,
    )
    return row


def curve_point(
    servers: tuple[tuple[str, Server], ...], name: str, body: bytes, fraction: float, peak: float, seconds: float
) -> dict[str, Any]:
    """Open-loop (Poisson) 1-row requests at ``fraction`` of KServe's peak, each server in turn, same seed."""
    rate = fraction * peak
    point: dict[str, Any] = {"fraction": fraction, "rate": rate}
    for label, server in servers:
        res = asyncio.run(open_loop(server.url, lambda _rng: name, body, 1, rate, seconds))
        point[label] = res.as_dict()
    ours, peer = point["modelpack"], point["kserve"]
    print(
        f"open loop {rate:.0f} req/s ({fraction:.0%} of kserve's peak): p50 modelpack {ours['p50_ms']:.2f} vs "
        f"kserve {peer['p50_ms']:.2f} ms; p99 {ours['p99_ms']:.2f} vs {peer['p99_ms']:.2f} ms; errors "
        f"{ours['errors']} / {peer['errors']}",
        flush=True,
    )
    return point


def plot_curve(results: dict[str, Any], path: Path) -> None:
    """p50 and p99 against offered rate for both servers, with the raw model's in-process call as the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = results["curve"]
    rates = [p["rate"] for p in curve]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, colour in (("modelpack", "tab:blue"), ("kserve", "tab:orange")):
        ax.plot(rates, [p[label]["p50_ms"] for p in curve], "o-", color=colour, label=f"{label} p50")
        ax.plot(rates, [p[label]["p99_ms"] for p in curve], "s--", color=colour, label=f"{label} p99")
    ax.axhline(results["raw_single_ms"], color="grey", linestyle=":", label="raw model, 1 row in-process")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, 1-row requests/s (open loop, Poisson)")
    ax.set_ylabel("latency from scheduled send, ms")
    ax.set_title(f"{results['size']} BERT, {results['machine'].split(' (')[0]}, {results['date']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
