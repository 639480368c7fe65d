"""The mergeable record of a run: counters plus encoded-able HdrHistograms, never precomputed percentiles.

A :class:`Tally` is what one worker measured over one window. Tallies from many workers (or processes) add up
exactly: counters sum, histograms merge bucket by bucket, and percentiles are only read after merging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from modelpack.loadgen import histograms as h

LATE_AFTER_S = 0.001
ERROR_CLASSES = ("timeout", "connect", "http4xx", "http5xx", "other", "dropped")
MAX_TIMELINE_BUCKETS = 600


def bucket_seconds_for(duration_s: float) -> int:
    """One-second buckets, widened for long runs so the timeline never exceeds ~600 points."""
    return max(1, math.ceil(duration_s / MAX_TIMELINE_BUCKETS))


@dataclass
class ModelTally:
    requests: int = 0
    errors: int = 0
    hist: HdrHistogram = field(default_factory=lambda: h.new_histogram(h.SMALL_DIGITS))


@dataclass
class Bucket:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    hist: HdrHistogram = field(default_factory=lambda: h.new_histogram(h.SMALL_DIGITS))


@dataclass
class Tally:
    """Counters and histograms of one measured window (times in seconds, histograms in µs)."""

    bucket_seconds: int = 1
    duration_seconds: float = 0.0
    planned_requests: float | None = None
    requests: int = 0
    successes: int = 0
    errors: int = 0
    late_sends: int = 0
    dropped: int = 0
    last_send_s: float = 0.0
    errors_by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    errors_by_status: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=h.new_histogram)
    service: HdrHistogram = field(default_factory=h.new_histogram)
    delay: HdrHistogram = field(default_factory=h.new_histogram)
    buckets: dict[int, Bucket] = field(default_factory=dict)
    per_model: dict[str, ModelTally] = field(default_factory=dict)

    def _bucket(self, t_rel: float) -> Bucket:
        return self._bucket_at(max(0, int(t_rel // self.bucket_seconds)))

    def _bucket_at(self, index: int) -> Bucket:
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket()
        return bucket

    def _model(self, model: str) -> ModelTally:
        entry = self.per_model.get(model)
        if entry is None:
            entry = self.per_model[model] = ModelTally()
        return entry

    def note_send(self, t_send_rel: float) -> None:
        """When a measured request actually left, relative to the window start (for the achieved rate)."""
        if t_send_rel > self.last_send_s:
            self.last_send_s = t_send_rel

    def _sent(self, delay_s: float) -> None:
        self.requests += 1
        h.record_us(self.delay, delay_s)
        if delay_s > LATE_AFTER_S:
            self.late_sends += 1

    def record_success(self, model: str, t_rel: float, latency_s: float, service_s: float, delay_s: float) -> None:
        """A 2xx answer; ``t_rel`` is the scheduled send time relative to the measured window's start."""
        self._sent(delay_s)
        self.successes += 1
        h.record_us(self.latency, latency_s)
        h.record_us(self.service, service_s)
        bucket = self._bucket(t_rel)
        bucket.sent += 1
        bucket.ok += 1
        h.record_us(bucket.hist, latency_s)
        entry = self._model(model)
        entry.requests += 1
        h.record_us(entry.hist, latency_s)

    def record_successes(
        self,
        models: Sequence[str],
        t_rel: np.ndarray,
        latency_s: np.ndarray,
        service_s: np.ndarray,
        delay_s: np.ndarray,
    ) -> None:
        """Many 2xx answers at once (arrays in step with `models`): the same result as `record_success` for each."""
        n = len(models)
        if n == 0:
            return
        self.requests += n
        self.successes += n
        self.late_sends += int(np.count_nonzero(delay_s > LATE_AFTER_S))
        h.record_many_us(self.delay, delay_s)
        h.record_many_us(self.latency, latency_s)
        h.record_many_us(self.service, service_s)
        index = np.maximum(0, (t_rel // self.bucket_seconds).astype(np.int64))
        for b in np.unique(index).tolist():
            selected = index == b
            bucket = self._bucket_at(b)
            count = int(np.count_nonzero(selected))
            bucket.sent += count
            bucket.ok += count
            h.record_many_us(bucket.hist, latency_s[selected])
        rows: dict[str, list[int]] = {}
        for i, model in enumerate(models):
            rows.setdefault(model, []).append(i)
        for model, positions in rows.items():
            entry = self._model(model)
            entry.requests += len(positions)
            h.record_many_us(entry.hist, latency_s[positions])

    def record_failure(self, model: str, t_rel: float, delay_s: float, error_class: str, status: int | None) -> None:
        """A failed request; failures count in the error figures, not in the latency percentiles."""
        self._sent(delay_s)
        self.errors += 1
        self.errors_by_class[error_class] += 1
        if status is not None:
            key = str(status)
            self.errors_by_status[key] = self.errors_by_status.get(key, 0) + 1
        bucket = self._bucket(t_rel)
        bucket.sent += 1
        bucket.errors += 1
        entry = self._model(model)
        entry.requests += 1
        entry.errors += 1

    def record_dropped(self, count: int) -> None:
        """Sends the schedule asked for that never left because the in-flight bound was reached until the end."""
        if count <= 0:
            return
        self.requests += count
        self.errors += count
        self.dropped += count
        self.late_sends += count
        self.errors_by_class["dropped"] += count

    @property
    def sent(self) -> int:
        return self.requests - self.dropped

    def merge(self, other: Tally) -> None:
        """Add another worker's tally of the same window (exact: counters sum, histograms merge)."""
        if other.bucket_seconds != self.bucket_seconds:
            raise ValueError(
                f"cannot merge timelines with {self.bucket_seconds}s and {other.bucket_seconds}s buckets: "
                "workers must run the same spec"
            )
        self.duration_seconds = max(self.duration_seconds, other.duration_seconds)
        self.last_send_s = max(self.last_send_s, other.last_send_s)
        if self.planned_requests is None or other.planned_requests is None:
            self.planned_requests = None
        else:
            self.planned_requests += other.planned_requests
        for name in ("requests", "successes", "errors", "late_sends", "dropped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, value in other.errors_by_class.items():
            self.errors_by_class[key] = self.errors_by_class.get(key, 0) + value
        for key, value in other.errors_by_status.items():
            self.errors_by_status[key] = self.errors_by_status.get(key, 0) + value
        self.latency.add(other.latency)
        self.service.add(other.service)
        self.delay.add(other.delay)
        for index, theirs in other.buckets.items():
            mine = self.buckets.setdefault(index, Bucket())
            mine.sent += theirs.sent
            mine.ok += theirs.ok
            mine.errors += theirs.errors
            mine.hist.add(theirs.hist)
        for model, their_model in other.per_model.items():
            mine_model = self._model(model)
            mine_model.requests += their_model.requests
            mine_model.errors += their_model.errors
            mine_model.hist.add(their_model.hist)

    def to_json(self) -> dict[str, Any]:
        return {
            "bucketSeconds": self.bucket_seconds,
            "durationSeconds": self.duration_seconds,
            "plannedRequests": self.planned_requests,
            "requests": self.requests,
            "successes": self.successes,
            "errors": self.errors,
            "lateSends": self.late_sends,
            "dropped": self.dropped,
            "lastSendSeconds": self.last_send_s,
            "errorsByClass": dict(self.errors_by_class),
            "errorsByStatus": dict(self.errors_by_status),
            "histogram": h.encode(self.latency),
            "serviceHistogram": h.encode(self.service),
            "delayHistogram": h.encode(self.delay),
            "timeline": [
                {"index": i, "sent": b.sent, "ok": b.ok, "errors": b.errors, "histogram": h.encode(b.hist)}
                for i, b in sorted(self.buckets.items())
            ],
            "perModel": [
                {"model": m, "requests": e.requests, "errors": e.errors, "histogram": h.encode(e.hist)}
                for m, e in sorted(self.per_model.items())
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        try:
            tally = cls(
                bucket_seconds=int(data["bucketSeconds"]),
                duration_seconds=float(data["durationSeconds"]),
                planned_requests=None if data.get("plannedRequests") is None else float(data["plannedRequests"]),
                requests=int(data["requests"]),
                successes=int(data["successes"]),
                errors=int(data["errors"]),
                late_sends=int(data["lateSends"]),
                dropped=int(data.get("dropped", 0)),
                last_send_s=float(data.get("lastSendSeconds", 0.0)),
                errors_by_class={**dict.fromkeys(ERROR_CLASSES, 0), **data["errorsByClass"]},
                errors_by_status=dict(data["errorsByStatus"]),
                latency=h.decode(data["histogram"]),
                service=h.decode(data["serviceHistogram"]),
                delay=h.decode(data["delayHistogram"]),
            )
            for b in data["timeline"]:
                tally.buckets[int(b["index"])] = Bucket(b["sent"], b["ok"], b["errors"], h.decode(b["histogram"]))
            for m in data["perModel"]:
                tally.per_model[m["model"]] = ModelTally(m["requests"], m["errors"], h.decode(m["histogram"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a load-generator tally: {err!r}") from None
        return tally
