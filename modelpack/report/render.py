"""Render a :class:`ReportData` into one self-contained HTML file (charts inline as SVG)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from modelpack.report import counters, plots
from modelpack.report.data import ReportData
from modelpack.report.summary import status_rows, verdict_line

# Counters worth a chart when the servers export them: they explain cold-start latency.
COUNTER_PATTERN = re.compile(r"(cache|loads|evictions)_total$")
MAX_COUNTERS = 5

_env = Environment(
    loader=PackageLoader("modelpack.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _chart_counters(data: ReportData) -> list[str]:
    names: set[str] = set()
    for server in data.servers:
        names |= {n for n in server.metrics_end if COUNTER_PATTERN.search(n.split("{")[0])}
    return sorted(names)[:MAX_COUNTERS]


def _spec_summary(data: ReportData) -> list[tuple[str, str]]:
    spec = data.loadtest.spec
    load = spec.load
    rows = [
        ("model pack", spec.target.model_pack),
        ("mode", load.mode),
        ("rate", f"{load.rate:g}/s" if load.rate is not None else "-"),
        ("arrival", load.arrival),
        ("duration / warm-up", f"{load.duration} / {load.warmup}"),
        (
            "spread",
            spec.target.spread + (f" (exponent {spec.target.zipf_exponent:g})" if spec.target.spread == "zipf" else ""),
        ),
        ("models targeted", spec.target.models.selection),
        ("workers", str(spec.workers)),
    ]
    if load.concurrency is not None:
        rows.insert(3, ("concurrency", str(load.concurrency)))
    if spec.slo is not None:
        bounds = spec.slo.model_dump(by_alias=True, exclude_none=True)
        rows.append(
            ("SLO", ", ".join(f"{k} ≤ {v:g}" if k != "minThroughput" else f"{k} ≥ {v:g}" for k, v in bounds.items()))
        )
    return rows


def render_html(data: ReportData) -> str:
    results = data.status.results
    hist = plots.decode_histogram(results.histogram if results else None)
    chart_counters = _chart_counters(data)
    charts: dict[str, Any] = {
        "latency_over_time": plots.latency_over_time(data.timeline),
        "throughput_over_time": plots.throughput_over_time(data.timeline),
        "latency_histogram": plots.latency_histogram(hist),
        "percentile_spectrum": plots.percentile_spectrum(hist),
        "sweep": plots.sweep_steps(
            data.status.sweep.steps if data.status.sweep else [],
            data.loadtest.spec.slo.p99_latency_ms if data.loadtest.spec.slo else None,
        ),
        "slowest_models": plots.slowest_models(results.per_model or []) if results else None,
        "server_counters": plots.per_server_counters({s.name: s.metrics_delta() for s in data.servers}, chart_counters),
    }
    server_names, server_rows = counters.table(list(data.servers))
    template = _env.get_template("report.html.j2")
    return template.render(
        data=data,
        status=data.status,
        results=results,
        rows=status_rows(data.status),
        spec_rows=_spec_summary(data),
        verdict=verdict_line(data.status),
        charts={k: Markup(v) if v else None for k, v in charts.items()},
        server_names=server_names,
        server_rows=server_rows,
        per_model=sorted(results.per_model or [], key=lambda m: m.latency_ms.p99, reverse=True)[:20] if results else [],
    )


def write_report(data: ReportData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path
