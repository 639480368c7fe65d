"""The binaries cache under concurrency: two test sessions (two worktrees) may ask for the same entry at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.cluster import binaries


def test_concurrent_ensure_builds_an_entry_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the lock each caller deleted the other's ``.partial`` dir mid-build and one of them failed."""
    monkeypatch.setenv("MODELPACK_BIN_CACHE", str(tmp_path))
    monkeypatch.setattr(binaries.shutil, "which", lambda _name: "/usr/bin/go")
    builds: list[str] = []

    def build(dest: Path, version: str) -> None:
        builds.append(version)
        time.sleep(0.3)  # long enough for the other thread to arrive while this one builds
        (dest / "tool").write_text("built")

    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(binaries._ensure("tool", "v1", ("tool",), build))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert builds == ["v1"]
    assert results == [tmp_path / "tool-v1"] * 2
    assert (tmp_path / "tool-v1" / "tool").read_text() == "built"
    assert not (tmp_path / "tool-v1.partial").exists()
