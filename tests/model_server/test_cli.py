"""`modelpack serve` and `modelpack models` input checking: every error names the flag or env var at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpack.cli.main import main
from modelpack.serving import STORE_UNAVAILABLE_EXIT


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_modelpack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MODELPACK_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--store is required"),
        (["--store", "pvc://claim/x"], "unsupported scheme 'pvc'"),
        (["--store", "s3://"], "has no bucket"),
        (["--store", "{fleet}", "--port", "99999"], "--port: '99999' is not a valid value"),
        (
            ["--store", "{fleet}", "--precision", "fp16"],
            "--precision: 'fp16' is not a valid value (fp32 or int8-dynamic",
        ),
        (["--store", "{fleet}", "--threads", "0"], "--threads: '0'"),
        (["--store", "{fleet}", "--max-pending-loads", "0"], "--max-pending-loads: '0'"),
        (["--store", "{fleet}", "--memory-budget", "lots"], "--memory-budget: 'lots' is not a valid value (a quantity"),
        (["--store", "{fleet}", "--max-queue-delay-ms", "-1"], "--max-queue-delay-ms: '-1'"),
        (
            ["--store", "{fleet}", "--load-retry-base-s", "-1"],
            "--load-retry-base-s: '-1' is not a valid value (seconds",
        ),
        (["--store", "{fleet}", "--load-retry-max-s", "inf"], "--load-retry-max-s: 'inf' is not a valid value"),
        (["--store", "{fleet}", "--load-retry-max-s", "nan"], "--load-retry-max-s: 'nan' is not a valid value"),
        (
            ["--store", "{fleet}", "--load-retry-base-s", "90"],
            "--load-retry-max-s (60) must be at least --load-retry-base-s (90)",
        ),
        (["--store", "{fleet}", "--models", " , "], "--models: no model names"),
        (["--store", "{fleet}", "--models-file", "/nonexistent.txt"], "--models-file: cannot read /nonexistent.txt"),
    ],
)
def test_serve_rejects_bad_flags(
    capsys: pytest.CaptureFixture[str], fleet: Path, argv: list[str], message: str
) -> None:
    code, err = run_cli(capsys, "serve", *(a.replace("{fleet}", str(fleet)) for a in argv))
    assert code == 2
    assert err.startswith("modelpack serve: error:")
    assert message in err


def test_serve_exits_with_the_store_status_when_the_store_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "serve", "--store", "/nonexistent/store")
    assert code == STORE_UNAVAILABLE_EXIT
    assert err.strip() == "modelpack serve: error: store unavailable: store /nonexistent/store is not a directory"


def test_serve_names_bad_env_var(
    capsys: pytest.CaptureFixture[str], fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPACK_MAX_BATCH_SIZE", "many")
    code, err = run_cli(capsys, "serve", "--store", str(fleet))
    assert code == 2 and "MODELPACK_MAX_BATCH_SIZE: 'many'" in err
    monkeypatch.setenv("MODELPACK_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("MODELPACK_PRELOAD", "perhaps")
    code, err = run_cli(capsys, "serve", "--store", str(fleet))
    assert code == 2 and "MODELPACK_PRELOAD: 'perhaps'" in err
    monkeypatch.delenv("MODELPACK_PRELOAD")
    monkeypatch.setenv("MODELPACK_LOAD_RETRY_MAX_S", "0.5")
    code, err = run_cli(capsys, "serve", "--store", str(fleet))
    assert code == 2 and "MODELPACK_LOAD_RETRY_MAX_S (0.5) must be at least --load-retry-base-s (1)" in err


def test_settings_from_flags_and_env(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_server.command import settings_from_args
    from modelpack.cli.main import build_parser

    monkeypatch.setenv("MODELPACK_MEMORY_BUDGET", "1Gi")
    monkeypatch.setenv("MODELPACK_MAX_BATCH_SIZE", "16")
    args = build_parser("serve").parse_args(["serve", "--store", str(fleet), "--max-batch-size", "4", "--preload"])
    settings = settings_from_args(args)
    assert settings.memory_budget == 1024**3
    assert settings.max_batch_size == 4  # the flag wins
    assert settings.preload is True
    assert settings.models is None
    assert settings.jit_optimize is False
    assert (settings.load_retry_base_s, settings.load_retry_max_s) == (1.0, 60.0)
    monkeypatch.setenv("MODELPACK_JIT_OPTIMIZE", "1")
    assert settings_from_args(args).jit_optimize is True
    assert settings.jit_load_every_model is False and settings.load_workers == 0  # 0: the CPUs, at least 2
    monkeypatch.setenv("MODELPACK_JIT_LOAD_EVERY_MODEL", "true")
    assert settings_from_args(args).jit_load_every_model is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "--count must be at least 1"),
        (["--count", "2", "--size", "huge"], "--size must be one of tiny, small, base"),
        (["--count", "2", "--task", "translation"], "--task must be classification or qa"),
        (["--count", "2", "--name-pattern", "model"], "--name-pattern must contain {index}"),
        (["--count", "2", "--hidden", "33"], "hidden (33) must be a multiple of heads (2)"),
        (["--count", "2", "--vocab-size", "10"], "vocab_size must be at least"),
    ],
)
def test_models_build_rejects_bad_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, err = run_cli(capsys, "models", "build", "--store", str(tmp_path / "s"), *argv)
    assert code == 2
    assert message in err


def test_models_build_then_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = tmp_path / "s"
    flags = ["--store", str(store), "--count", "2", "--layers", "1", "--hidden", "32", "--seq-len", "8"]
    assert main(["models", "build", *flags]) == 0
    assert "built 2 models, reused 0" in capsys.readouterr().out
    assert main(["models", "build", *flags]) == 0
    assert "built 0 models, reused 2" in capsys.readouterr().out
    assert main(["models", "trace", "--store", str(store), "--model", "model-00001", "--target", "graviton"]) == 0
    assert (store / "model-00001" / "model.pt").is_file()


def test_models_trace_errors(capsys: pytest.CaptureFixture[str], fleet: Path) -> None:
    code, err = run_cli(capsys, "models", "trace", "--store", str(fleet), "--model", "m-a", "--target", "tpu")
    assert code == 2 and "--target must be one of x86, graviton, inferentia" in err
    code, err = run_cli(capsys, "models", "trace", "--store", str(fleet), "--model", "zz", "--target", "x86")
    assert code == 2 and "no model 'zz'" in err
    code, err = run_cli(capsys, "models", "trace", "--store", str(fleet), "--model", "m-a", "--target", "inferentia")
    assert code == 2 and "torch-neuronx" in err
