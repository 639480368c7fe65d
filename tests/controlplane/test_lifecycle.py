"""ControlPlane start/stop behaviour that the session fixture does not exercise."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import controlplane as cp_module
from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane, ControlPlaneError
from tests.cluster.process import free_port

pytestmark = pytest.mark.cluster


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_taken_between_pick_and_bind_is_retried(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    picks = iter([taken_port])
    monkeypatch.setattr(cp_module, "free_port", lambda: next(picks, None) or free_port())
    with ControlPlane(workdir=tmp_path / "plane") as cp:
        assert cp.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
        etcd_log = (cp.log_dir / "etcd.log").read_text()
        assert f"127.0.0.1:{taken_port}" in etcd_log and "address already in use" in etcd_log
        pids = [c.popen.pid for c in cp._components if c.popen is not None]
    assert not (tmp_path / "plane").exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_component_that_dies_is_named_with_its_log_and_logs_are_kept(tmp_path: Path) -> None:
    real = ensure_binaries()
    broken = dataclasses.replace(real, etcd=Path("/bin/false"))
    cp = ControlPlane(broken, workdir=tmp_path / "plane", start_timeout=20)
    with pytest.raises(ControlPlaneError, match=r"etcd exited with 1 while waiting for etcd /health") as err:
        cp.start()
    assert "$ /bin/false --name=node0" in str(err.value)  # the tail of etcd.log, starting with its command line
    assert (tmp_path / "plane" / "logs" / "etcd.log").is_file()
    assert not [c for c in cp._components if c.exit_code() is None]
