"""bert-base per precision: served and raw throughput, p50/p99, accuracy delta, model size and load time.

Builds the same distinct models (local random weights, nothing downloaded) once per artifact: ``plain`` (today's
traced fp32, no optimization: the baseline), ``fp32`` (frozen, optimized for inference), ``int8-dynamic`` and
``bf16`` (skipped, with the reason, on a CPU without native bf16). Each round runs every artifact in turn (the
order rotates per round, so load from other processes on the machine hits all alike): the raw in-process loop,
then a `modelpack serve` process over that artifact's store under closed-loop load at each concurrency. Ratios are
taken against ``plain`` in the same round.

    .venv/bin/python benchmarks/server_precision.py --size base --task qa --models 2 --threads 2 --seconds 15 \\
        --rounds 2 --concurrency 1,4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server_common import Server, closed_loop, machine, raw_throughput, tensor_request, utc_now

from model_server.config import MODEL_FILE, load_config
from model_server.fleet import build_fleet, shape_for
from model_server.loaded import load_model
from model_server.precision import PRECISIONS, CpuFeatures, unsupported_reason

PLAIN = "plain"
CACHE = Path.home() / ".cache" / "modelpack" / "benchmarks" / "precision"


def load_seconds(model_dir: Path, times: int = 3) -> tuple[float, float]:
    """Median seconds of what the server's load thread does: load_model (torch.jit.load + tokenizer), then the
    warm-up forward pass. The archive is in the page cache after the first build, as on a warm server node."""
    loads, warms = [], []
    for _ in range(times):
        started = time.perf_counter()
        model = load_model(model_dir.name, model_dir)
        loaded = time.perf_counter()
        model.warm_up()
        loads.append(loaded - started)
        warms.append(time.perf_counter() - loaded)
        del model
    return statistics.median(loads), statistics.median(warms)


def probe(model_dir: Path, batch: int, seq_len: int, threads: int, seconds: float) -> dict[str, float]:
    """Load time and the raw loop in a fresh process, like the server's: the benchmark process itself has built,
    traced and quantized models, and its leftover threads and allocations slowed its own raw loop by up to 3x."""
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import server_precision as b; "
        "print(json.dumps(b.probe_here(Path(sys.argv[2]), *map(int, sys.argv[3:6]), float(sys.argv[6]))))"
    )
    argv = [sys.executable, "-c", code, str(Path(__file__).parent), str(model_dir), str(batch), str(seq_len)]
    out = subprocess.run([*argv, str(threads), str(seconds)], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def probe_here(model_dir: Path, batch: int, seq_len: int, threads: int, seconds: float) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    load_s, warm_s = load_seconds(model_dir)
    raw, raw_cpu = raw_throughput(model_dir, batch, seq_len, threads, seconds)
    return {"load_s": load_s, "warm_up_s": warm_s, "raw_rows_per_s": raw, "raw_cpu_ms_per_row": raw_cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--task", default="qa", choices=["classification", "qa"])
    parser.add_argument("--models", type=int, default=2, help="distinct models per artifact, served round-robin")
    parser.add_argument("--precisions", default=",".join((PLAIN, *PRECISIONS)))
    parser.add_argument("--threads", type=int, default=2, help="torch threads, for the raw loop and the server")
    parser.add_argument("--batch", type=int, default=1, help="rows per request (and per raw call)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--concurrency", default="1,4", help="closed-loop connections, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default=str(CACHE), help="stores (kept: a rerun reuses them) and server logs")
    parser.add_argument("--out", help="write results as JSON here")
    args = parser.parse_args()
    # SIGTERM (a shared machine gets busy: stop and rerun later) unwinds like Ctrl-C, so the server stops too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    cpu = CpuFeatures.detect()
    precisions, skipped = [], {}
    for p in args.precisions.split(","):
        reason = None if p == PLAIN else unsupported_reason(p, cpu)
        if reason is None:
            precisions.append(p)
        else:
            skipped[p] = reason
            print(f"skipping {p}: {reason}", flush=True)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    names = [f"bench-{args.size}-{args.task}-{i}" for i in range(args.models)]
    work = Path(args.work)
    stores: dict[str, Path] = {}
    for p in precisions:
        stores[p] = work / f"{args.size}-{args.task}-{args.seq_len}-{p}"
        started = time.perf_counter()
        shape = shape_for(args.size, task=args.task, seq_len=args.seq_len)
        build_fleet(stores[p], names, shape, precision=None if p == PLAIN else p)
        print(f"{p}: store ready in {time.perf_counter() - started:.1f} s", flush=True)

    facts: dict[str, dict[str, Any]] = {}
    for p in precisions:
        model_dir = stores[p] / names[0]
        config = load_config(model_dir)
        facts[p] = {
            "file_bytes": (model_dir / MODEL_FILE).stat().st_size,
            "accuracy": [a.model_dump() for n in names if (a := load_config(stores[p] / n).accuracy) is not None],
            "budget_bytes": load_model(names[0], model_dir, config).size_bytes,
        }
    print(f"machine: {machine()}; date: {utc_now()}; load average {os.getloadavg()}", flush=True)

    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = precisions[r % len(precisions) :] + precisions[: r % len(precisions)]
        this: dict[str, Any] = {"load_average_before": os.getloadavg()}
        for p in order:
            measured = probe(stores[p] / names[0], args.batch, args.seq_len, args.threads, args.seconds)
            raw = measured["raw_rows_per_s"]
            flags = ["--preload", "--threads", str(args.threads), "--max-batch-size", "8", "--memory-budget", "8Gi"]
            log = work / f"server-{p}.log"
            served: dict[str, Any] = {}
            with Server.modelpack(stores[p], *flags, log=log) as server:
                server.wait_ready(timeout=600)
                body = tensor_request(args.batch, args.seq_len)
                asyncio.run(closed_loop(server.url, names, body, args.batch, 1, 3.0))  # warm-up, every model
                for c in concurrency:
                    cpu0 = server.cpu_seconds()
                    result = asyncio.run(closed_loop(server.url, names, body, args.batch, c, args.seconds))
                    cpu_ms = (server.cpu_seconds() - cpu0) * 1000 / max(1, result.ok * args.batch)
                    served[str(c)] = {**result.as_dict(), "cpu_ms_per_row": cpu_ms}
            this[p] = {**measured, "served": served}
            line = ", ".join(
                f"c={c} {v['rows_per_s']:.2f}/s p50 {v['p50_ms']:.0f} p99 {v['p99_ms']:.0f} ms err {v['errors']}"
                for c, v in served.items()
            )
            print(f"round {r + 1} {p}: raw {raw:.2f} rows/s; served {line}", flush=True)
        this["load_average_after"] = os.getloadavg()
        rounds.append(this)

    results = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": machine(),
        "date": utc_now(),
        "args": vars(args),
        "cpu_flags": sorted(cpu.flags & {"avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "bf16", "avx512f"}),
        "skipped": skipped,
        "facts": facts,
        "rounds": rounds,
    }
    print(summary(results, precisions, concurrency))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def summary(results: dict[str, Any], precisions: list[str], concurrency: list[int]) -> str:
    """A markdown table: medians over rounds; ratios against ``plain`` taken within each round, then the median."""
    rounds, facts = results["rounds"], results["facts"]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    header = ["artifact", "max abs diff", "top-1 agree", "model.pt MiB", "load + warm-up ms", "raw rows/s"]
    header += ["raw / plain raw", "raw CPU ms/row"]
    for c in concurrency:
        header += [f"served c={c}", f"/ plain (c={c})", f"served/raw (c={c})", f"p50/p99 ms (c={c})"]
        header.append(f"CPU ms/row (c={c})")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in precisions:
        acc = facts[p]["accuracy"]
        diff = f"{max(a['max_abs_diff'] for a in acc):.4f}" if acc else "-"
        agree = f"{min(a['top1_agreement'] for a in acc):.3f}" if acc else "-"
        raw = [r[p]["raw_rows_per_s"] for r in rounds]
        has_plain = PLAIN in rounds[0]
        plain_ratio = [r[p]["raw_rows_per_s"] / r[PLAIN]["raw_rows_per_s"] for r in rounds] if has_plain else []
        row = [
            p,
            diff,
            agree,
            f"{facts[p]['file_bytes'] / 2**20:.0f}",
            f"{med([(r[p]['load_s'] + r[p]['warm_up_s']) * 1000 for r in rounds]):.0f}",
            f"{med(raw):.2f}",
            f"{med(plain_ratio):.2f}" if plain_ratio else "-",
            f"{med([r[p]['raw_cpu_ms_per_row'] for r in rounds]):.0f}",
        ]
        for c in concurrency:
            s = [r[p]["served"][str(c)] for r in rounds]
            rate = str(c)
            vs_plain = (
                [r[p]["served"][rate]["rows_per_s"] / r[PLAIN]["served"][rate]["rows_per_s"] for r in rounds]
                if has_plain
                else []
            )
            vs_raw = [r[p]["served"][str(c)]["rows_per_s"] / r[p]["raw_rows_per_s"] for r in rounds]
            row += [
                f"{med([x['rows_per_s'] for x in s]):.2f}",
                f"{med(vs_plain):.2f}" if has_plain else "-",
                f"{med(vs_raw):.2f}",
                f"{med([x['p50_ms'] for x in s]):.0f} / {med([x['p99_ms'] for x in s]):.0f}",
                f"{med([x['cpu_ms_per_row'] for x in s]):.0f}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
