"""The human view of an outcome: rich tables for the summary, latency percentiles, sweep steps, models, SLO."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table

from modelpack.api.common import LatencySummary
from modelpack.loadgen.outcome import LoadOutcome


def _latency_row(name: str, s: LatencySummary | None) -> list[str]:
    if s is None:
        return [name, *["-"] * 7]
    return [name, *(f"{v:.2f}" for v in (s.p50, s.p90, s.p95, s.p99, s.p999, s.max, s.mean))]


def render(outcome: LoadOutcome) -> Group:
    r = outcome.results
    parts: list[Table] = []
    summary = Table(title=f"Load test ({outcome.mode})", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    requested = "-" if r.requested_rate is None else f"{r.requested_rate:.1f}/s"
    if outcome.interrupted:
        summary.add_row("[yellow]status", "[yellow]interrupted: partial results")
    summary.add_row("measured window", f"{r.duration_seconds:.1f} s")
    summary.add_row("requests (successes / errors)", f"{r.requests} ({r.successes} / {r.errors})")
    summary.add_row("requested vs achieved rate", f"{requested} vs {r.achieved_rate:.1f}/s")
    summary.add_row("throughput (2xx)", f"{r.throughput:.1f}/s")
    summary.add_row("late sends (> 1 ms)", str(r.late_sends))
    summary.add_row("schedule delay p99", f"{r.schedule_delay_p99_ms:.2f} ms")
    if outcome.tally.dropped:
        summary.add_row("dropped at in-flight bound", str(outcome.tally.dropped))
    if r.errors:
        by_class = ", ".join(f"{k} {v}" for k, v in r.errors_by_class.model_dump().items() if v)
        summary.add_row("errors by class", by_class)
        if r.errors_by_status:
            summary.add_row("errors by status", ", ".join(f"{k}: {v}" for k, v in r.errors_by_status.items()))
    parts.append(summary)

    latency = Table(title="Latency (ms)")
    for col in ("", "p50", "p90", "p95", "p99", "p99.9", "max", "mean"):
        latency.add_column(col, justify="right" if col else "left")
    latency.add_row(*_latency_row("from schedule", r.latency_ms))
    latency.add_row(*_latency_row("service time", r.service_time_ms))
    parts.append(latency)

    sweep = outcome.sweep
    if sweep is not None:
        best = "none" if sweep.max_rate_meeting_slo is None else f"{sweep.max_rate_meeting_slo:g}/s"
        steps = Table(title=f"Sweep: highest rate meeting the SLO: {best}")
        for col in ("rate/s", "SLO", "throughput/s", "p50 ms", "p99 ms", "errors"):
            steps.add_column(col, justify="right")
        for s in sweep.steps:
            met = "[green]met" if s.slo_met else "[red]missed"
            steps.add_row(
                f"{s.rate:g}", met, f"{s.throughput:.1f}", f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.error_rate:.2%}"
            )
        parts.append(steps)

    if r.per_model and len(outcome.tally.per_model) > 1:
        models = Table(title=f"Slowest models (of {len(outcome.tally.per_model)})")
        for col in ("model", "requests", "errors", "p50 ms", "p99 ms", "max ms"):
            models.add_column(col, justify="left" if col == "model" else "right")
        for m in r.per_model:
            lat = m.latency_ms
            models.add_row(
                m.model, str(m.requests), str(m.errors), f"{lat.p50:.2f}", f"{lat.p99:.2f}", f"{lat.max:.2f}"
            )
        parts.append(models)

    verdict = outcome.slo_verdict
    if verdict is not None:
        slo = Table(title="SLO", show_header=False)
        slo.add_column("")
        if verdict.met:
            slo.add_row("[green]met")
        for v in verdict.violations:
            slo.add_row(f"[red]missed: {v}")
        parts.append(slo)
    return Group(*parts)


def print_report(outcome: LoadOutcome, console: Console | None = None) -> None:
    (console or Console()).print(render(outcome))
