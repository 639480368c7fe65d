"""Judge results against an SLO; each broken bound becomes one readable sentence with the measured value."""

from __future__ import annotations

from modelpack.api.loadtest import Results, Slo, SloVerdict

MOSTLY_FAILED = 0.5
"""A run in which more than this share of requests failed measured the failures, not the servers: it ends Failed
whether or not an SLO is set."""

_CAUSES = {
    "dropped": "the load generator could not send on schedule (add workers or raise load.maxInFlight)",
    "timeout": "no answer within load.timeout",
    "connect": "the servers could not be reached (connection refused or reset, or DNS)",
    "http5xx": "the servers answered 5xx (503: their queues were full)",
    "http4xx": "the servers answered 4xx (an unknown model or a bad request)",
    "other": "the exchange failed (closed connections or malformed answers)",
}


def failed_run(results: Results) -> tuple[str, str] | None:
    """``(dominant error class, sentence)`` when most requests failed; None when the run measured the servers."""
    if results.requests == 0 or results.errors / results.requests <= MOSTLY_FAILED:
        return None
    by_class = results.errors_by_class.model_dump()
    dominant = max(_CAUSES, key=lambda k: by_class.get(k, 0))
    return dominant, (
        f"{results.errors / results.requests:.0%} of {results.requests} requests failed, "
        f"mostly {dominant} ({by_class[dominant]}): {_CAUSES[dominant]}"
    )


def run_summary(results: Results) -> str:
    """One line for a Complete condition or a terminal: throughput, server errors and drops apart, latency."""
    dropped = results.errors_by_class.dropped
    latency = results.latency_ms
    return (
        f"{results.throughput:.1f} successful req/s, {results.errors - dropped} errors"
        + (f" and {dropped} dropped sends" if dropped else "")
        + f" of {results.requests}"
        + (f", p50 {latency.p50:.1f} ms, p99 {latency.p99:.1f} ms" if latency else "")
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


def evaluate_slo(slo: Slo | None, results: Results) -> SloVerdict | None:
    """None without an SLO; otherwise met only if every bound that is set holds."""
    if slo is None:
        return None
    violations: list[str] = []
    latency = results.latency_ms
    for label, bound, attr in (
        ("p50", slo.p50_latency_ms, "p50"),
        ("p90", slo.p90_latency_ms, "p90"),
        ("p99", slo.p99_latency_ms, "p99"),
    ):
        if bound is None:
            continue
        if latency is None:
            violations.append(f"{label} latency unknown: no successful requests (bound {_fmt(bound)} ms)")
            continue
        measured = getattr(latency, attr)
        if measured > bound:
            violations.append(f"{label} latency {measured:.1f} ms > {_fmt(bound)} ms")
    if slo.max_error_rate is not None:
        if results.requests == 0:
            violations.append("error rate unknown: no requests were sent")
        else:
            rate = results.errors / results.requests
            if rate > slo.max_error_rate:
                violations.append(f"error rate {rate:.2%} > {slo.max_error_rate:.2%}")
    if slo.min_throughput is not None and results.throughput < slo.min_throughput:
        violations.append(f"throughput {results.throughput:.1f} req/s < {_fmt(slo.min_throughput)} req/s")
    return SloVerdict(met=not violations, violations=violations)
