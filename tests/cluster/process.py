"""One control-plane component as a child process in its own process group, logging to a file.

Own process groups let ``stop()`` take down anything a component forks, and keep a Ctrl-C aimed at
the test runner from killing components before the harness has a chance to tear down in order; and
``die_with_parent`` makes them die with the harness even if it is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.processes import die_with_parent


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it, so parallel runs don't collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Component:
    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            die_with_parent(self.argv),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exit_code(self) -> int | None:
        """None while running; the exit status once it has died."""
        return None if self.popen is None else self.popen.poll()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal(self, sig: signal.Signals) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def wait(self, deadline: float) -> bool:
        """Wait for exit until the monotonic ``deadline``; True if it exited."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_all(components: list[Component], grace: float = 5.0) -> None:
    """Stop in the order given (clients before the apiserver before etcd), SIGKILL after ``grace``.

    Order matters: an apiserver whose etcd is already gone hangs in graceful shutdown, while one
    stopped first exits in about a second.
    """
    for comp in components:
        comp.signal(signal.SIGTERM)
        if not comp.wait(time.monotonic() + grace):
            comp.signal(signal.SIGKILL)
            comp.wait(time.monotonic() + 5.0)
        if comp.popen is not None:
            # Reap stragglers left in the group even when the leader exited cleanly.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.popen.pid, signal.SIGKILL)
        comp.close()
