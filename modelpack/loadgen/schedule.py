"""When each request is due: piecewise-linear rate (open loop) and concurrency (closed loop) profiles.

Send times come from inverting the cumulative rate N(t) = ∫ r: the n-th uniform send is due when N(t) = n + phase,
so a linear ramp gets exactly the number of sends its area holds, and workers offset by phase i/W interleave
into one evenly spaced stream. Poisson arrivals use unit-mean exponential gaps in N, i.e. exact non-homogeneous
Poisson sampling.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A stretch of `duration` seconds whose value goes linearly from `start` to `end`."""

    duration: float
    start: float
    end: float


class RateProfile:
    """Requests per second over time (t = 0 is the first possible send, warm-up included)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = [s for s in segments if s.duration > 0]
        self._t0: list[float] = []
        self._n0: list[float] = []
        t = n = 0.0
        for seg in self.segments:
            self._t0.append(t)
            self._n0.append(n)
            t += seg.duration
            n += (seg.start + seg.end) / 2 * seg.duration
        self.total_seconds = t
        self.total_sends = n

    def rate_at(self, t: float) -> float:
        if not self.segments or t < 0 or t >= self.total_seconds:
            return 0.0
        i = bisect.bisect_right(self._t0, t) - 1
        seg = self.segments[i]
        return seg.start + (seg.end - seg.start) * (t - self._t0[i]) / seg.duration

    def cumulative(self, t: float) -> float:
        """Expected sends in [0, t)."""
        if t <= 0 or not self.segments:
            return 0.0
        if t >= self.total_seconds:
            return self.total_sends
        i = bisect.bisect_right(self._t0, t) - 1
        seg = self.segments[i]
        dt = t - self._t0[i]
        slope = (seg.end - seg.start) / seg.duration
        return self._n0[i] + seg.start * dt + slope * dt * dt / 2

    def time_of(self, n: float) -> float | None:
        """The time at which the cumulative count reaches `n`, or None past the end."""
        if n < 0 or n >= self.total_sends:
            return None
        i = bisect.bisect_right(self._n0, n) - 1
        while i > 0 and self._n0[i] == self._n0[i - 1]:
            i -= 1
        seg = self.segments[i]
        dn = n - self._n0[i]
        slope = (seg.end - seg.start) / seg.duration
        if abs(slope) < 1e-12:
            dt = dn / seg.start
        else:
            # Root of slope/2·dt² + start·dt - dn = 0 in the cancellation-free form.
            disc = max(seg.start * seg.start + 2 * slope * dn, 0.0)
            dt = 2 * dn / (seg.start + math.sqrt(disc)) if seg.start + math.sqrt(disc) > 0 else 0.0
        return self._t0[i] + min(dt, seg.duration)


def arrivals(profile: RateProfile, arrival: str, phase: float, seed: int) -> Iterator[float]:
    """Due times (seconds from t = 0) of one worker's sends, in order (`phase` offsets uniform sends only)."""
    if arrival == "poisson":
        rng = random.Random(seed)
        n = rng.expovariate(1.0)
        while (t := profile.time_of(n)) is not None:
            yield t
            n += rng.expovariate(1.0)
    else:
        k = 0
        while (t := profile.time_of(k + phase)) is not None:
            yield t
            k += 1


class ConcurrencyProfile:
    """Requests in flight over time for the closed loop; slot j of the global pool belongs to worker j mod W."""

    def __init__(self, segments: list[Segment], worker_index: int, workers: int) -> None:
        self.rates = RateProfile(segments)
        self.worker_index = worker_index
        self.workers = workers
        peak = max((max(s.start, s.end) for s in self.rates.segments), default=0)
        self.slots = self.local_slots(peak)

    def local_slots(self, total: float) -> int:
        """How many of the first `total` global slots this worker owns."""
        total_int = int(total)
        if total_int <= self.worker_index:
            return 0
        return (total_int - self.worker_index + self.workers - 1) // self.workers

    def active_slots(self, t: float) -> int:
        return self.local_slots(math.floor(self.rates.rate_at(t) + 1e-9))
