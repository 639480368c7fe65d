"""What each tool reports when the server stalls for 1 s once: the coordinated-omission comparison.

    .venv/bin/python benchmarks/loadgen_coordinated_omission.py [--rate 200] [--seconds 10]

A V2 test server (tests/loadgen/v2_server.py, a separate process on 127.0.0.1) answers in ~1 ms but blocks
for 1 s while handling request number `--stall-after` (so the stall falls inside every tool's measured run;
each tool gets a fresh server). Side by side, in one run:
- modelpack, open loop at --rate with 2 requests in flight at most (what 2 client threads can hold), latency
  from the scheduled send, and the service time it reports beside it;
- modelpack in concurrency mode with 2 slots (the AWS sample's 2 closed-loop threads);
- vegeta at --rate (open loop, latency from the actual send, unbounded workers);
- wrk with 2 connections (closed loop).
Prints each tool's p99 and max, and the p99 as a ratio of modelpack's open-loop p99.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VEGETA = Path.home() / ".cache/modelpack/bin/vegeta/vegeta"


def start_server(stall_after: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.loadgen.v2_server", "--models", "m", "--stall-after", str(stall_after)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}"


def modelpack(url: str, args: argparse.Namespace, tmp: Path, closed: bool) -> dict[str, Any]:
    out = tmp / "mp.json"
    cmd = [sys.executable, "-m", "modelpack.cli.main", "loadgen", "--url", url, "--model", "m"]
    cmd += ["--duration", f"{args.seconds}s", "--warmup", "0s", "--json", str(out), "--no-progress"]
    cmd += (
        ["--mode", "concurrency", "--concurrency", "2"]
        if closed
        else ["--rate", str(args.rate), "--max-in-flight", "2"]
    )
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.seconds + 120)
    r = json.loads(out.read_text())
    return {"requests": r["requests"], "latency": r["latencyMs"], "service": r["serviceTimeMs"]}


def vegeta(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    body = tmp / "body.json"
    body.write_text('{"inputs":[{"name":"input_ids","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}')
    targets = tmp / "targets.txt"
    targets.write_text(f"POST {url}/v2/models/m/infer\nContent-Type: application/json\n@{body}\n")
    attack = subprocess.run(
        [str(VEGETA), "attack", f"-targets={targets}", f"-rate={args.rate}/1s", f"-duration={args.seconds}s"],
        capture_output=True,
        check=True,
        timeout=args.seconds + 60,
    )
    report = json.loads(
        subprocess.run([str(VEGETA), "report", "-type=json"], input=attack.stdout, capture_output=True).stdout
    )
    lat = report["latencies"]
    return {"requests": report["requests"], "latency": {"p99": lat["99th"] / 1e6, "max": lat["max"] / 1e6}}


def wrk(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        'wrk.body = \'{"inputs":[{"name":"input_ids","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}\'\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"p99\\": %f, \\"max\\": %f}\\n",\n'
        "    summary.requests, latency:percentile(99) / 1000, latency.max / 1000))\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", "-c2", f"-d{args.seconds}s", "-s", str(script), f"{url}/v2/models/m/infer"],
        capture_output=True,
        text=True,
        timeout=args.seconds + 60,
    ).stdout
    data = json.loads(next(x for x in out.splitlines() if x.startswith("JSON "))[5:])
    return {"requests": data["requests"], "latency": {"p99": data["p99"], "max": data["max"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--stall-after", type=int, default=0, help="default: the request due at 40 % of the run")
    args = parser.parse_args()
    stall_after = args.stall_after or int(args.rate * args.seconds * 0.4)
    rows: dict[str, dict[str, Any]] = {}
    runs = {
        "modelpack open loop (latency from schedule)": lambda u, t: modelpack(u, args, t, closed=False),
        "modelpack closed loop, 2 slots": lambda u, t: modelpack(u, args, t, closed=True),
        "vegeta v12.13.0 open loop": lambda u, t: vegeta(u, args, t),
        "wrk 4.1.0 closed loop, 2 connections": lambda u, t: wrk(u, args, t),
    }
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        for name, run in runs.items():
            # Closed-loop tools reach the stall request sooner; it still falls inside their run.
            proc, url = start_server(stall_after if "open" in name else 200)
            try:
                rows[name] = run(url, Path(tmp_name))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            print(f"  {name}: {rows[name]}", file=sys.stderr)
    ref = rows["modelpack open loop (latency from schedule)"]["latency"]["p99"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nDate: {when}; {args.rate}/s for {args.seconds} s, one 1 s stall")
    print(f"1-min load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (shared cores)\n")
    print("| tool | requests | p99 ms | max ms | p99 vs modelpack open loop |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        lat = r["latency"]
        print(f"| {name} | {r['requests']} | {lat['p99']:.1f} | {lat['max']:.1f} | {lat['p99'] / ref:.3f}x |")
        if name.startswith("modelpack open"):
            svc = r["service"]
            label = "modelpack open loop, service time (from actual send)"
            print(f"| {label} | {r['requests']} | {svc['p99']:.1f} | {svc['max']:.1f} | {svc['p99'] / ref:.3f}x |")


if __name__ == "__main__":
    main()
