"""Triggers during a reconcile fold into one re-run; runs of one key never overlap; other keys are not held up."""

from __future__ import annotations

import threading

import pytest

from modelpack_operator.coalesce import Coalescer


def test_triggers_during_a_run_cause_exactly_one_more_run() -> None:
    runs = Coalescer()
    inside, release = threading.Event(), threading.Event()
    calls: list[int] = []
    active = 0
    overlap = False

    def work() -> None:
        nonlocal active, overlap
        active += 1
        overlap = overlap or active > 1
        calls.append(len(calls))
        if len(calls) == 1:
            inside.set()
            release.wait(10)
        active -= 1

    first = threading.Thread(target=runs.run, args=("pack", work))
    first.start()
    assert inside.wait(10)
    results = [runs.run("pack", work) for _ in range(5)]  # five triggers while the first run is inside
    assert results == [False] * 5
    release.set()
    first.join(10)
    assert len(calls) == 2 and not overlap
    assert runs.run("pack", work) is True and len(calls) == 3  # idle again: runs at once


def test_other_keys_run_while_one_is_busy_and_errors_release_the_key() -> None:
    runs = Coalescer()
    inside, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=runs.run, args=("a", lambda: (inside.set(), release.wait(10))))
    thread.start()
    assert inside.wait(10)
    ran = []
    assert runs.run("b", lambda: ran.append("b")) is True and ran == ["b"]
    release.set()
    thread.join(10)

    def boom() -> None:
        raise RuntimeError("reconcile bug")

    with pytest.raises(RuntimeError, match="reconcile bug"):
        runs.run("a", boom)
    assert runs.run("a", lambda: ran.append("a")) is True and ran == ["b", "a"]
