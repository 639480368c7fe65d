"""hack/check-disk.sh: `make test` warns, before installing, when the disk cannot hold the test venv."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "hack" / "check-disk.sh"


def _run(need_gib: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), str(need_gib)], capture_output=True, text=True, timeout=30)


def test_warns_naming_the_free_space_and_the_need_but_never_fails() -> None:
    proc = _run(10**9)  # no disk is that large
    assert proc.returncode == 0
    assert "warning:" in proc.stderr and "GiB free on" in proc.stderr and "needs about 1000000000 GiB" in proc.stderr


def test_silent_when_there_is_room() -> None:
    proc = _run(0)
    assert proc.returncode == 0 and proc.stderr == ""
