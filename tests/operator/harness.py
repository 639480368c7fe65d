"""The operator as a real process (``modelpack operator``) against the test control plane, plus API helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
MODELPACK = str(Path(sys.executable).with_name("modelpack"))

FAST_SETTINGS = {
    "MODELPACK_RECONCILE_RESYNC_SECONDS": "3",
    "MODELPACK_WORKER_START_DELAY_SECONDS": "2",
}


class OperatorProcess:
    """``modelpack operator --namespace NS`` in its own process group, logging to a file, dying with the runner."""

    def __init__(
        self,
        cp: ControlPlane,
        namespace: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        metrics_port: int = 0,
        kubeconfig: Path | None = None,
        liveness_port: int = 0,
    ) -> None:
        self.cp = cp
        self.kubeconfig = kubeconfig or cp.kubeconfig
        self.metrics_port = metrics_port
        self.liveness = f"http://127.0.0.1:{liveness_port}/healthz" if liveness_port else "off"
        self.namespace = namespace
        self.log_path = log_path
        self.env = {**FAST_SETTINGS, **(env or {})}
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        argv = [MODELPACK, "operator", "--namespace", self.namespace, "--liveness", self.liveness]
        argv += ["--metrics-port", str(self.metrics_port)]
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            die_with_parent(argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies or the OOM killer strikes mid-reconcile."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def kube_for(cp: ControlPlane) -> Kube:
    return Kube(cp.api_client(), field_manager="test")


def get_status(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get("modelpack.dev/v1alpha1", kind, namespace, name) or {}
    return obj.get("status") or {}


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def events_for(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    items = kube.list("v1", "Event", namespace)
    return [e for e in items if e["involvedObject"]["name"] == name]


def wait_until(probe: Any, what: str, timeout: float = 60.0, op: OperatorProcess | None = None) -> Any:
    """Poll ``probe`` until truthy; on timeout, fail with the operator's log tail to show why."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        if op is not None and not op.alive():
            raise AssertionError(f"operator exited while waiting for {what}:\n{op.log()[-4000:]}")
        time.sleep(0.3)
    tail = op.log()[-4000:] if op is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{tail}")
