"""The HTML report: self-contained, shows what the data says, renders in a real browser."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml

from modelpack.api.common import LatencySummary
from modelpack.api.loading import parse_object
from modelpack.api.loadtest import LoadTest, LoadTestStatus, ModelResult, Results, SloVerdict
from modelpack.loadgen import histograms as h
from modelpack.local.output import write_results
from modelpack.report import ReportData, ServerInfo, render_html
from modelpack.report.counters import server_rows
from modelpack.report.rebuild import RebuildError, rebuild
from tests.report.chromium import assert_real_page, screenshot


def _loadtest(slo: dict[str, float] | None) -> LoadTest:
    spec = {"target": {"modelPack": "demo", "spread": "zipf"}, "load": {"rate": 50, "duration": "30s"}}
    if slo:
        spec["slo"] = slo
    doc = {"apiVersion": "modelpack.dev/v1alpha1", "kind": "LoadTest", "metadata": {"name": "lt"}, "spec": spec}
    obj = parse_object(doc)
    assert isinstance(obj, LoadTest)
    return obj


def _data(verdict: SloVerdict | None, slo: dict[str, float] | None = None) -> ReportData:
    rng = random.Random(7)
    hist = h.new_histogram()
    for _ in range(2000):
        h.record_us(hist, rng.lognormvariate(-4.5, 0.6))
    summary = h.summarize(hist)
    assert summary is not None
    per_model = [
        ModelResult(
            model=f"bert-{i:03d}",
            requests=100 - i,
            errors=i % 3,
            latency_ms=LatencySummary(
                p50=5 + i, p90=8 + i, p95=9 + i, p99=20 + 3 * i, p999=30 + i, max=40 + i, mean=6 + i
            ),
        )
        for i in range(12)
    ]
    results = Results(
        requests=2000,
        successes=1990,
        errors=10,
        requested_rate=50,
        achieved_rate=50,
        throughput=49.75,
        duration_seconds=40,
        latency_ms=summary,
        service_time_ms=summary,
        per_model=per_model,
        histogram=h.encode(hist),
    )
    status = LoadTestStatus(phase="Succeeded", results=results, slo=verdict, slo_verdict="None")
    timeline = [
        {
            "t": float(t),
            "sent": 50,
            "ok": 49,
            "errors": 1,
            "p50_ms": 10.0 + t % 3,
            "p90_ms": 20.0,
            "p99_ms": 40.0,
            "max_ms": 90.0,
        }
        for t in range(40)
    ]
    servers = [
        ServerInfo(
            name=f"demo-s{i:04d}",
            url=f"http://127.0.0.1:{8080 + i}",
            models=[f"bert-{j:03d}" for j in range(16 * i, 16 * i + 16)],
            threads=1,
            metrics_start={'modelpack_model_cache_total{result="hit"}': 100.0},
            metrics_end={
                'modelpack_model_cache_total{result="hit"}': 600.0 + i,
                'modelpack_model_cache_total{result="miss"}': 16.0,
                'modelpack_model_loads_total{result="ok"}': 16.0,
                "modelpack_batch_size_count": 400.0,
                "modelpack_batch_size_sum": 500.0,
            },
        )
        for i in range(4)
    ]
    return ReportData(
        loadtest=_loadtest(slo), status=status, timeline=timeline, servers=servers, pack_name="demo", machine="2 cores"
    )


def test_missed_slo_report_names_each_violation_and_embeds_every_chart() -> None:
    verdict = SloVerdict(met=False, violations=["p99 latency 51.2 ms > 50 ms", "error rate 0.50% > 0.10%"])
    html = render_html(_data(verdict, {"p99LatencyMs": 50, "maxErrorRate": 0.001}))
    assert "SLO missed" in html
    assert "<li>p99 latency 51.2 ms &gt; 50 ms</li>" in html and "error rate 0.50% &gt; 0.10%" in html
    assert html.count("<svg") == 6  # latency/time, throughput/time, histogram, percentiles, slowest models, servers
    assert "p99LatencyMs ≤ 50" in html
    assert "bert-011" in html  # slowest model by p99 is listed
    assert "demo-s0003" in html


def test_report_is_self_contained() -> None:
    html = render_html(_data(SloVerdict(met=True)))
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']https?://""", html)


def test_no_slo_and_no_results_still_render() -> None:
    data = _data(None)
    empty = ReportData(loadtest=data.loadtest, status=LoadTestStatus(phase="Failed"))
    html = render_html(empty)
    assert "No SLO set" in html
    assert "No results" in html
    assert "<svg" not in html


def test_server_counters_are_differences_over_the_run() -> None:
    rows = dict(server_rows(_data(None).servers[1]))
    assert rows["cache hits"] == "501"  # 601 at the end - 100 at the start
    assert rows["cache misses"] == "16"
    assert rows["mean batch size"] == "1.25"
    assert rows["evictions"] == "-"  # not exported: not shown as zero


def test_rebuild_from_a_results_directory(tmp_path: Path) -> None:
    data = _data(SloVerdict(met=True), {"p99LatencyMs": 500})
    write_results(tmp_path, data)
    original = (tmp_path / "report.html").read_text()
    (tmp_path / "report.html").unlink()
    rebuild(tmp_path)
    assert (tmp_path / "report.html").read_text() == original
    assert json.loads((tmp_path / "results.json").read_text())["results"]["requests"] == 2000
    assert yaml.safe_load((tmp_path / "objects.yaml").read_text())["kind"] == "LoadTest"


def test_rebuild_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RebuildError, match=r"results\.json: no such file"):
        rebuild(tmp_path)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(_data(SloVerdict(met=False, violations=["p99 latency 51.2 ms > 50 ms"]))))
    image = screenshot(page, tmp_path / "shot.png")
    assert_real_page(image)
    # The verdict banner is at the top and red for a missed SLO.
    pixel = image.getpixel((60, 130))
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    assert r > 180 and g < 90 and b < 90, (r, g, b)


def test_sweep_report_shows_the_capacity_and_every_step() -> None:
    from modelpack.api.loadtest import SweepResult, SweepStep

    base = _data(SloVerdict(met=True), {"p99LatencyMs": 100})
    steps = [
        SweepStep(rate=r, slo_met=r <= 30, throughput=min(r, 35), p50_ms=5 + r / 10, p99_ms=20 + r * 2, error_rate=0.0)
        for r in (10, 20, 30, 40)
    ]
    status = base.status.model_copy(update={"sweep": SweepResult(max_rate_meeting_slo=30, steps=steps)})
    html = render_html(ReportData(loadtest=base.loadtest, status=status, timeline=base.timeline))
    assert "the SLO holds up to 30 req/s" in html
    assert html.count("missed</td>") == 1  # the 40 req/s step
    assert '<section id="sweep">' in html
    assert html.count("<svg") == 6  # sweep, latency/time, throughput/time, histogram, percentiles, slowest models
