"""Scrape each server's Prometheus `/metrics`: cache hits, loads and evictions explain the latencies.

Samples are keyed by name and labels (``modelpack_model_cache_total{result="hit"}``), summed over a
``model`` label (per-model series would drown a per-server summary), histogram buckets dropped. A
server that cannot be scraped yields an empty dict: the report shows no counters rather than failing.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

INTERESTING = ("cache", "load", "evict", "hit", "miss", "batch", "queue", "request", "inference")


def parse_metrics(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()) if k != "model")
            key = f"{sample.name}{{{labels}}}" if labels else sample.name
            totals[key] = totals.get(key, 0.0) + float(sample.value)
    return totals


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    try:
        return parse_metrics(text)
    except ValueError:
        return {}


def interesting(metrics: dict[str, float]) -> dict[str, float]:
    """The counters a person reads to explain latency: caching, loading, batching, queueing."""
    return {
        name: value
        for name, value in sorted(metrics.items())
        if name.startswith("modelpack") and any(word in name for word in INTERESTING)
    }
