"""HdrHistogram helpers: one shape for every latency histogram so encoded histograms always merge exactly.

Values are microseconds from 1 µs to 60 s. Full histograms keep 3 significant digits (0.1 %); the many small
ones (one per model, one per timeline second) keep 2 (1 %) so thousands of them fit in memory (~20 KB each
instead of ~140 KB).
"""

from __future__ import annotations

import numpy as np
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


def record_many_us(hist: HdrHistogram, seconds: np.ndarray) -> None:
    """Record many durations at once: the same buckets, count, min and max as `record_us` one value at a time.

    The bucket arithmetic is HdrHistogram's ``_counts_index_for`` (bit length of ``value | sub_bucket_mask``, from
    the float exponent, exact below 2**53), applied to the whole array, and the counts are added in place.
    """
    if len(seconds) == 0:
        return
    values = np.clip((np.asarray(seconds, dtype=np.float64) * 1_000_000).astype(np.int64), LOWEST_US, HIGHEST_US)
    bit_length = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub_bucket - hist.sub_bucket_half_count
    slots, counts = np.unique(index, return_counts=True)
    live = np.ctypeslib.as_array(hist.counts)
    live[slots] += counts.astype(live.dtype)
    hist.total_count += len(values)
    hist.min_value = min(hist.min_value, int(values.min()))
    hist.max_value = max(hist.max_value, int(values.max()))


def encode(hist: HdrHistogram) -> str:
    return str(hist.encode().decode("ascii"))


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merged(parts: list[HdrHistogram], digits: int = DIGITS) -> HdrHistogram:
    total = new_histogram(digits)
    for part in parts:
        total.add(part)
    return total


def percentile_ms(hist: HdrHistogram, percentile: float) -> float:
    return float(hist.get_value_at_percentile(percentile)) / 1000.0


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
