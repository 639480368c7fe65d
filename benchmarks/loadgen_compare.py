"""Side-by-side: modelpack loadgen vs vegeta (open loop) vs wrk (closed loop) against one local nginx endpoint.

    .venv/bin/python benchmarks/loadgen_compare.py [--seconds 5] [--rates 250,500,1000,...] [--delay-rate 1000]

Figures, all measured in this run on this machine:
- highest rate held: the highest rate of the ladder where the tool actually sent >= 99 % of the requested rate
  (modelpack: achieved rate from its results; vegeta: its own `rate`, sends per second of attack) with no
  errors; each tool's ladder stops at its first miss;
- schedule delay p99 at --delay-rate: how late sends left versus their schedule (modelpack: reported;
  vegeta: computed from its per-request timestamps and sequence numbers against start + seq/rate, with the
  start chosen so that no send is early, which can only understate vegeta's delay);
- CPU (user + system seconds) each tool's process used for one --delay-rate run (start-up, warm-up and
  --seconds of load; vegeta's attack only), median of the repeats;
- wrk (plain wrk is closed loop): the throughput it reaches with 2 and 64 connections, for reference; it has no
  schedule, so it can report neither figure above.
The endpoint is nginx (apt package nginx-light, 1 worker) answering the V2 metadata and infer paths with fixed
JSON; all traffic stays on 127.0.0.1. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VEGETA = Path.home() / ".cache/modelpack/bin/vegeta/vegeta"
MODELPACK = [sys.executable, "-m", "modelpack.cli.main", "loadgen"]
METADATA = {
    "name": "m",
    "versions": ["1"],
    "platform": "nginx",
    "inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
    ],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
}
RESPONSE = {"model_name": "m", "outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 2], "data": [0.1, 0.9]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    temp = {k: tmp / k for k in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for p in temp.values():
        p.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {temp["body"]}; proxy_temp_path {temp["proxy"]}; fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]}; scgi_temp_path {temp["scgi"]};
  keepalive_requests 10000000;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location = /v2/models/m {{ return 200 '{json.dumps(METADATA)}'; }}
    location = /v2/models/m/infer {{ return 200 '{json.dumps(RESPONSE)}'; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start")


def request_body() -> bytes:
    from modelpack.api.loadtest import Payload
    from modelpack.loadgen.payloads import encode_body, generate_request

    return encode_body(generate_request("m", METADATA, Payload()))


def children_cpu_s() -> float:
    """User + system CPU seconds of all finished child processes (and their waited-for children) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_modelpack(url: str, rate: float, seconds: float, processes: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"mp-{processes}-{rate}.json"
    cmd = [*MODELPACK, "--url", url, "--model", "m", "--rate", str(rate), "--duration", f"{seconds}s"]
    cmd += ["--warmup", "1s", "--json", str(out), "--no-progress", "--processes", str(processes)]
    cpu = children_cpu_s()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 120)
    cpu = children_cpu_s() - cpu
    r = json.loads(out.read_text())
    return {
        "achieved": r["achievedRate"],
        "errors": r["errors"],
        "delay_p99_ms": r["scheduleDelayP99Ms"],
        "latency_p99_ms": r.get("latencyMs", {}).get("p99"),
        "cpu_s": cpu,
    }


def run_vegeta(url: str, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    body = tmp / "body.json"
    targets = tmp / "targets.txt"
    targets.write_text(f"POST {url}/v2/models/m/infer\nContent-Type: application/json\n@{body}\n")
    results = tmp / f"vegeta-{rate}.bin"
    cpu = children_cpu_s()
    with results.open("wb") as fh:
        subprocess.run(
            [
                *(str(VEGETA), "attack", f"-targets={targets}", f"-rate={rate:g}/1s", f"-duration={seconds:g}s"),
                *("-timeout=10s", "-max-workers=1000"),
            ],
            stdout=fh,
            check=True,
            timeout=seconds + 120,
        )
    cpu = children_cpu_s() - cpu
    report = json.loads(subprocess.run([str(VEGETA), "report", "-type=json", str(results)], capture_output=True).stdout)
    rows = subprocess.run([str(VEGETA), "encode", "--to=csv", str(results)], capture_output=True, text=True).stdout
    sent = np.array(sorted((int(row[8]), int(row[0])) for row in csv.reader(io.StringIO(rows)) if row), dtype=float)
    # Due time of send #seq is start + seq/rate; take as start the one that makes no send early (vegeta does
    # not record its start), which can only understate vegeta's delays.
    offsets = (sent[:, 1] - sent[0, 1]) / 1e6 - sent[:, 0] * 1000.0 / rate
    delays = offsets - offsets.min()
    return {
        "achieved": report["rate"],
        "errors": report["requests"] - round(report["success"] * report["requests"]),
        "delay_p99_ms": float(np.percentile(delays, 99)),
        "latency_p99_ms": report["latencies"]["99th"] / 1e6,
        "cpu_s": cpu,
    }


def run_wrk(url: str, connections: int, seconds: float, tmp: Path) -> float:
    script = tmp / "post.lua"
    body = (tmp / "body.json").read_text()
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), f"{url}/v2/models/m/infer"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def _log(name: str, rate: float, r: dict[str, Any], verdict: str) -> None:
    print(
        f"  {name} @ {rate:g}/s: achieved {r['achieved']:.1f}/s, errors {r['errors']}, "
        f"schedule delay p99 {r['delay_p99_ms']:.2f} ms -> {verdict}",
        file=sys.stderr,
    )


def ladder(name: str, rates: list[float], run: Any) -> float | None:
    """Highest rate held; a miss is retried once (other work shares these 2 cores), the second miss ends it."""
    held: float | None = None
    for rate in rates:
        ok = False
        for _ in range(2):
            r = run(rate)
            ok = r["achieved"] >= 0.99 * rate and r["errors"] == 0
            _log(name, rate, r, "held" if ok else "missed")
            if ok:
                break
        if not ok:
            break
        held = rate
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="250,500,1000,1500,2000,3000,4000,6000,8000,12000,16000,24000,32000,48000")
    parser.add_argument("--delay-rate", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=3, help="schedule-delay samples per tool (median kept)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install nginx-light wrk")
    if not VEGETA.exists():
        raise SystemExit(f"{VEGETA} missing: GOBIN={VEGETA.parent} go install github.com/tsenart/vegeta/v12@v12.13.0")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "body.json").write_bytes(request_body())
        nginx, url = start_nginx(tmp)
        try:
            s = args.seconds
            tools = {
                "modelpack (1 process)": lambda r: run_modelpack(url, r, s, 1, tmp),
                "modelpack (--processes 2)": lambda r: run_modelpack(url, r, s, 2, tmp),
                "vegeta v12.13.0": lambda r: run_vegeta(url, r, s, tmp),
            }
            held: dict[str, float | None] = {}
            delays: dict[str, list[float]] = {name: [] for name in tools}
            cpus: dict[str, list[float]] = {name: [] for name in tools}
            for _ in range(args.repeats):  # interleaved, so background load hits every tool alike
                for name, run in tools.items():
                    r = run(args.delay_rate)
                    _log(name, args.delay_rate, r, "delay sample")
                    delays[name].append(r["delay_p99_ms"])
                    cpus[name].append(r["cpu_s"])
            for name, run in tools.items():
                held[name] = ladder(name, rates, run)
            wrk = {c: run_wrk(url, c, s, tmp) for c in (2, 64)}
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    print(f"\nMachine: {os.cpu_count()} cores, {cpu}, {platform.python_implementation()} {platform.python_version()}")
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; ladder {args.rates} req/s, {s:g} s per step")
    print(f"1-min load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (shared cores)\n")
    ref = "vegeta v12.13.0"
    median = {name: float(np.median(v)) for name, v in delays.items()}
    print(
        f"| tool | highest rate held (req/s) | vs vegeta | schedule-delay p99 @ {args.delay_rate:g}/s, ms: "
        f"median (min-max of {args.repeats}) | vs vegeta | CPU s per {args.delay_rate:g}/s run, median |"
    )
    print("|---|---|---|---|---|---|")
    for name in tools:
        h, d = held[name], median[name]
        h_ratio = f"{h / held[ref]:.2f}x" if h and held[ref] else "-"
        d_ratio = f"{d / median[ref]:.2f}x" if median[ref] > 0 else "-"
        spread = f"{min(delays[name]):.2f}-{max(delays[name]):.2f}"
        cpu_s = float(np.median(cpus[name]))
        print(f"| {name} | {h or 0:g} | {h_ratio} | {d:.2f} ({spread}) | {d_ratio} | {cpu_s:.2f} |")
    for c, rps in wrk.items():
        print(f"| wrk 4.1.0, closed loop, {c} connections | n/a (no schedule; {rps:.0f} req/s max) | - | n/a | - | - |")


if __name__ == "__main__":
    main()
