"""Benchmark 4: ``modelpack serve`` against KServe's Python model server, same model, same client, same threads.

Both servers run at once (idle while the other is measured) and runs alternate, so load from other processes
hits both alike. KServe runs from its own venv (``--kserve-python``) so it can never disturb the project's.
Compared: peak rows/s with full-batch requests, peak rows/s with single-row requests (where modelpack's dynamic
batching applies and KServe runs each request alone), and open-loop latency at one common rate.

Usage: python benchmarks/server_kserve.py --size tiny --batch 8 --threads 1 --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

from server_common import Server, closed_loop, free_port, machine, open_loop, tensor_request, utc_now

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
    flags = [
        "--models",
        name,
        "--preload",
        "--threads",
        str(args.threads),
        "--max-batch-size",
        str(args.batch),
        "--max-queue-delay-ms",
        "2",
        "--max-queue-size",
        "4096",
    ]
    full_body, single_body = tensor_request(args.batch, args.seq_len), tensor_request(1, args.seq_len)
    rows: list[dict[str, float]] = []
    results: dict[str, object] = {
        "size": args.size,
        "batch": args.batch,
        "threads": args.threads,
        "machine": machine(),
        "date": utc_now(),
    }
    with (
        Server.modelpack(store, *flags, log=work / "cmp-modelpack.log") as ours,
        Server(kserve_argv, port, work / "cmp-kserve.log") as peer,
    ):
        ours.wait_ready()
        peer.wait_ready(f"/v2/models/{name}/ready")
        for server in (ours, peer):
            asyncio.run(closed_loop(server.url, [name], single_body, 1, 4, 2.0))  # warm-up
        for i in range(args.rounds):
            row: dict[str, float] = {}
            for label, server in (("modelpack", ours), ("kserve", peer)):
                cpu0 = server.cpu_seconds()
                full = asyncio.run(closed_loop(server.url, [name], full_body, args.batch, 2, args.seconds))
                cpu1 = server.cpu_seconds()
                single = asyncio.run(closed_loop(server.url, [name], single_body, 1, 2 * args.batch, args.seconds))
                cpu2 = server.cpu_seconds()
                row[f"{label}_full_cpu_ms_per_row"] = (cpu1 - cpu0) * 1000 / max(1, full.ok * args.batch)
                row[f"{label}_single_cpu_ms_per_row"] = (cpu2 - cpu1) * 1000 / max(1, single.ok)
                row[f"{label}_full"] = full.rows_per_s
                row[f"{label}_single"] = single.rows_per_s
                row[f"{label}_errors"] = full.errors + single.errors
            row["full_ratio"] = row["modelpack_full"] / row["kserve_full"]
            row["single_ratio"] = row["modelpack_single"] / row["kserve_single"]
            row["full_cpu_ratio"] = row["kserve_full_cpu_ms_per_row"] / row["modelpack_full_cpu_ms_per_row"]
            row["single_cpu_ratio"] = row["kserve_single_cpu_ms_per_row"] / row["modelpack_single_cpu_ms_per_row"]
            rows.append(row)
            print(
                f"round {i + 1}: {args.batch}-row requests modelpack {row['modelpack_full']:.1f} vs kserve "
                f"{row['kserve_full']:.1f} rows/s ({row['full_ratio']:.2f}x); 1-row requests modelpack "
                f"{row['modelpack_single']:.1f} vs kserve {row['kserve_single']:.1f} rows/s "
                f"({row['single_ratio']:.2f}x); CPU ms/row modelpack {row['modelpack_full_cpu_ms_per_row']:.2f} / "
                f"{row['modelpack_single_cpu_ms_per_row']:.2f}, kserve {row['kserve_full_cpu_ms_per_row']:.2f} / "
                f"{row['kserve_single_cpu_ms_per_row']:.2f}",
                flush=True,
            )
        for key in rows[0]:
            results[f"median_{key}"] = statistics.median(r[key] for r in rows)
        results["rounds"] = rows
        rate = 0.5 * float(results["median_kserve_single"])  # type: ignore[arg-type]
        for label, server in (("modelpack", ours), ("kserve", peer)):
            res = asyncio.run(open_loop(server.url, lambda _rng: name, single_body, 1, rate, args.seconds))
            results[f"open_loop_{label}"] = {"rate": rate, **res.as_dict()}
            print(
                f"open loop {rate:.0f} req/s (50% of kserve's peak), {label}: p50 {res.p50_ms:.2f} ms, "
                f"p99 {res.p99_ms:.2f} ms, errors {res.errors}/{res.sent}",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
