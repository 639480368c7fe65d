"""``die_with_parent``: a child started through it does not outlive a parent killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.local.procs import alive
from tests.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[1]


def _runs(pid: int, marker: str) -> bool:
    """``pid`` is the sleeper tagged ``marker``: setpriv has set pdeathsig and exec'd it, and the pid is not reused.

    The marker alone is not enough: it is in setpriv's own argv too, before setpriv has called prctl.
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return alive(pid) and argv[0] == sys.executable and any(marker in arg for arg in argv)


def _gone(pid: int, timeout: float) -> bool:
    """The child is re-parented when its parent dies, so it is polled in /proc (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_child_dies_when_its_parent_is_sigkilled() -> None:
    marker = f"mp-test-{uuid.uuid4().hex}"
    parent_code = (
        "import subprocess, sys, time\n"
        "from tests.processes import die_with_parent\n"
        f"argv = [sys.executable, '-c', 'import time; time.sleep(60)  # {marker}']\n"
        "child = subprocess.Popen(die_with_parent(argv))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while not _runs(child, marker):  # setpriv sets pdeathsig, then execs: the kill must come after that
            assert alive(child) and time.monotonic() < deadline, f"child {child} never became the sleeper"
            time.sleep(0.05)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone(child, timeout=5), f"child {child} outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if child and _runs(child, marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_off_the_main_thread_the_command_is_left_as_is() -> None:
    """pdeathsig fires when the spawning *thread* exits, which a worker thread may do while its child should run."""
    got: list[list[str]] = []
    thread = threading.Thread(target=lambda: got.append(die_with_parent(["sleep", "1"])))
    thread.start()
    thread.join()
    assert got == [["sleep", "1"]]
    assert die_with_parent(["sleep", "1"])[-2:] == ["sleep", "1"]
