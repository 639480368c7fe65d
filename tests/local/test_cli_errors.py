"""`modelpack run` refuses bad input with exit code 2 and a message naming the problem (no traceback)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelpack.cli.main import main
from tests.local.yamls import loadtest_doc, pack_doc, write


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "-f", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert f"modelpack run: error: {tmp_path / 'nope.yaml'}: no such file" in err


def test_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    code, err = run_cli(capsys, "-f", str(bad))
    assert code == 2
    assert f"{bad}: not valid YAML" in err


def test_invalid_field_uses_the_api_servers_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = loadtest_doc("t", "p")
    doc["spec"]["load"]["rate"] = -5
    f = write(tmp_path / "t.yaml", doc)
    code, err = run_cli(capsys, "-f", str(f))
    assert code == 2
    assert "LoadTest 't' is invalid" in err
    assert "spec.load.rate: Input should be greater than 0" in err


def test_target_pack_not_in_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "t.yaml", loadtest_doc("t", "missing-pack"))
    code, err = run_cli(capsys, "-f", str(f))
    assert code == 2
    assert "spec.target.modelPack 'missing-pack' is not in the files given" in err
    assert "--endpoint" in err


def test_pvc_store_is_refused_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "all.yaml", pack_doc("p", "pvc://claim/models", ["a"]), loadtest_doc("t", "p"))
    code, err = run_cli(capsys, "-f", str(f), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "spec.store.uri: 'pvc://claim/models' is a PersistentVolumeClaim" in err


def test_endpoint_with_nothing_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    f = write(tmp_path / "t.yaml", loadtest_doc("t", "p"))
    code, err = run_cli(capsys, "-f", str(f), "--endpoint", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"--endpoint: cannot reach http://127.0.0.1:{port}: " in err


def test_endpoint_that_is_not_a_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "t.yaml", loadtest_doc("t", "p"))
    code, err = run_cli(capsys, "-f", str(f), "--endpoint", "127.0.0.1:8080", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "--endpoint: invalid URL '127.0.0.1:8080': expected http://host:port or https://host:port" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--threads", "0", "argument --threads: must be at least 1, got 0"),
        ("--threads", "two", "argument --threads: expected a whole number, got 'two'"),
        ("--price-per-hour", "-1", "argument --price-per-hour: must be greater than 0, got -1"),
        ("--ready-timeout", "soon", "argument --ready-timeout: expected a number, got 'soon'"),
    ],
)
def test_bad_flags(flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "-f", "x.yaml", flag, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_no_file_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    assert "the following arguments are required: -f/--filename" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "1    the LoadTest failed: the SLO was missed, or most requests failed" in out
    assert "file:///./rel/path is relative to the current" in out


def test_more_servers_than_max_servers_is_refused_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    f = write(
        tmp_path / "all.yaml", pack_doc("p", store.as_uri(), ["a", "b", "c"], per_server=1), loadtest_doc("t", "p")
    )
    code, err = run_cli(capsys, "-f", str(f), "--max-servers", "2", "--out", str(tmp_path / "o"))
    assert code == 2
    assert (
        "ModelPack 'p' needs 3 servers (3 models, spec.modelsPerServer 1); this machine has memory for about 2" in err
    )
    assert "raise spec.modelsPerServer to at least 2" in err
    assert not store.exists()  # nothing was built


def test_a_fleet_too_big_for_this_machines_memory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = pack_doc("huge", (tmp_path / "store").as_uri(), ["x"], per_server=1)
    pack["spec"]["models"] = {"count": 5_000}
    f = write(tmp_path / "all.yaml", pack, loadtest_doc("t", "huge"))
    code, err = run_cli(capsys, "-f", str(f), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "ModelPack 'huge' needs 5000 servers" in err
    assert "this machine has memory for about" in err


def test_pack_scaled_to_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = pack_doc("zero", (tmp_path / "store").as_uri(), ["a"])
    pack["spec"]["replicas"] = 0
    f = write(tmp_path / "all.yaml", pack, loadtest_doc("t", "zero"))
    code, err = run_cli(capsys, "-f", str(f), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "ModelPack 'zero': spec.replicas is 0 (scaled to zero): nothing to load-test" in err


def test_top_level_help_says_what_the_tool_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Entry point" not in out
    assert "load-test" in out and "modelpack run -f" in out


@pytest.mark.parametrize(
    "argv", [["run", "-f", "pack.yaml"], ["validate", "pack.yaml"], ["loadgen"], ["serve"], ["worker"]]
)
def test_an_unknown_flag_to_a_subcommand_prints_that_subcommands_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    command = argv[0]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: modelpack {command} "), err
    assert "unrecognized arguments: --no-such-flag" in err


def test_precision_the_cpu_lacks_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 asked of a CPU without native bf16 (declared, so the test means the same on every machine): refused
    before any model is built or server started, naming spec.server.precision and the missing flags."""
    from model_server.precision import CpuFeatures

    ice_lake = CpuFeatures("x86_64", frozenset({"avx512f", "avx512_vnni"}))
    monkeypatch.setattr(CpuFeatures, "detect", classmethod(lambda cls: ice_lake))
    monkeypatch.chdir(tmp_path)
    doc = pack_doc("p", "file:///./store", ["m-1"])
    doc["spec"]["server"]["precision"] = "bf16"
    f = write(tmp_path / "all.yaml", doc, loadtest_doc("t", "p"))
    code, err = run_cli(capsys, "-f", str(f), "--layers", "1", "--hidden", "32")
    assert code == 2
    assert "spec.server.precision bf16: cannot build bf16 artifacts on this machine: bf16 needs a CPU" in " ".join(
        err.split()
    )
    assert not (tmp_path / "store" / "m-1" / "model.pt").exists()
