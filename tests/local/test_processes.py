"""Process supervision with real child processes: nothing the runner starts outlives it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from modelpack.local.processes import ProcessGroup
from tests.local.procs import alive, live_group_members, pids_with, wait_gone


def _sleeper(marker: str, seconds: int = 60) -> list[str]:
    return [sys.executable, "-c", f"import time; time.sleep({seconds})  # {marker}"]


def test_stop_all_stops_children_and_their_children(tmp_path: Path) -> None:
    marker = f"mp-test-{uuid.uuid4().hex}"
    with ProcessGroup(log_dir=tmp_path) as group:
        # A shell that starts a grandchild in the background: the grandchild shares the group.
        group.start(
            "shell", ["sh", "-c", f"sleep 60 & exec {sys.executable} -c 'import time; time.sleep(60)' {marker}"]
        )
        group.start("plain", _sleeper(marker))
        deadline = time.monotonic() + 10
        while len(pids_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids_with(marker)) == 2
        shell_pgid = group.processes[0].pid
    assert wait_gone(marker) == []
    # The backgrounded `sleep 60` was in the shell's process group and must be gone too.
    assert live_group_members(shell_pgid) == []


def test_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    marker = f"mp-test-{uuid.uuid4().hex}"
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"print('up', flush=True); time.sleep(60)  # {marker}"
    )
    group = ProcessGroup(log_dir=tmp_path, grace_seconds=0.5)
    proc = group.start("stubborn", [sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while "up" not in proc.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.stop_all()
    assert proc.exit_code() == -signal.SIGKILL
    assert pids_with(marker) == []


def test_exception_inside_block_still_stops_everything(tmp_path: Path) -> None:
    marker = f"mp-test-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError, match="boom"), ProcessGroup(log_dir=tmp_path) as group:
        group.start("a", _sleeper(marker))
        group.start("b", _sleeper(marker))
        raise RuntimeError("boom")
    assert wait_gone(marker) == []


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    with ProcessGroup(log_dir=tmp_path) as group:
        proc = group.start(
            "talker", [sys.executable, "-c", "import sys\nfor i in range(50): print(f'line {i}')\nsys.exit(3)"]
        )
        proc.popen.wait(timeout=10)
    assert proc.exit_code() == 3
    tail = proc.log_tail(5).splitlines()
    assert tail == [f"line {i}" for i in range(45, 50)]
    assert (tmp_path / "talker.log").exists()


def test_children_die_when_the_runner_is_killed_hard(tmp_path: Path) -> None:
    """kill -9 of `modelpack run` cannot run clean-up code; PR_SET_PDEATHSIG still takes the servers down."""
    marker = f"mp-test-{uuid.uuid4().hex}"
    runner_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from modelpack.local.processes import ProcessGroup\n"
        f"g = ProcessGroup(log_dir=Path({str(tmp_path)!r}))\n"
        f"p = g.start('child', [sys.executable, '-c', 'import time; time.sleep(60)  # {marker}'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", runner_code], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        child = int(runner.stdout.readline())
        assert alive(child)
        runner.kill()
        runner.wait(timeout=10)
        assert wait_gone(marker) == []
    finally:
        runner.kill()
