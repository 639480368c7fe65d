"""Read a (merged) tally into the API's `Results`, the per-second timeline and the per-model table."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from modelpack.api.common import LatencySummary
from modelpack.api.loadtest import ErrorsByClass, ModelResult, Results
from modelpack.loadgen import histograms as h
from modelpack.loadgen.tally import Tally


@dataclass(frozen=True)
class TimelineBucket:
    """One timeline point: requests scheduled in [t, t + bucket) seconds after the measured start."""

    t: float
    sent: int
    ok: int
    errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


_NO_LATENCY = LatencySummary(p50=0, p90=0, p95=0, p99=0, p999=0, max=0, mean=0)


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def model_results(tally: Tally, limit: int) -> list[ModelResult]:
    """The `limit` slowest models by p99; a model with only errors ranks first (zeros: it has no latency)."""
    rows = []
    for model, entry in tally.per_model.items():
        summary = h.summarize(entry.hist)
        rows.append((summary.p99 if summary else float("inf"), model, entry, summary or _NO_LATENCY))
    rows.sort(key=lambda r: (-r[0], r[1]))
    return [
        ModelResult(model=model, requests=e.requests, errors=e.errors, latency_ms=summary)
        for _, model, e, summary in rows[:limit]
    ]


def results_from(tally: Tally, per_model_limit: int = 0) -> Results:
    duration = tally.duration_seconds
    per_model = model_results(tally, per_model_limit) if per_model_limit > 0 and tally.per_model else None
    return Results(
        requests=tally.requests,
        successes=tally.successes,
        errors=tally.errors,
        errors_by_class=ErrorsByClass(**tally.errors_by_class),
        errors_by_status=dict(sorted(tally.errors_by_status.items())),
        requested_rate=None if tally.planned_requests is None else _rate(tally.planned_requests, duration),
        achieved_rate=_rate(tally.sent, max(duration, tally.last_send_s)),
        throughput=_rate(tally.successes, duration),
        duration_seconds=round(duration, 3),
        late_sends=tally.late_sends,
        schedule_delay_p99_ms=h.percentile_ms(tally.delay, 99) if tally.delay.get_total_count() else 0.0,
        latency_ms=h.summarize(tally.latency),
        service_time_ms=h.summarize(tally.service),
        per_model=per_model,
        histogram=h.encode(tally.latency),
        service_histogram=h.encode(tally.service),
    )


def timeline_from(tally: Tally) -> list[TimelineBucket]:
    points = []
    for index, bucket in sorted(tally.buckets.items()):
        has = bucket.hist.get_total_count() > 0
        points.append(
            TimelineBucket(
                t=float(index * tally.bucket_seconds),
                sent=bucket.sent,
                ok=bucket.ok,
                errors=bucket.errors,
                p50_ms=h.percentile_ms(bucket.hist, 50) if has else None,
                p90_ms=h.percentile_ms(bucket.hist, 90) if has else None,
                p99_ms=h.percentile_ms(bucket.hist, 99) if has else None,
                max_ms=bucket.hist.get_max_value() / 1000.0 if has else None,
            )
        )
    return points
