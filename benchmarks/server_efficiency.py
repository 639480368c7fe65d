"""Benchmarks 1 and 2: serving efficiency against the raw model, and latency under open-loop load.

1. Efficiency: rows/s through ``modelpack serve`` / rows/s of the same TorchScript model called in-process at the
   same batch size and torch thread count. Two client shapes: requests that already hold a full batch, and
   single-row requests that the server's dynamic batcher groups into batches of up to the same size.
2. Latency: Poisson open-loop load of single-row requests at 50% and 90% of the measured peak; p50/p99.

Usage: python benchmarks/server_efficiency.py --size tiny --batch 8 --threads 1 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from server_common import Server, closed_loop, machine, open_loop, raw_throughput, tensor_request, utc_now

from model_server.fleet import build_fleet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for the raw loop and the server")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--delay-ms", type=float, default=2.0, help="server max queue delay")
    parser.add_argument("--work", default="/tmp/modelpack-bench")
    parser.add_argument("--out", help="write results as JSON here")
    args = parser.parse_args()

    store = Path(args.work) / f"store-{args.size}-{args.seq_len}"
    name = f"bench-{args.size}"
    build_fleet(store, [name], size=args.size, seq_len=args.seq_len)
    print(f"machine: {machine()}; date: {utc_now()}", flush=True)

    raw = raw_throughput(store / name, args.batch, args.seq_len, args.threads, args.seconds)
    print(f"raw in-process, batch {args.batch}, {args.threads} thread(s): {raw:.1f} rows/s", flush=True)

    flags = ["--models", name, "--preload", "--threads", str(args.threads), "--max-batch-size", str(args.batch),
             "--max-queue-delay-ms", str(args.delay_ms), "--max-queue-size", "4096"]
    results: dict[str, object] = {"size": args.size, "batch": args.batch, "threads": args.threads,
                                  "seq_len": args.seq_len, "raw_rows_per_s": raw, "machine": machine(),
                                  "date": utc_now()}
    with Server.modelpack(store, *flags, log=Path(args.work) / f"server-{args.size}.log") as server:
        server.wait_ready()
        url = server.url
        batched_body = tensor_request(args.batch, args.seq_len)
        single_body = tensor_request(1, args.seq_len)
        asyncio.run(closed_loop(url, [name], single_body, 1, 4, 2.0))  # warm-up
        full = asyncio.run(closed_loop(url, [name], batched_body, args.batch, 2, args.seconds))
        print(f"served, {args.batch}-row requests: {full.rows_per_s:.1f} rows/s = {full.rows_per_s / raw:.3f} x raw",
              flush=True)
        single = asyncio.run(closed_loop(url, [name], single_body, 1, 2 * args.batch, args.seconds))
        print(f"served, 1-row requests batched by the server: {single.rows_per_s:.1f} rows/s = "
              f"{single.rows_per_s / raw:.3f} x raw (p50 {single.p50_ms:.1f} ms)", flush=True)
        results["served_full_batches"] = full.as_dict()
        results["served_single_rows"] = single.as_dict()
        peak = single.rows_per_s
        for fraction in (0.5, 0.9):
            rate = peak * fraction
            res = asyncio.run(open_loop(url, lambda _rng: name, single_body, 1, rate, args.seconds))
            results[f"open_loop_{int(fraction * 100)}pct"] = {"rate": rate, **res.as_dict()}
            print(f"open loop at {fraction:.0%} of peak ({rate:.0f} req/s): p50 {res.p50_ms:.2f} ms, "
                  f"p99 {res.p99_ms:.2f} ms, errors {res.errors}/{res.sent}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
