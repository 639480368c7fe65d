"""Shared pieces of the model-server benchmarks: a server subprocess, the raw in-process baseline, and a small
aiohttp client (closed loop for peak throughput, open loop with Poisson arrivals for latency under load).

The open-loop client times each request from its *scheduled* send time, so a slow server cannot hide queueing
delay by slowing the client down (coordinated omission). Every loop is bounded in count and time, and only
talks to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.machine()}, no GPU"


def utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``modelpack serve`` (or any command that serves V2 on ``port``) as a subprocess."""

    def __init__(self, argv: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    @classmethod
    def modelpack(cls, store: Path, *flags: str, log: Path) -> Server:
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "model_server",
            "--store",
            str(store),
            "--port",
            str(port),
            "--log-level",
            "warning",
            *flags,
        ]
        return cls(argv, port, log)

    def wait_ready(self, path: str = "/v2/health/ready", timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s; see {self._log.name}")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (from /proc): robust to other processes' load."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tensor_request(rows: int, seq_len: int, vocab: int = 1000, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    ids = [[2] + [rng.randrange(5, vocab) for _ in range(seq_len - 2)] + [3] for _ in range(rows)]
    mask = [[1] * seq_len for _ in range(rows)]
    body = {
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [rows, seq_len], "data": ids},
            {"name": "attention_mask", "datatype": "INT64", "shape": [rows, seq_len], "data": mask},
        ]
    }
    return json.dumps(body).encode()


def raw_throughput(model_dir: Path, batch: int, seq_len: int, threads: int, seconds: float) -> tuple[float, float]:
    """Rows/s and CPU ms/row of the same TorchScript model called in-process in a loop: the ceiling the server is
    compared to."""
    import torch

    torch.set_num_threads(threads)
    module = torch.jit.load(str(model_dir / "model.pt"), map_location="cpu").eval()
    ids = torch.randint(5, 1000, (batch, seq_len))
    mask = torch.ones(batch, seq_len, dtype=torch.int64)
    # The server's default: TorchScript's profiling optimizer off (``--jit-optimize`` not given).
    with torch.jit.optimized_execution(False), torch.inference_mode():
        for _ in range(5):
            module(ids, mask)
        done, started, cpu = 0, time.perf_counter(), time.process_time()
        while (elapsed := time.perf_counter() - started) < seconds and done < 10_000_000:
            module(ids, mask)
            done += batch
    return done / elapsed, (time.process_time() - cpu) * 1000 / done


@dataclass
class LoadResult:
    sent: int
    ok: int
    errors: int
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _result(
    hist: HdrHistogram,
    sent: int,
    ok: int,
    errors: int,
    rows: int,
    elapsed: float,
    statuses: dict[str, int] | None = None,
) -> LoadResult:
    def ms(q: float) -> float:
        return hist.get_value_at_percentile(q) / 1000.0 if hist.get_total_count() else float("nan")

    return LoadResult(sent, ok, errors, rows / elapsed, ms(50), ms(90), ms(99), hist.get_max_value() / 1000.0, statuses)


async def closed_loop(
    url: str, models: Sequence[str], body: bytes, rows: int, concurrency: int, seconds: float
) -> LoadResult:
    """Peak throughput: ``concurrency`` clients each send the next request as soon as the last one returns."""
    hist = HdrHistogram(1, 60_000_000, 3)
    counts = {"sent": 0, "ok": 0, "err": 0}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker(i: int) -> None:
            n = i
            while time.perf_counter() < deadline and counts["sent"] < 5_000_000:
                model = models[n % len(models)]
                n += concurrency
                counts["sent"] += 1
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"{url}/v2/models/{model}/infer", data=body, headers={"content-type": "application/json"}
                    ) as resp:
                        await resp.read()
                        good = resp.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    good = False
                if good:
                    counts["ok"] += 1
                    hist.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
                else:
                    counts["err"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return _result(hist, counts["sent"], counts["ok"], counts["err"], counts["ok"] * rows, elapsed)


async def open_loop(
    url: str,
    pick_model: Any,
    body: bytes,
    rows: int,
    rate: float,
    seconds: float,
    seed: int = 1,
    max_in_flight: int = 2048,
) -> LoadResult:
    """Poisson arrivals at ``rate`` req/s for ``seconds``; latency counted from each request's scheduled time."""
    rng = random.Random(seed)
    hist = HdrHistogram(1, 120_000_000, 3)
    counts = {"sent": 0, "ok": 0, "err": 0}
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        statuses: dict[str, int] = {}

        async def one(model: str, scheduled: float) -> None:
            try:
                async with session.post(
                    f"{url}/v2/models/{model}/infer", data=body, headers={"content-type": "application/json"}
                ) as resp:
                    await resp.read()
                    status = str(resp.status)
            except (TimeoutError, aiohttp.ClientError):
                status = "transport error"
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                counts["ok"] += 1
                hist.record_value(max(1, int((time.perf_counter() - scheduled) * 1e6)))
            else:
                counts["err"] += 1

        started = time.perf_counter()
        next_at = started
        limit = int(rate * seconds * 1.5) + 10
        while counts["sent"] < limit:
            next_at += rng.expovariate(rate)
            if next_at - started > seconds:
                break
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            counts["sent"] += 1
            task = asyncio.create_task(one(pick_model(rng), next_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        elapsed = time.perf_counter() - started
    return _result(hist, counts["sent"], counts["ok"], counts["err"], counts["ok"] * rows, elapsed, statuses)
