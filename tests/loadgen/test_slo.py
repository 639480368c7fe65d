"""SLO verdicts: each broken bound is one sentence with the measured value and the bound."""

from __future__ import annotations

from modelpack.api.common import LatencySummary
from modelpack.api.loadtest import Results, Slo
from modelpack.loadgen import evaluate_slo


def _results(p99: float = 50.0, requests: int = 100, errors: int = 0, throughput: float = 100.0) -> Results:
    latency = LatencySummary(p50=10, p90=30, p95=40, p99=p99, p999=p99, max=p99, mean=12)
    return Results(
        requests=requests,
        successes=requests - errors,
        errors=errors,
        achieved_rate=100,
        throughput=throughput,
        duration_seconds=1,
        latency_ms=latency if requests > errors else None,
    )


def test_no_slo_gives_no_verdict() -> None:
    assert evaluate_slo(None, _results()) is None


def test_met() -> None:
    verdict = evaluate_slo(Slo(p99_latency_ms=100, max_error_rate=0.01, min_throughput=50), _results())
    assert verdict is not None and verdict.met and verdict.violations == []


def test_violations_are_readable() -> None:
    slo = Slo(p50_latency_ms=5, p99_latency_ms=100, max_error_rate=0.01, min_throughput=500)
    verdict = evaluate_slo(slo, _results(p99=123.44, errors=5))
    assert verdict is not None and not verdict.met
    assert verdict.violations == [
        "p50 latency 10.0 ms > 5 ms",
        "p99 latency 123.4 ms > 100 ms",
        "error rate 5.00% > 1.00%",
        "throughput 100.0 req/s < 500 req/s",
    ]


def test_no_successes_is_a_violation_not_a_pass() -> None:
    verdict = evaluate_slo(Slo(p99_latency_ms=100), _results(requests=10, errors=10))
    assert verdict is not None and not verdict.met
    assert verdict.violations == ["p99 latency unknown: no successful requests (bound 100 ms)"]
