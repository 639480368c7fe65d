"""`modelpack run` end to end: real server processes, the real load generator, a real report."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from modelpack.local.metrics import scrape
from modelpack.local.ports import any_free_port
from modelpack.local.processes import ProcessGroup
from modelpack.local.servers import is_ready
from tests.local.conftest import FLEET
from tests.local.procs import pids_with, wait_gone
from tests.local.yamls import loadtest_doc, pack_doc, write
from tests.report.chromium import assert_real_page, screenshot

pytestmark = pytest.mark.slow

RATE = 20
PASSING_SLO = {"p99LatencyMs": 5000, "maxErrorRate": 0}


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def run_cli(
    cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelpack.cli.main", "run", *args],
        cwd=cwd,
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def _occupied_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_run_meets_slo_writes_results_and_report_and_leaves_nothing(tiny_store: Path, tmp_path: Path) -> None:
    # The pack's own port is taken: server 0 must move to another one and say so.
    with _occupied_port() as blocker:
        port = blocker.getsockname()[1]
        f = write(
            tmp_path / "all.yaml",
            pack_doc("tiny", tiny_store.as_uri(), FLEET, per_server=2, port=port),
            loadtest_doc("tiny-lt", "tiny", rate=RATE, slo=PASSING_SLO),
        )
        out = tmp_path / "out"
        done = run_cli(tmp_path, "-f", str(f), "--out", str(out), "--price-per-hour", "0.34")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"port {port} is in use: tiny-s0000 gets port" in done.stdout
    assert "tiny-s0000" in done.stdout and "tiny-s0001" in done.stdout
    assert "SLO met." in done.stdout
    assert f"report:  {out / 'report.html'}" in done.stdout
    assert wait_gone(str(tiny_store)) == []

    status = _results(out)
    assert status["phase"] == "Succeeded"
    assert status["sloVerdict"] == "Met"
    results = status["results"]
    expected = RATE * 3
    assert abs(results["requests"] - expected) <= 2, results["requests"]
    assert results["successes"] == results["requests"]
    assert results["errors"] == 0
    lat = results["latencyMs"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert results["histogram"]
    assert {m["model"] for m in results["perModel"]} <= set(FLEET)
    assert sum(m["requests"] for m in results["perModel"]) == results["requests"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True" and conditions["SLOMet"]["status"] == "True"
    cost = status["cost"]
    assert cost["hourlyCost"] == 0.34
    assert cost["costPerMillionRequests"] == pytest.approx(0.34 / (results["throughput"] * 3600) * 1e6, rel=0.01)

    servers = json.loads((out / "servers.json").read_text())
    assert [s["name"] for s in servers] == ["tiny-s0000", "tiny-s0001"]
    assert servers[0]["url"] != f"http://127.0.0.1:{port}"
    hits = sum(v for s in servers for k, v in s["metrics_end"].items() if k.startswith("modelpack_model_cache_total"))
    assert hits >= results["requests"]  # every request found its model, loaded or not
    timeline = json.loads((out / "timeline.json").read_text())
    assert sum(b["sent"] for b in timeline) == results["requests"]

    html = (out / "report.html").read_text()
    assert "SLO met" in html and "tiny-s0001" in html
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']https?://""", html), "the report must not load anything remote"
    image = screenshot(out / "report.html", tmp_path / "report.png")
    assert_real_page(image)


def test_server_that_cannot_start_is_named_with_its_log_and_nothing_is_left(tiny_store: Path, tmp_path: Path) -> None:
    pack = pack_doc("broken", tiny_store.as_uri(), FLEET, per_server=2, port=any_free_port("127.0.0.1"))
    f = write(tmp_path / "all.yaml", pack, loadtest_doc("t", "broken", rate=RATE))
    # Every spec value the API accepts, the server runs; a bad server setting from the environment still fails it.
    bad_env = {"MODELPACK_MAX_BODY_BYTES": "lots"}
    done = run_cli(tmp_path, "-f", str(f), "--out", str(tmp_path / "out"), env=bad_env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "modelpack run: error: server broken-s000" in done.stderr
    assert "exited with code 2 before it was ready" in done.stderr
    assert "'lots' is not a valid value" in done.stderr
    assert "Traceback" not in done.stderr
    assert wait_gone(str(tiny_store)) == []


def _start_run(tmp_path: Path, f: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelpack.cli.main", "run", "-f", str(f), "--out", str(out)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_served(url: str, at_least: int, timeout: float = 60) -> float:
    """Requests the server has answered, once it has answered ``at_least`` (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    served = 0.0
    while time.monotonic() < deadline:
        served = sum(v for k, v in scrape(url).items() if k.startswith("modelpack_requests_total"))
        if served >= at_least:
            break
        time.sleep(0.2)
    return served


def _read_until(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"the run ended before printing {text!r}: {proc.stderr.read() if proc.stderr else ''}")


def test_ctrl_c_during_the_load_prints_partial_results_and_stops_every_server(tiny_store: Path, tmp_path: Path) -> None:
    port = any_free_port("127.0.0.1")
    f = write(
        tmp_path / "all.yaml",
        pack_doc("tiny", tiny_store.as_uri(), FLEET, per_server=4, port=port),
        loadtest_doc("long", "tiny", rate=RATE, duration="60s", warmup="0s"),
    )
    out = tmp_path / "out"
    proc = _start_run(tmp_path, f, out)
    try:
        _read_until(proc, "running LoadTest long")
        served = _wait_served(f"http://127.0.0.1:{port}", at_least=10)
        assert served >= 10
        assert len(pids_with(str(tiny_store))) == 1
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "stopping: draining in-flight requests" in stdout
    assert "LoadTest long: Failed" in stdout  # the partial results table is printed
    status = _results(out)
    assert status["phase"] == "Failed"
    complete = next(c for c in status["conditions"] if c["type"] == "Complete")
    assert complete["reason"] == "Interrupted"
    assert 0 < status["results"]["requests"] < RATE * 60
    assert "Interrupted by the user" in (out / "report.html").read_text()
    assert wait_gone(str(tiny_store)) == []


def test_missing_models_are_built_then_sigterm_while_servers_start_stops_them(tmp_path: Path) -> None:
    store = tmp_path / "fresh-store"
    models = ["new-a", "new-b"]
    f = write(
        tmp_path / "all.yaml",
        pack_doc("fresh", "file:///./fresh-store", models, per_server=1, port=any_free_port("127.0.0.1")),
        loadtest_doc("t", "fresh", rate=RATE),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelpack.cli.main", "run", "-f", str(f), "--layers", "1", "--hidden", "32"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _read_until(proc, "starting 2 servers")
        deadline = time.monotonic() + 30
        while len(pids_with(str(store))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert wait_gone(str(store)) == []
    # The relative file:///./ store was resolved against the working directory and filled there.
    for name in models:
        assert (store / name / "model.pt").stat().st_size > 0
        config = json.loads((store / name / "config.json").read_text())
        assert config["source"]["shape"]["layers"] == 1
        assert config["precision"] == "int8-dynamic"  # spec.server.precision unset: the x86 default, gated
        assert config["accuracy"]["max_abs_diff"] <= config["accuracy"]["max_abs_diff_tolerance"]


def test_against_a_running_server_missed_slo_exits_1(tiny_store: Path, tmp_path: Path) -> None:
    """--endpoint: models come from the repository index; nothing is started or stopped; a missed SLO is exit 1."""
    port = any_free_port("127.0.0.1")
    argv = [sys.executable, "-m", "modelpack.cli.main", "serve", "--store", tiny_store.as_uri()]
    argv += ["--port", str(port), "--threads", "1", "--log-level", "warning"]
    with ProcessGroup(log_dir=tmp_path / "logs") as group:
        server = group.start("existing", argv)
        deadline = time.monotonic() + 60
        while not is_ready(f"http://127.0.0.1:{port}") and time.monotonic() < deadline:
            assert server.alive(), server.log_tail()
            time.sleep(0.2)
        doc = loadtest_doc("ext", "not-here", rate=RATE, slo={"p50LatencyMs": 0.001})
        doc["spec"]["workers"] = 2  # two worker processes, merged as the operator merges its Job's pods
        f = write(tmp_path / "lt.yaml", doc)
        out = tmp_path / "out"
        done = run_cli(tmp_path, "-f", str(f), "--endpoint", f"http://127.0.0.1:{port}/", "--out", str(out))
        assert server.alive()  # `modelpack run` stops only what it started
        wrong = loadtest_doc("ext", "not-here", rate=RATE)
        wrong["spec"]["target"]["models"] = {"selection": "list", "names": ["m-00", "no-such-model"]}
        bad = run_cli(
            tmp_path, "-f", str(write(tmp_path / "bad.yaml", wrong)), "--endpoint", f"http://127.0.0.1:{port}"
        )
        assert server.alive()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"found {len(FLEET)} models on 1 endpoint(s)" in done.stdout
    assert "2 load-generating worker processes share the rate" in done.stdout
    assert "SLO missed: p50 latency" in done.stdout
    status = _results(out)
    assert status["results"]["successes"] == status["results"]["requests"] > 0
    assert status["results"]["requests"] == pytest.approx(RATE * 3, rel=0.05)  # both workers' shares merged
    assert status["sloVerdict"] == "Missed"
    assert status["slo"]["violations"][0].startswith("p50 latency ")
    assert "SLO missed" in (out / "report.html").read_text()
    servers = json.loads((out / "servers.json").read_text())
    assert servers[0]["models"] == FLEET
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "modelpack run: error: target.models.names: not served: no-such-model" in bad.stderr
