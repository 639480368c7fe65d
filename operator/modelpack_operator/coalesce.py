"""Run at most one reconcile per object at a time, folding triggers that arrive meanwhile into one re-run.

A rollout of a 200-server pack produces hundreds of Deployment events; each would otherwise queue a full
reconcile of the pack behind the previous one. Level-triggered reconciles make the extra runs pointless:
one run that starts after the last trigger sees everything those triggers saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _State:
    running: bool = False
    dirty: bool = False


class Coalescer:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._states: dict[Hashable, _State] = {}

    def run(self, key: Hashable, fn: Callable[[], None]) -> bool:
        """Run ``fn`` now, or, if a run for ``key`` is in progress, make that run go once more and return False."""
        with self._guard:
            state = self._states.setdefault(key, _State())
            if state.running:
                state.dirty = True
                return False
            state.running = True
        try:
            while True:
                with self._guard:
                    state.dirty = False
                fn()
                with self._guard:
                    if not state.dirty:
                        return True
        finally:
            with self._guard:
                state.running = False
                self._states.pop(key, None)
