"""Prometheus metrics of the operator itself: how many reconciles, how long they take, how many fail.

Served by ``modelpack operator --metrics-port`` (the chart's metrics Service and optional ServiceMonitor
scrape it). Model servers export their own metrics; these say whether the control loop keeps up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter("modelpack_operator_reconciles_total", "Reconciles run", ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "modelpack_operator_reconcile_seconds",
    "Wall time of one reconcile, API calls included",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Count and time one reconcile of ``kind``; an exception counts as an error and propagates."""
    start = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)


def serve(port: int) -> None:
    start_http_server(port)
