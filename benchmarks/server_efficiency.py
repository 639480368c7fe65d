"""Benchmarks 1 and 2: serving efficiency against the raw model, and latency under open-loop load.

1. Efficiency: rows/s through ``modelpack serve`` / rows/s of the same TorchScript model called in-process at the
   same batch size and torch thread count. Two client shapes: requests that already hold a full batch, and
   single-row requests that the server's dynamic batcher groups into batches of up to the same size.
2. Latency: Poisson open-loop load of single-row requests at 50% and 90% of the measured peak; p50/p99.

Usage: python benchmarks/server_efficiency.py --size tiny --batch 8 --threads 1 --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

from server_common import Server, closed_loop, machine, open_loop, raw_throughput, tensor_request, utc_now

from model_server.fleet import build_fleet, shape_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for the raw loop and the server")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=2.0, help="server max queue delay")
    parser.add_argument("--work", default="/tmp/modelpack-bench")
    parser.add_argument("--out", help="write results as JSON here")
    args = parser.parse_args()

    store = Path(args.work) / f"store-{args.size}-{args.seq_len}"
    name = f"bench-{args.size}"
    build_fleet(store, [name], shape_for(args.size, seq_len=args.seq_len))
    print(f"machine: {machine()}; date: {utc_now()}", flush=True)

    flags = [
        "--models",
        name,
        "--preload",
        "--threads",
        str(args.threads),
        "--max-batch-size",
        str(args.batch),
        "--max-queue-delay-ms",
        str(args.delay_ms),
        "--max-queue-size",
        "4096",
    ]
    results: dict[str, object] = {
        "size": args.size,
        "batch": args.batch,
        "threads": args.threads,
        "seq_len": args.seq_len,
        "machine": machine(),
        "date": utc_now(),
        "rounds": [],
    }
    rounds: list[dict[str, float]] = []
    with Server.modelpack(store, *flags, log=Path(args.work) / f"server-{args.size}.log") as server:
        server.wait_ready()
        url = server.url
        batched_body = tensor_request(args.batch, args.seq_len)
        single_body = tensor_request(1, args.seq_len)
        asyncio.run(closed_loop(url, [name], single_body, 1, 4, 2.0))  # warm-up
        # Raw and served runs alternate, so load from other processes on the machine hits both alike.
        for i in range(args.rounds):
            raw, raw_cpu = raw_throughput(store / name, args.batch, args.seq_len, args.threads, args.seconds)
            cpu0 = server.cpu_seconds()
            full = asyncio.run(closed_loop(url, [name], batched_body, args.batch, 2, args.seconds))
            cpu1 = server.cpu_seconds()
            single = asyncio.run(closed_loop(url, [name], single_body, 1, 2 * args.batch, args.seconds))
            cpu2 = server.cpu_seconds()
            full_cpu = (cpu1 - cpu0) * 1000 / max(1, full.ok * args.batch)
            single_cpu = (cpu2 - cpu1) * 1000 / max(1, single.ok)
            row = {
                "raw": raw,
                "full": full.rows_per_s,
                "single": single.rows_per_s,
                "full_ratio": full.rows_per_s / raw,
                "single_ratio": single.rows_per_s / raw,
                "raw_cpu_ms_per_row": raw_cpu,
                "full_cpu_ms_per_row": full_cpu,
                "single_cpu_ms_per_row": single_cpu,
                "full_cpu_ratio": raw_cpu / full_cpu,
                "single_cpu_ratio": raw_cpu / single_cpu,
                "single_p50_ms": single.p50_ms,
                "errors": full.errors + single.errors,
            }
            print(
                f"round {i + 1}: raw {raw:.1f} rows/s (batch {args.batch}); served {args.batch}-row requests "
                f"{full.rows_per_s:.1f} rows/s = {row['full_ratio']:.3f} x raw; 1-row requests batched by the "
                f"server {single.rows_per_s:.1f} rows/s = {row['single_ratio']:.3f} x raw; CPU ms/row raw "
                f"{raw_cpu:.2f}, served {full_cpu:.2f} / {single_cpu:.2f}",
                flush=True,
            )
            rounds.append(row)
        results["rounds"] = rounds
        for key in ("raw", "full", "single", "full_ratio", "single_ratio", "full_cpu_ratio", "single_cpu_ratio"):
            results[f"median_{key}"] = statistics.median(r[key] for r in rounds)
        print(
            f"median throughput ratio: full-batch requests {results['median_full_ratio']:.3f} x raw, single-row "
            f"requests {results['median_single_ratio']:.3f} x raw; CPU efficiency (raw CPU/row over served CPU/row) "
            f"{results['median_full_cpu_ratio']:.3f} / {results['median_single_cpu_ratio']:.3f}",
            flush=True,
        )
        peak = float(results["median_single"])  # type: ignore[arg-type]
        for fraction in (0.5, 0.9):
            rate = peak * fraction
            res = asyncio.run(open_loop(url, lambda _rng: name, single_body, 1, rate, args.seconds))
            results[f"open_loop_{int(fraction * 100)}pct"] = {"rate": rate, **res.as_dict()}
            print(
                f"open loop at {fraction:.0%} of peak ({rate:.0f} req/s, 1-row requests): p50 {res.p50_ms:.2f} ms, "
                f"p99 {res.p99_ms:.2f} ms, errors {res.errors}/{res.sent}",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
