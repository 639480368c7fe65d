"""The summary rows of a LoadTest's status, shared by the console table and the HTML report.

Both show the same labels and the same formatting, so what a user reads in the terminal is what the
report (and `kubectl get loadtest -o yaml`) says.
"""

from __future__ import annotations

from modelpack.api.common import LatencySummary
from modelpack.api.loadtest import LoadTestStatus, Results


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def latency_rows(label: str, summary: LatencySummary | None) -> list[tuple[str, str]]:
    if summary is None:
        return []
    return [
        (f"{label} p50", _ms(summary.p50)),
        (f"{label} p90", _ms(summary.p90)),
        (f"{label} p95", _ms(summary.p95)),
        (f"{label} p99", _ms(summary.p99)),
        (f"{label} p99.9", _ms(summary.p999)),
        (f"{label} max", _ms(summary.max)),
        (f"{label} mean", _ms(summary.mean)),
    ]


def result_rows(results: Results) -> list[tuple[str, str]]:
    error_rate = results.errors / results.requests if results.requests else 0.0
    rows = [
        ("requests", f"{results.requests}"),
        ("successes", f"{results.successes}"),
        ("errors", f"{results.errors} ({error_rate:.2%})"),
    ]
    by_class = {k: v for k, v in results.errors_by_class.model_dump().items() if v}
    if by_class:
        rows.append(("errors by class", ", ".join(f"{k} {v}" for k, v in by_class.items())))
    if results.errors_by_status:
        rows.append(("errors by status", ", ".join(f"{k}: {v}" for k, v in sorted(results.errors_by_status.items()))))
    rows += [
        ("requested rate", _rate(results.requested_rate)),
        ("achieved rate", _rate(results.achieved_rate)),
        ("throughput (ok)", _rate(results.throughput)),
        ("measured window", f"{results.duration_seconds:.1f} s"),
        ("late sends (>1 ms)", f"{results.late_sends}"),
        ("schedule delay p99", _ms(results.schedule_delay_p99_ms)),
    ]
    rows += latency_rows("latency", results.latency_ms)
    rows += latency_rows("service time", results.service_time_ms)
    return rows


def status_rows(status: LoadTestStatus) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if status.results is not None:
        rows += result_rows(status.results)
    if status.sweep is not None and status.sweep.max_rate_meeting_slo is not None:
        rows.append(("max rate meeting SLO", _rate(status.sweep.max_rate_meeting_slo)))
    if status.cost is not None:
        rows.append(("hourly cost", f"{status.cost.hourly_cost:.4f} {status.cost.currency}"))
        if status.cost.cost_per_million_requests is not None:
            rows.append(
                ("cost per million requests", f"{status.cost.cost_per_million_requests:.4f} {status.cost.currency}")
            )
    return rows


def verdict_line(status: LoadTestStatus) -> str:
    """One sentence: most requests failed (why), met, missed with every violation, or no SLO set."""
    complete = next((c for c in status.conditions or [] if c.type == "Complete"), None)
    if complete is not None and complete.reason == "RequestsFailed":
        return f"Run failed: {complete.message}"
    if status.slo is None:
        return "No SLO set."
    if status.slo.met:
        return "SLO met."
    return "SLO missed: " + "; ".join(status.slo.violations)
