"""Fixtures: a tiny fleet built once per session (1 layer, 32 hidden, seq 16) and real server processes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from model_server.fleet import build_fleet, shape_for
from tests.processes import die_with_parent

TINY = shape_for(layers=1, hidden=32, heads=2, seq_len=16, vocab_size=600)
"""The smallest BERT the tests build: loads and answers in milliseconds."""
GOOD = ["m-a", "m-b", "m-c"]


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good models, one with a corrupt model.pt, one without model.pt, one with a bad config.json."""
    store = tmp_path_factory.mktemp("store")
    build_fleet(store, [*GOOD, "corrupt", "no-weights", "bad-config"], TINY)
    (store / "corrupt" / "model.pt").write_bytes(b"this is not a torchscript archive")
    (store / "no-weights" / "model.pt").unlink()
    (store / "bad-config" / "config.json").write_text('{"inputs": [], "outputs": []}')
    return store


@pytest.fixture(scope="session")
def qa_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("qa-store")
    build_fleet(store, ["qa-1"], dataclasses.replace(TINY, task="qa"))
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m model_server`` as a child process, talked to over HTTP like any client would."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "model_server", "--port", str(self.port), "--threads", "1", *args]
        self.proc = subprocess.Popen(
            die_with_parent(cmd),
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.proc.returncode}: {self.proc.stdout.read() if self.proc.stdout else ''}"
                )
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready within 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc.stdout else ""


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(list(args), env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(fleet: Path) -> Iterator[ServerProcess]:
    """One shared server over the fleet (module scope keeps the suite fast)."""
    proc = ServerProcess(["--store", str(fleet), "--log-level", "warning", "--max-body-bytes", "64Ki"])
    yield proc
    proc.stop()


@pytest.fixture
def store_copy(fleet: Path, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(fleet, target)
    return target
