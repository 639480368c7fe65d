"""HdrHistogram helpers: one shape for every latency histogram so encoded histograms always merge exactly.

Values are microseconds from 1 µs to 60 s. Full histograms keep 3 significant digits (0.1 %); the many small
ones (one per model, one per timeline second) keep 2 (1 %) so thousands of them fit in memory (~20 KB each
instead of ~140 KB).
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from modelpack.api.common import LatencySummary

LOWEST_US = 1
HIGHEST_US = 60_000_000
DIGITS = 3
SMALL_DIGITS = 2


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def record_us(hist: HdrHistogram, seconds: float) -> None:
    """Record a duration, clamped into the trackable range (a 70 s stall is kept as 60 s, not dropped)."""
    hist.record_value(min(max(int(seconds * 1_000_000), LOWEST_US), HIGHEST_US))


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merged(parts: list[HdrHistogram], digits: int = DIGITS) -> HdrHistogram:
    total = new_histogram(digits)
    for part in parts:
        total.add(part)
    return total


def percentile_ms(hist: HdrHistogram, percentile: float) -> float:
    return hist.get_value_at_percentile(percentile) / 1000.0


def summarize(hist: HdrHistogram) -> LatencySummary | None:
    """Percentiles read from one histogram; None when nothing was recorded (no fake zeros)."""
    if hist.get_total_count() == 0:
        return None
    values = hist.get_percentile_to_value_dict([50, 90, 95, 99, 99.9])
    return LatencySummary(
        p50=values[50] / 1000.0,
        p90=values[90] / 1000.0,
        p95=values[95] / 1000.0,
        p99=values[99] / 1000.0,
        p999=values[99.9] / 1000.0,
        max=hist.get_max_value() / 1000.0,
        mean=round(hist.get_mean_value() / 1000.0, 3),
    )


def same_counts(a: HdrHistogram, b: HdrHistogram) -> bool:
    """Whether two histograms hold exactly the same recorded values (bucket by bucket)."""
    if a.get_total_count() != b.get_total_count():
        return False
    return [(v.value_iterated_to, v.count_at_value_iterated_to) for v in a.get_recorded_iterator()] == [
        (v.value_iterated_to, v.count_at_value_iterated_to) for v in b.get_recorded_iterator()
    ]
