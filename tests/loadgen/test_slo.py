"""SLO verdicts: each broken bound is one sentence with the measured value and the bound."""

from __future__ import annotations

from modelpack.api.common import LatencySummary
from modelpack.api.loadtest import ErrorsByClass, Results, Slo
from modelpack.loadgen import evaluate_slo
from modelpack.loadgen.slo import failed_run, run_summary


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


def _failing(requests: int, **by_class: int) -> Results:
    errors = sum(by_class.values())
    return _results(requests=requests, errors=errors).model_copy(
        update={"errors_by_class": ErrorsByClass(**by_class), "throughput": (requests - errors) / 10}
    )


def test_a_run_that_mostly_failed_names_its_dominant_error_class() -> None:
    failed = failed_run(_failing(1000, dropped=900, timeout=50))
    assert failed is not None
    cls, sentence = failed
    assert cls == "dropped"
    assert sentence.startswith("95% of 1000 requests failed, mostly dropped (900): the load generator could not")
    assert failed_run(_failing(1000, http5xx=600))[0] == "http5xx"  # type: ignore[index]
    assert failed_run(_failing(1000, connect=1000))[0] == "connect"  # type: ignore[index]


def test_a_run_with_half_or_fewer_failures_is_judged_on_its_measurements() -> None:
    assert failed_run(_failing(1000, timeout=500)) is None
    assert failed_run(_failing(0)) is None  # nothing sent: the SLO (if any) says "unknown"


def test_the_summary_counts_drops_apart_from_server_errors() -> None:
    text = run_summary(_failing(1000, dropped=30, http5xx=5))
    assert "5 errors and 30 dropped sends of 1000" in text
    assert "dropped" not in run_summary(_failing(1000, http5xx=5))
