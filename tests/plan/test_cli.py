"""`modelpack plan` end to end on recorded results: the table, --json, and every refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelpack.api.base import parse_quantity
from modelpack.cli.main import main
from modelpack.serving import DEFAULT_MEMORY_OVERHEAD

FIXTURES = Path(__file__).parent / "fixtures"
MET = str(FIXTURES / "loadtest-met.yaml")
MISSED = str(FIXTURES / "loadtest-missed.yaml")
SWEEP = str(FIXTURES / "sweep.yaml")
NO_SLO = str(FIXTURES / "results-no-slo.json")
PENDING = str(FIXTURES / "loadtest-pending.yaml")


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["plan", *args]) == 2
    return capsys.readouterr().err


def test_plan_from_loadtest_with_its_modelpack(capsys: pytest.CaptureFixture[str]) -> None:
    out = plan_json(capsys, "--results", MET, "--models", "3000", "--target-rps", "5000")
    inputs = out["inputs"]
    # 800 req/s over 64/16 = 4 servers -> 200 req/s per server; compute, density and requests from the ModelPack.
    assert inputs["rpsPerServer"] == pytest.approx(200.0)
    assert inputs["compute"] == "graviton"
    assert inputs["modelsPerServer"] == 16
    assert inputs["server"] == {"cpu_millicores": 2000, "memory_bytes": 4 * 2**30, "accelerators": 0}
    assert "Met" in inputs["sloBasis"]
    best = out["options"][0]
    assert (best["instance_type"], best["nodes"], best["server_pods"]) == ("c7g.8xlarge", 13, 188)
    assert best["hourly_cost"] == pytest.approx(15.08)
    assert "unverified" not in out["prices"]["source"]


def test_table_output_names_the_cheapest_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--results", MET, "--models", "3000", "--target-rps", "5000", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "188 server pods" in out
    assert "c7g.8xlarge" in out
    assert "15.08" in out
    assert "c7g.xlarge " not in out, "--top 3 must cut the list"
    assert "unverified" not in out


def test_sweep_uses_highest_step_within_slo(capsys: pytest.CaptureFixture[str]) -> None:
    out = plan_json(
        capsys,
        "--results", SWEEP, "--measured-servers", "1", "--compute", "inferentia",
        "--models", "160", "--target-rps", "100",
    )  # fmt: skip
    assert out["inputs"]["rpsPerServer"] == pytest.approx(299.1)
    assert "300 req/s" in out["inputs"]["sloBasis"]
    assert out["inputs"]["server"]["accelerators"] == 1
    assert out["options"][0]["instance_type"] == "inf1.xlarge"


def test_sweep_with_tighter_slo_picks_a_lower_step(capsys: pytest.CaptureFixture[str]) -> None:
    out = plan_json(
        capsys,
        "--results", SWEEP, "--measured-servers", "1", "--compute", "inferentia",
        "--models", "160", "--target-rps", "100", "--slo-p99-ms", "25",
    )  # fmt: skip
    assert out["inputs"]["rpsPerServer"] == pytest.approx(199.6)


def test_results_without_verdict_accepted_with_an_slo_flag(capsys: pytest.CaptureFixture[str]) -> None:
    out = plan_json(
        capsys, "--results", NO_SLO, "--compute", "x86", "--slo-p99-ms", "50", "--models", "100", "--target-rps", "50"
    )
    # 199.8 req/s over the 2 servers listed in results.json.
    assert out["inputs"]["rpsPerServer"] == pytest.approx(99.9)
    assert {o["family"] for o in out["options"]} == {"c5", "c6i"}


def test_rps_per_server(capsys: pytest.CaptureFixture[str]) -> None:
    out = plan_json(
        capsys, "--rps-per-server", "200", "--compute", "graviton", "--models", "3000", "--target-rps", "5000"
    )
    assert out["options"][0]["hourly_cost"] == pytest.approx(15.08)
    assert out["inputs"]["results"] is None


def test_custom_price_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "region: eu-west-1\nsource: my invoice\nlastChecked: '2026-11-01'\nverified: true\n"
        "families: {c7g: graviton}\ninstances: {c7g.4xlarge: {hourly: 1.0, vcpu: 16, memoryGib: 32}}\n"
    )
    out = plan_json(capsys, "--results", MET, "--models", "3000", "--target-rps", "5000", "--prices", str(prices))
    assert [(o["instance_type"], o["nodes"], o["hourly_cost"]) for o in out["options"]] == [("c7g.4xlarge", 27, 27.0)]
    assert out["prices"]["source"] == "my invoice; eu-west-1; last checked 2026-11-01"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--results", "/nonexistent/results.json"], "--results /nonexistent/results.json: no such file"),
        (["--results", MISSED], "missed their SLO (p99 182.1 ms > 100 ms); only results that met it are used"),
        (["--results", MET, "--slo-p99-ms", "50"], "miss the SLO given (p99 71.9 ms > 50 ms)"),
        (["--results", NO_SLO, "--compute", "x86"], "the results carry no SLO verdict; give the SLO"),
        (["--results", PENDING], "LoadTest 'not-run' has no status yet"),
        (["--results", SWEEP, "--compute", "inferentia"], "cannot tell how many server pods produced"),
        (["--results", SWEEP, "--measured-servers", "1"], "--compute is required"),
        (
            ["--results", SWEEP, "--measured-servers", "1", "--compute", "inferentia", "--slo-p99-ms", "5"],
            "no sweep step met the SLO (rates tried: 100, 200, 300, 400 req/s)",
        ),
        (["--results", MET, "--compute", "x86"], "--compute x86 contradicts the measured ModelPack"),
        (["--results", MET, "--target-rps", "0"], "--target-rps must be greater than 0, got 0"),
        (["--results", MET, "--models", "0"], "--models must be at least 1, got 0"),
        (["--results", MET, "--slo-max-error-rate", "2"], "--slo-max-error-rate must be between 0 and 1, got 2"),
        (["--results", MET, "--server-cpu", "lots"], "--server-cpu: 'lots' is not a Kubernetes quantity"),
        (["--results", MET, "--accelerators-per-server", "2"], "--accelerators-per-server applies to inferentia"),
        (["--results", MET, "--family", "inf2"], "--family inf2: not graviton compute"),
        (["--results", MET, "--prices", "/nonexistent/p.yaml"], "--prices: /nonexistent/p.yaml: no such file"),
        (["--rps-per-server", "0", "--compute", "x86"], "--rps-per-server must be greater than 0, got 0"),
        (["--rps-per-server", "10", "--compute", "x86", "--slo-p99-ms", "5"], "they need --results"),
        (["--results", MET, "--top", "0"], "--top must be at least 1, got 0"),
    ],
)
def test_bad_input_is_named(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    defaults = {"--models": "3000", "--target-rps": "5000"}
    full = [*args] + [x for k, v in defaults.items() if k not in args for x in (k, v)]
    err = error_of(capsys, *full)
    assert err.startswith("modelpack plan: error: ")
    assert message in err
    assert "Traceback" not in err


def test_not_json_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"results": {"throughput": ')
    assert "not valid YAML or JSON" in error_of(capsys, "--results", str(bad), "--models", "1", "--target-rps", "1")
    bad.write_text('{"results": {"throughput": "fast"}}')
    err = error_of(capsys, "--results", str(bad), "--models", "1", "--target-rps", "1")
    assert "results are invalid" in err and "results.throughput" in err


def test_console_script_runs() -> None:
    # The real entry point, as a user runs it.
    exe = Path(sys.executable).with_name("modelpack")
    proc = subprocess.run(
        [str(exe), "plan", "--results", MET, "--models", "3000", "--target-rps", "5000", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["options"][0]["instance_type"] == "c7g.8xlarge"
    proc = subprocess.run(
        [str(exe), "plan", "--models", "3", "--target-rps", "1"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "one of the arguments --results --rps-per-server is required" in proc.stderr


LOCAL_RUN = FIXTURES / "local-run"


def test_local_run_directory(capsys: pytest.CaptureFixture[str]) -> None:
    # results.json is the bare status; objects.yaml says x86, 1 thread, 1Gi budget; servers.json lists 3 servers.
    for given in (LOCAL_RUN, LOCAL_RUN / "results.json"):
        out = plan_json(capsys, "--results", str(given), "--models", "480", "--target-rps", "1000")
        inputs = out["inputs"]
        assert inputs["rpsPerServer"] == pytest.approx(100.0)
        assert inputs["compute"] == "x86"
        assert inputs["server"] == {
            "cpu_millicores": 1000,
            "memory_bytes": 2**30 + parse_quantity(DEFAULT_MEMORY_OVERHEAD),
            "accelerators": 0,
        }
        # 480/16 = 30 servers, 1000/30 = 33.3 req/s each < 100: one replica each.
        assert out["options"][0]["server_pods"] == 30


def test_directory_without_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = error_of(capsys, "--results", str(tmp_path), "--models", "1", "--target-rps", "1")
    assert "no results.json in this directory" in err
