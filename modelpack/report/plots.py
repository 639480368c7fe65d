"""The report's charts as inline SVG text: no files, no CDN, one self-contained HTML page.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg/SVG canvases, no pyplot global
state), so rendering a report never opens a window and is safe in any process.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from modelpack.api.loadtest import ModelResult, SweepStep

COLORS = {"p50": "#2b8cbe", "p90": "#7bccc4", "p99": "#f03b20", "max": "#bdbdbd", "ok": "#31a354", "err": "#de2d26"}
SENT_COLOR = "#636363"
WIDTH, HEIGHT = 9.0, 3.0


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    # Fixed ids and no date: the same data renders the same bytes (reports diff cleanly, rebuilds are exact).
    with rc_context({"svg.hashsalt": "modelpack"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in HTML.
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.S)


def _plain_log(axis: Any) -> None:
    """Log scale labelled 2, 5, 10, 20 rather than 2x10^0: people read milliseconds, not exponents."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _scale(ax: Any, which: str, values: Sequence[float]) -> None:
    """Log scale only when the values span more than a decade; a narrow range reads better linear."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    if finite and max(finite) / min(finite) > 10:
        if which == "x":
            ax.set_xscale("log")
            _plain_log(ax.xaxis)
        else:
            ax.set_yscale("log")
            _plain_log(ax.yaxis)


def _figure(height: float = HEIGHT) -> tuple[Figure, Any]:
    fig = Figure(figsize=(WIDTH, height))
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def latency_over_time(timeline: Sequence[Mapping[str, Any]]) -> str | None:
    """p50/p90/p99/max per second: shows warm-up, model loads and queueing as they happened."""
    rows = [r for r in timeline if r.get("p50_ms") is not None]
    if not rows:
        return None
    fig, ax = _figure()
    t = [float(r["t"]) for r in rows]
    seen: list[float] = []
    for key in ("max", "p99", "p90", "p50"):
        values = [float(r.get(f"{key}_ms") or math.nan) for r in rows]
        seen += values
        ax.plot(t, values, label=key, color=COLORS[key], linewidth=1.6 if key != "max" else 1.0, marker=".")
    _scale(ax, "y", seen)
    ax.set_xlabel("seconds into the measured window")
    ax.set_ylabel("latency, ms")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, frameon=False)
    return _svg(fig)


def throughput_over_time(timeline: Sequence[Mapping[str, Any]]) -> str | None:
    """Requests sent, answered and failed per second: an open loop keeps sending when the servers fall behind."""
    if not timeline:
        return None
    fig, ax = _figure()
    t = [float(r["t"]) for r in timeline]
    ax.plot(t, [float(r.get("sent", 0)) for r in timeline], label="sent/s", color=SENT_COLOR, linestyle="--")
    ax.plot(t, [float(r.get("ok", 0)) for r in timeline], label="ok/s", color=COLORS["ok"], linewidth=1.8)
    errors = [float(r.get("errors", 0)) for r in timeline]
    ax.bar(t, errors, width=0.8, label="errors/s", color=COLORS["err"], alpha=0.7)
    ax.set_xlabel("seconds into the measured window")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, frameon=False)
    return _svg(fig)


def sweep_steps(steps: Sequence[SweepStep], slo_p99_ms: float | None) -> str | None:
    """Throughput and p99 against the offered rate: where the curve bends is the pack's capacity."""
    if not steps:
        return None
    fig, ax = _figure()
    rates = [s.rate for s in steps]
    ax.plot(rates, [s.throughput for s in steps], color=COLORS["ok"], marker="o", label="ok/s")
    ax.plot(rates, rates, color=SENT_COLOR, linestyle="--", linewidth=1.0, label="offered")
    ax.set_xlabel("offered rate, requests per second")
    ax.set_ylabel("successful requests per second")
    ax.set_ylim(bottom=0)
    right = ax.twinx()
    right.plot(rates, [s.p99_ms for s in steps], color=COLORS["p99"], marker="s", label="p99 ms")
    if slo_p99_ms is not None:
        right.axhline(slo_p99_ms, color=COLORS["p99"], linestyle=":", linewidth=1.0, label="p99 SLO")
    right.set_ylabel("p99 latency, ms")
    right.set_ylim(bottom=0)
    right.spines[["top"]].set_visible(False)
    gaps = [b - a for a, b in itertools.pairwise(sorted(rates)) if b > a]
    half = (min(gaps) if gaps else max(rates[0], 1.0)) / 4
    for step in steps:
        if not step.slo_met:
            ax.axvspan(step.rate - half, step.rate + half, color=COLORS["err"], alpha=0.12, linewidth=0)
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(
        handles[0] + more[0], handles[1] + more[1], loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, frameon=False
    )
    return _svg(fig)


def decode_histogram(encoded: str | bytes | None) -> HdrHistogram | None:
    if not encoded:
        return None
    try:
        hist = HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)
    except Exception:  # a corrupt histogram must not cost the whole report
        return None
    return hist if hist.get_total_count() > 0 else None


def percentile_spectrum(hist: HdrHistogram | None) -> str | None:
    """Latency by percentile on the classic 1/(1-p) axis, so the tail is as readable as the median."""
    if hist is None:
        return None
    points = [(i.percentile_level_iterated_to, i.value_iterated_to) for i in hist.get_percentile_iterator(5)]
    xs = [1.0 / max(1e-6, 1.0 - p / 100.0) for p, _ in points if p < 100.0]
    ys = [v / 1000.0 for p, v in points if p < 100.0]
    if not xs:
        return None
    fig, ax = _figure()
    ax.plot(xs, ys, color=COLORS["p99"], linewidth=1.8)
    ax.set_xscale("log")
    ticks = [2, 10, 100, 1000, 10000]
    ticks = [x for x in ticks if x <= max(xs) * 1.01] or [1]
    ax.set_xticks(ticks)
    ax.set_xticklabels([_percentile_label(x) for x in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency, ms")
    return _svg(fig)


def _percentile_label(x: float) -> str:
    p = 100.0 * (1.0 - 1.0 / x)
    return f"{p:g}%"


def latency_histogram(hist: HdrHistogram | None) -> str | None:
    """How requests spread over latency, log-spaced bins, with the median and p99 marked."""
    if hist is None:
        return None
    values = []
    counts = []
    for item in hist.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)
        counts.append(item.count_added_in_this_iter_step)
    if not values:
        return None
    lo, hi = max(min(values), 1e-3), max(values)
    wide = hi / lo > 10
    if hi <= lo:
        bins = np.array([lo * 0.9, hi * 1.1])
    else:
        bins = np.geomspace(lo, hi * 1.0001, 50) if wide else np.linspace(lo, hi * 1.0001, 40)
    fig, ax = _figure()
    ax.hist(values, bins=bins, weights=counts, color=COLORS["p50"], alpha=0.85)
    _scale(ax, "x", [lo, hi])
    for pct, key in ((50, "p50"), (99, "p99")):
        v = hist.get_value_at_percentile(pct) / 1000.0
        ax.axvline(v, color=COLORS[key], linestyle="--", linewidth=1.2)
        ax.annotate(f"{key} {v:.1f} ms", (v, 1.0), xycoords=("data", "axes fraction"), ha="left", va="top")
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("requests")
    return _svg(fig)


def slowest_models(per_model: Sequence[ModelResult], top: int = 15) -> str | None:
    """p50 and p99 of the slowest models: a model that is always cold or always queued stands out."""
    rows = sorted(per_model, key=lambda m: m.latency_ms.p99, reverse=True)[:top]
    if not rows:
        return None
    fig, ax = _figure(height=max(2.2, 0.28 * len(rows) + 0.8))
    names = [m.model for m in rows][::-1]
    y = np.arange(len(names))
    ax.barh(y, [m.latency_ms.p99 for m in rows][::-1], color=COLORS["p99"], alpha=0.8, label="p99")
    ax.barh(y, [m.latency_ms.p50 for m in rows][::-1], color=COLORS["p50"], label="p50")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("latency, ms")
    ax.legend(loc="lower right", frameon=False)
    return _svg(fig)


def per_server_counters(servers: Mapping[str, Mapping[str, float]], names: Sequence[str]) -> str | None:
    """Grouped bars of chosen counters per server (cache hits, misses, loads, evictions)."""
    names = [n for n in names if any(n in m for m in servers.values())]
    if not servers or not names:
        return None
    fig, ax = _figure()
    x = np.arange(len(servers))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [float(m.get(name, 0.0)) for m in servers.values()]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width=width, label=_short(name))
    ax.set_xticks(x)
    ax.set_xticklabels(list(servers), fontsize=8)
    ax.set_ylabel("count")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(names), frameon=False, fontsize=8)
    return _svg(fig)


def _short(metric: str) -> str:
    """``modelpack_model_cache_total{result="hit"}`` -> ``cache hit``: legend text, not PromQL."""
    base, _, labels = metric.partition("{")
    base = base.removeprefix("modelpack_").removeprefix("model_").removesuffix("_total").replace("_", " ")
    values = [part.split("=", 1)[1].strip('"') for part in labels.rstrip("}").split(",") if "=" in part]
    return " ".join([base, *values])
