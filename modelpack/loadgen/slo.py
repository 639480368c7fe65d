"""Judge results against an SLO; each broken bound becomes one readable sentence with the measured value."""

from __future__ import annotations

from modelpack.api.loadtest import Results, Slo, SloVerdict


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
