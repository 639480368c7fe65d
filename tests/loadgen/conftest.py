"""Fixtures: real V2 test servers in separate processes on free ports, and LoadTestSpec building."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelpack.api.loadtest import LoadTestSpec
from tests.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as resp:
            return json.loads(resp.read())


@pytest.fixture
def v2_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*args: str) -> Server:
        proc = subprocess.Popen(
            die_with_parent([sys.executable, "-m", "tests.loadgen.v2_server", *args]),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"test server did not start: {line!r}")
        server = Server(f"http://127.0.0.1:{int(line.split()[1])}", proc)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


def make_spec(**load: Any) -> LoadTestSpec:
    """A spec with camelCase `load` fields; `spread`, `slo`, `payload` and `seed` go to their own sections."""
    spread = load.pop("spread", "uniform")
    zipf = load.pop("zipfExponent", 1.1)
    slo = load.pop("slo", None)
    payload = load.pop("payload", {})
    seed = load.pop("seed", 0)
    doc: dict[str, Any] = {
        "target": {"modelPack": "test", "spread": spread, "zipfExponent": zipf, "models": {"seed": seed}},
        "load": load,
        "payload": payload,
    }
    if slo is not None:
        doc["slo"] = slo
    return LoadTestSpec.model_validate(doc)
