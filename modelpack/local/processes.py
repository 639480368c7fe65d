"""Child processes of `modelpack run`: each in its own process group, logged to a file, always stopped.

Each child gets a new session so a Ctrl-C in the terminal reaches only `modelpack run`, which then
stops the children in order (SIGTERM to the whole group, SIGKILL after a grace period). On Linux a
child is also asked to die with its parent (PR_SET_PDEATHSIG), which covers `kill -9` of the runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class ManagedProcess:
    """One started child and where its output goes."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the child's output: what a user needs to see when it failed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """Every child the runner started; leaving the ``with`` block stops them all, whatever happened."""

    log_dir: Path
    grace_seconds: float = 5.0
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        proc = ManagedProcess(name=name, argv=list(argv), popen=popen, log_path=log_path)
        self.processes.append(proc)
        return proc

    def stop(self, proc: ManagedProcess) -> None:
        """Stop one child and anything it started in its group."""
        self._stop([proc])
        if proc in self.processes:
            self.processes.remove(proc)

    def stop_all(self) -> None:
        self._stop(list(self.processes))
        self.processes.clear()

    def _stop(self, procs: Sequence[ManagedProcess]) -> None:
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        # SIGKILL the group even when the leader exited: its own children may still be in the group.
        for proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=self.grace_seconds)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
