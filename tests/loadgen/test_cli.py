"""`modelpack loadgen`: wrong input gets a named, traceback-free error; a real run writes API-shaped JSON."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelpack.api.loadtest import Results
from modelpack.cli.main import main

from .conftest import ROOT, Server

StartServer = Callable[..., Server]


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    assert main(["loadgen", *argv]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("modelpack loadgen: error: ")
    return err


URL = ["--url", "http://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*URL, "--model", "m", "--rate", "0"], "--rate must be greater than 0, got 0"),
        ([*URL, "--model", "m", "--rate", "-5"], "--rate must be greater than 0, got -5"),
        ([*URL, "--model", "m"], "--rate is required in constant-rate mode"),
        ([*URL, "--model", "m", "--rate", "10", "--duration", "2s"], "--duration (2s) is shorter than --warmup (5s)"),
        ([*URL, "--model", "m", "--rate", "10", "--duration", "ten"], "--duration: invalid duration 'ten'"),
        (
            [*URL, "--model", "m", "--mode", "concurrency", "--rate", "5"],
            "--rate cannot be used with --mode concurrency",
        ),
        (
            [*URL, "--model", "m", "--mode", "concurrency", "--concurrency", "0"],
            "--concurrency must be at least 1, got 0",
        ),
        ([*URL, "--model", "m", "--mode", "sweep"], "--mode sweep needs an SLO to stop at"),
        ([*URL, "--model", "m", "--rate", "5", "--sweep-max", "50"], "--sweep-max is only valid with --mode sweep"),
        ([*URL, "--model", "m", "--mode", "sweep", "--stage", "1s:5"], "--stage cannot be used with --mode sweep"),
        (
            [*URL, "--model", "m", "--rate", "5", "--stage", "10s"],
            "--stage '10s': expected DURATION:RATE, e.g. 10s:100",
        ),
        (
            [*URL, "--model", "m", "--rate", "5", "--slo-max-error-rate", "2"],
            "--slo-max-error-rate must be between 0 and 1",
        ),
        ([*URL, "--model", "m", "--rate", "5", "--processes", "0"], "--processes must be at least 1, got 0"),
        (["--model", "m", "--rate", "5"], "--url is required"),
        (
            ["--url", "localhost:8080", "--model", "m", "--rate", "5"],
            "--url: invalid URL 'localhost:8080': expected http://",
        ),
        (["--url", "ftp://h", "--model", "m", "--rate", "5"], "--url: invalid URL 'ftp://h'"),
        (["--url", "http://h:99999", "--model", "m", "--rate", "5"], "the port must be a number"),
        ([*URL, "--rate", "5"], "no models: give --model NAME"),
        ([*URL, "--model", "a/b", "--rate", "5"], "--model: invalid model name 'a/b'"),
        ([*URL, "--model", "m", "--loadtest", "x.yaml", "--rate", "5"], "--rate cannot be combined with --loadtest"),
        (
            [*URL, "--model", "m", "--rate", "5", "--payload-file", "/nonexistent.json"],
            "--payload-file /nonexistent.json: no",
        ),
    ],
)
def test_bad_flags(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert message in _fails(capsys, argv)


def test_unreachable_target(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(capsys, [*URL, "--model", "m", "--rate", "5", "--duration", "1s", "--warmup", "0s"], code=1)
    assert "cannot reach http://127.0.0.1:9: " in err


def test_unknown_model(capsys: pytest.CaptureFixture[str], v2_server: StartServer) -> None:
    server = v2_server("--models", "m1")
    argv = ["--url", server.url, "--model", "m1", "--model", "zz", "--rate", "5", "--duration", "1s", "--warmup", "0s"]
    err = _fails(capsys, argv, code=1)
    assert f"model 'zz' is not served at {server.url} (GET /v2/models/zz answered 404)" in err


def test_bad_loadtest_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "lt.yaml"
    bad.write_text(
        "apiVersion: modelpack.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: x}\n"
        "spec: {target: {modelPack: p}, load: {mode: constant-rate, rate: -1}}\n"
    )
    err = _fails(capsys, [*URL, "--loadtest", str(bad)])
    assert "spec.load.rate: Input should be greater than 0" in err


def test_run_writes_results_json(v2_server: StartServer, tmp_path: Path) -> None:
    server = v2_server("--models", "m1,m2")
    out = tmp_path / "out.json"
    argv = ["loadgen", "--url", server.url, "--models-from-server", "--rate", "100", "--duration", "1s"]
    argv += ["--warmup", "0s", "--json", str(out), "--no-progress", "--slo-p99-ms", "10000"]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    results = Results.model_validate(data)
    assert results.model_dump(by_alias=True, exclude_none=True, mode="json") == data
    assert results.requests == 100 and results.histogram and results.service_histogram
    assert {m.model for m in results.per_model or []} == {"m1", "m2"}


def test_missed_slo_exits_1(v2_server: StartServer, capsys: pytest.CaptureFixture[str]) -> None:
    server = v2_server("--models", "m1", "--delay-ms", "20")
    argv = ["loadgen", "--url", server.url, "--model", "m1", "--rate", "20", "--duration", "1s", "--warmup", "0s"]
    assert main([*argv, "--no-progress", "--slo-p99-ms", "5"]) == 1
    assert "missed: p99 latency" in capsys.readouterr().out


def test_loadtest_file_and_two_processes(v2_server: StartServer, tmp_path: Path) -> None:
    server = v2_server("--models", "m1,m2,m3")
    spec = tmp_path / "lt.yaml"
    spec.write_text(
        "apiVersion: modelpack.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: x}\n"
        "spec:\n  target: {modelPack: p, spread: round-robin, models: {selection: list, names: [m1, m3]}}\n"
        "  load: {mode: constant-rate, rate: 90, duration: 1s, warmup: 0s}\n"
    )
    out = tmp_path / "outcome.json"
    cmd = [sys.executable, "-m", "modelpack.cli.main", "loadgen", "--url", server.url, "--loadtest", str(spec)]
    cmd += ["--processes", "2", "--outcome-json", str(out), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["workers"] == 2
    assert data["tally"]["requests"] == 90
    assert server.stats()["per_model"] == {"m1": 45, "m3": 45}


def test_ctrl_c_prints_partial_results(v2_server: StartServer, tmp_path: Path) -> None:
    server = v2_server("--models", "m1")
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "modelpack.cli.main", "loadgen", "--url", server.url, "--model", "m1"]
    cmd += ["--rate", "50", "--duration", "60s", "--warmup", "0s", "--json", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while server.stats()["infer"] < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted: partial results" in stdout
    results = json.loads(out.read_text())
    assert results["requests"] >= 50 and results["durationSeconds"] < 30


def test_loadtest_sample_selects_among_server_models(v2_server: StartServer, tmp_path: Path) -> None:
    server = v2_server("--models", "a,b,c,d")
    spec = tmp_path / "lt.yaml"
    spec.write_text(
        "apiVersion: modelpack.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: x}\n"
        "spec:\n  target: {modelPack: p, spread: round-robin, models: {selection: sample, sampleSize: 2, seed: 3}}\n"
        "  load: {mode: constant-rate, rate: 20, duration: 1s, warmup: 0s}\n"
    )
    argv = ["loadgen", "--url", server.url, "--models-from-server", "--loadtest", str(spec), "--no-progress"]
    assert main(argv) == 0
    counts = server.stats()["per_model"]
    assert len(counts) == 2 and sorted(counts.values()) == [10, 10]


def test_loadtest_list_must_be_served(
    v2_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = v2_server("--models", "a,b")
    spec = tmp_path / "lt.yaml"
    spec.write_text(
        "apiVersion: modelpack.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: x}\n"
        "spec:\n  target: {modelPack: p, models: {selection: list, names: [a, zz]}}\n"
        "  load: {mode: constant-rate, rate: 20, duration: 1s, warmup: 0s}\n"
    )
    err = _fails(capsys, ["--url", server.url, "--models-from-server", "--loadtest", str(spec)])
    assert "target.models.names: not served: zz" in err
