"""Give freed model memory back to the OS after evictions.

glibc keeps freed heap pages for reuse, so a server that loads and evicts models all day grows its RSS far past
its memory budget (measured in docs/perf/server.md). ``malloc_trim`` returns them; it walks the heap, so it is
called at most once per interval, from the load thread, never on the event loop. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


class Trimmer:
    def __init__(self, min_interval_s: float = 1.0) -> None:
        self._trim = _find_trim()
        self._interval = min_interval_s
        # None, not 0.0: the monotonic clock counts from boot, so "0.0 = long ago" would refuse every trim
        # on a machine up for less than one interval.
        self._last: float | None = None
        self._due = False
        self._lock = threading.Lock()

    def note_free(self) -> None:
        """Called when models are evicted (any thread)."""
        self._due = True

    def maybe_trim(self) -> bool:
        """Trim if memory was freed since the last trim and the interval has passed; True if it trimmed."""
        if self._trim is None or not self._due:
            return False
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last < self._interval:
                return False
            self._due, self._last = False, now
        self._trim(0)
        return True
