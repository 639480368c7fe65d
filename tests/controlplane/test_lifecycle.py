"""ControlPlane start/stop behaviour that the session fixture does not exercise."""

from __future__ import annotations

import dataclasses
import http.server
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import controlplane as cp_module
from tests.cluster import pki
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


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port_of_a_foreign_healthy_server(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server answering 200 to every path: what another run's component looks like to a probe."""
    ca = pki.make_ca(tmp_path)
    cert = pki.issue(ca, tmp_path, "foreign", "foreign", (), ("IP:127.0.0.1",))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_race_hidden_by_a_foreign_server_answering_the_probe_is_retried(
    port_of_a_foreign_healthy_server: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CI once lost a run this way: the controller-manager died of "address already in use" while the process
    holding its port answered /healthz, and the plane timed out 90 s later waiting for the default
    ServiceAccount that only the dead controller-manager would create."""
    taken = port_of_a_foreign_healthy_server
    picks = iter([0, 0, 0, taken])  # etcd, etcd-peer, apiserver: fresh; the controller-manager: taken
    monkeypatch.setattr(cp_module, "free_port", lambda: next(picks, None) or free_port())
    with ControlPlane(workdir=tmp_path / "plane", start_timeout=30) as cp:
        assert cp.kubectl("get", "serviceaccount", "default", "-o", "name").stdout.strip() == "serviceaccount/default"
        kcm_log = (cp.log_dir / "kube-controller-manager.log").read_text()
        assert f"127.0.0.1:{taken}" in kcm_log and "address already in use" in kcm_log
        assert sum(line.startswith("$ ") for line in kcm_log.splitlines()) == 2  # the dead start, the retry


def test_a_component_that_dies_is_named_with_its_log_and_logs_are_kept(tmp_path: Path) -> None:
    real = ensure_binaries()
    broken = dataclasses.replace(real, etcd=Path("/bin/false"))
    cp = ControlPlane(broken, workdir=tmp_path / "plane", start_timeout=20)
    with pytest.raises(ControlPlaneError, match=r"etcd exited with 1 while waiting for etcd /health") as err:
        cp.start()
    assert "$ /bin/false --name=node0" in str(err.value)  # the tail of etcd.log, starting with its command line
    assert (tmp_path / "plane" / "logs" / "etcd.log").is_file()
    assert not [c for c in cp._components if c.exit_code() is None]
