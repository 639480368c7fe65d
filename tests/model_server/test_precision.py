"""Per-precision artifacts and the accuracy gate: what is built, what is recorded, what is refused, what is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model_server.config import load_config, write_config
from model_server.fleet import build_fleet, shape_for
from model_server.loaded import MODEL_OVERHEAD_BYTES, load_model
from model_server.precision import (
    DEFAULT_MAX_ABS_DIFF,
    DEFAULT_MIN_TOP1_AGREEMENT,
    Accuracy,
    AccuracyError,
    CpuFeatures,
    PrecisionError,
    Tolerance,
    check_accuracy,
    parse_cpu_flags,
    unsupported_reason,
)
from model_server.retrace import RetraceError, retrace
from modelpack.cli.main import main
from tests.model_server.conftest import TINY, StartServer
from tests.model_server.helpers import tensor_body

ICE_LAKE = CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))
SKYLAKE = CpuFeatures("x86_64", frozenset({"avx2", "avx512f"}))
SAPPHIRE_RAPIDS = CpuFeatures("x86_64", frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"}))
GRAVITON2 = CpuFeatures("aarch64", frozenset({"fp", "asimd", "asimddp"}))
GRAVITON3 = CpuFeatures("aarch64", frozenset({"fp", "asimd", "bf16", "i8mm"}))


def forward(model_dir: Path, rows: int = 3) -> torch.Tensor:
    ids = torch.arange(rows * 16).remainder(500).reshape(rows, 16)
    with torch.inference_mode():
        return load_model(model_dir.name, model_dir).module(ids, torch.ones_like(ids))


def test_cpu_flags_are_read_from_x86_and_arm64_cpuinfo() -> None:
    x86 = "processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu avx2 avx512_vnni\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n"
    assert parse_cpu_flags(x86) == {"fpu", "avx2", "avx512_vnni"}
    assert parse_cpu_flags(arm) == {"fp", "asimd", "bf16", "i8mm"}
    assert parse_cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("precision", "cpu", "supported"),
    [
        ("fp32", SKYLAKE, True),
        ("int8-dynamic", ICE_LAKE, True),
        ("int8-dynamic", SKYLAKE, False),
        ("int8-dynamic", GRAVITON2, True),
        ("bf16", ICE_LAKE, False),
        ("bf16", SAPPHIRE_RAPIDS, True),
        ("bf16", GRAVITON2, False),
        ("bf16", GRAVITON3, True),
        ("int8-dynamic", CpuFeatures("riscv64", frozenset()), False),
    ],
)
def test_which_cpus_run_which_precision(precision: str, cpu: CpuFeatures, supported: bool) -> None:
    assert (unsupported_reason(precision, cpu) is None) is supported


def test_bf16_is_refused_on_a_cpu_without_native_bf16_naming_the_flags(tmp_path: Path) -> None:
    with pytest.raises(PrecisionError, match=r"bf16 needs a CPU with native bf16 arithmetic: avx512_bf16 or amx_bf16"):
        build_fleet(tmp_path, ["m"], TINY, precision="bf16", cpu=ICE_LAKE)
    with pytest.raises(PrecisionError, match=r"bf16 \(e.g. Graviton3\)"):
        build_fleet(tmp_path, ["m"], TINY, precision="bf16", cpu=GRAVITON2)
    assert not (tmp_path / "m").exists()  # refused before any work


def test_unknown_precision_is_refused_listing_the_choices(tmp_path: Path) -> None:
    with pytest.raises(PrecisionError, match=r"precision must be one of fp32, int8-dynamic, bf16, not 'fp16'"):
        build_fleet(tmp_path, ["m"], TINY, precision="fp16")


def test_fp32_artifact_is_frozen_equal_to_the_plain_trace_and_sized_by_its_file(tmp_path: Path) -> None:
    build_fleet(tmp_path / "plain", ["m"], TINY)
    build_fleet(tmp_path / "fp32", ["m"], TINY, precision="fp32", cpu=ICE_LAKE)
    config = load_config(tmp_path / "fp32" / "m")
    assert config.precision == "fp32" and config.accuracy is not None
    assert config.accuracy.max_abs_diff < 1e-5 and config.accuracy.top1_agreement == 1.0
    assert config.accuracy.rows == 16 and config.accuracy.max_abs_diff_tolerance == Tolerance().max_abs_diff
    assert torch.allclose(forward(tmp_path / "plain" / "m"), forward(tmp_path / "fp32" / "m"), atol=1e-5)
    loaded = load_model("m", tmp_path / "fp32" / "m")
    assert list(loaded.module.parameters()) == []  # frozen: the weights are constants now
    assert loaded.size_bytes == (tmp_path / "fp32" / "m" / "model.pt").stat().st_size + MODEL_OVERHEAD_BYTES


def test_int8_artifact_is_smaller_close_to_fp32_and_records_its_difference(tmp_path: Path) -> None:
    # Linear layers dominate, so quantizing them shows in size
    shape = shape_for(layers=1, hidden=128, heads=2, seq_len=16, vocab_size=400)
    build_fleet(tmp_path / "fp32", ["m", "n"], shape, precision="fp32")
    build_fleet(tmp_path / "int8", ["m", "n"], shape, precision="int8-dynamic", cpu=ICE_LAKE)
    config = load_config(tmp_path / "int8" / "m")
    assert config.precision == "int8-dynamic" and config.accuracy is not None
    assert 0 < config.accuracy.max_abs_diff <= Tolerance().max_abs_diff
    fp32, int8 = forward(tmp_path / "fp32" / "m"), forward(tmp_path / "int8" / "m")
    assert not torch.equal(fp32, int8) and torch.allclose(fp32, int8, atol=Tolerance().max_abs_diff)
    # Each model keeps its own weights through the shared traced graph (the second model is transplanted).
    assert torch.allclose(forward(tmp_path / "fp32" / "n"), forward(tmp_path / "int8" / "n"), atol=0.1)
    assert not torch.allclose(forward(tmp_path / "int8" / "m"), forward(tmp_path / "int8" / "n"))
    sizes = {p: (tmp_path / p / "m" / "model.pt").stat().st_size for p in ("fp32", "int8")}
    assert sizes["int8"] < 0.7 * sizes["fp32"]


def test_bf16_artifact_where_supported_returns_fp32_outputs_within_tolerance(tmp_path: Path) -> None:
    """Built with the CPU declared bf16-capable: on this machine torch emulates bf16, which is slow but exact in
    meaning, so the artifact itself (casts, graph, gate) is checked here even without the hardware."""
    build_fleet(tmp_path, ["m"], TINY, precision="bf16", cpu=SAPPHIRE_RAPIDS)
    config = load_config(tmp_path / "m")
    assert config.precision == "bf16" and config.accuracy is not None and config.accuracy.max_abs_diff > 0
    module = torch.jit.load(str(tmp_path / "m" / "model.pt"))
    ids = torch.ones(2, 16, dtype=torch.int64)
    assert module(ids, ids).dtype == torch.float32


def test_server_refuses_to_load_bf16_on_a_cpu_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_fleet(tmp_path, ["m"], TINY, precision="bf16", cpu=SAPPHIRE_RAPIDS)
    monkeypatch.setattr(CpuFeatures, "detect", classmethod(lambda cls: ICE_LAKE))
    with pytest.raises(ValueError, match=r"a bf16 artifact, and bf16 needs a CPU with native bf16"):
        load_model("m", tmp_path / "m")


def test_tolerance_exceeded_refuses_the_artifact_naming_model_precision_value_and_tolerance(tmp_path: Path) -> None:
    with pytest.raises(AccuracyError) as err:
        build_fleet(
            tmp_path,
            ["ok-first", "m"],
            TINY,
            precision="int8-dynamic",
            cpu=ICE_LAKE,
            tolerance=Tolerance(max_abs_diff=1e-9),
        )
    message = str(err.value)
    assert message.startswith("model 'ok-first': the int8-dynamic artifact is outside tolerance: max absolute output")
    assert "tolerance 1e-09" in message
    measured = float(message.split("from fp32 is ")[1].split(",")[0])
    assert measured > 1e-9
    assert not (tmp_path / "ok-first" / "model.pt").exists()  # a refused artifact is never written


def test_top1_agreement_below_tolerance_is_refused() -> None:
    check_accuracy("m", "int8-dynamic", Accuracy(max_abs_diff=0.01, top1_agreement=0.9375, rows=16), Tolerance())
    with pytest.raises(AccuracyError, match=r"model 'm': the int8-dynamic .* top-1 agreement with fp32 is 0.8125, "):
        check_accuracy("m", "int8-dynamic", Accuracy(max_abs_diff=0.01, top1_agreement=0.8125, rows=16), Tolerance())
    with pytest.raises(ValueError, match="between 0 and 1"):
        Tolerance(min_top1_agreement=1.5)


def test_changing_the_precision_rebuilds_the_same_reuses_and_a_tighter_tolerance_regates(tmp_path: Path) -> None:
    assert build_fleet(tmp_path, ["m"], TINY).built == ["m"]
    assert build_fleet(tmp_path, ["m"], TINY, precision="fp32").built == ["m"]
    assert build_fleet(tmp_path, ["m"], TINY, precision="fp32").reused == ["m"]
    build_fleet(tmp_path, ["q"], TINY, precision="int8-dynamic", cpu=ICE_LAKE)
    recorded = load_config(tmp_path / "q").accuracy
    assert recorded is not None and recorded.max_abs_diff > 0
    with pytest.raises(AccuracyError):  # a tighter tolerance than the recorded result re-gates, and refuses
        build_fleet(
            tmp_path,
            ["q"],
            TINY,
            precision="int8-dynamic",
            cpu=ICE_LAKE,
            tolerance=Tolerance(max_abs_diff=recorded.max_abs_diff / 2),
        )


def test_retrace_at_a_precision_rebuilds_fleet_models_and_refuses_foreign_ones(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["m", "foreign"], TINY)
    before = forward(tmp_path / "m")
    retrace(tmp_path, "m", "x86", precision="int8-dynamic")
    config = load_config(tmp_path / "m")
    assert config.precision == "int8-dynamic" and config.accuracy is not None
    assert config.source is not None and config.source["precision"] == "int8-dynamic"
    assert torch.allclose(before, forward(tmp_path / "m"), atol=0.1)
    foreign = load_config(tmp_path / "foreign").model_copy(update={"source": None})
    write_config(tmp_path / "foreign", foreign)
    with pytest.raises(RetraceError, match=r"int8-dynamic needs the model's eager \(Python\) form"):
        retrace(tmp_path, "foreign", "x86", precision="int8-dynamic")
    retrace(tmp_path, "foreign", "x86", precision="fp32")  # any TorchScript model can be frozen
    assert load_config(tmp_path / "foreign").precision == "fp32"
    with pytest.raises(RetraceError, match="--precision is for CPU targets"):
        retrace(tmp_path, "m", "inferentia", precision="fp32")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--precision", "fp16"], "--precision fp16: precision must be one of fp32, int8-dynamic, bf16, not 'fp16'"),
        (["--max-abs-diff", "0.5"], "--max-abs-diff and --min-top1-agreement gate an optimized artifact"),
        (["--precision", "fp32", "--min-top1-agreement", "2"], "between 0 and 1, got 2.0"),
        (["--precision", "fp32", "--max-abs-diff", "-1"], "max_abs_diff tolerance must be >= 0, got -1.0"),
        (["--precision", "int8-dynamic", "--max-abs-diff", "1e-9"], "the int8-dynamic artifact is outside tolerance"),
    ],
)
def test_models_build_precision_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    flags = ["--store", str(tmp_path), "--count", "1", "--layers", "1", "--hidden", "32", "--seq-len", "8"]
    assert main(["models", "build", *flags, *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_help_states_the_default_tolerance(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["models", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_MAX_ABS_DIFF:g})" in text and f"(default {DEFAULT_MIN_TOP1_AGREEMENT:g})" in text


def test_models_build_and_trace_with_precision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    flags = ["--store", str(tmp_path), "--count", "1", "--layers", "1", "--hidden", "32", "--seq-len", "8"]
    assert main(["models", "build", *flags, "--precision", "fp32"]) == 0
    assert "built 1 models as fp32, reused 0" in capsys.readouterr().out
    trace = ["models", "trace", "--store", str(tmp_path), "--model", "model-00000", "--target", "x86"]
    assert main([*trace, "--precision", "int8-dynamic", "--max-abs-diff", "0.5"]) == 0
    assert "traced for x86 as int8-dynamic" in capsys.readouterr().out
    accuracy = json.loads((tmp_path / "model-00000" / "config.json").read_text())["accuracy"]
    assert accuracy["max_abs_diff_tolerance"] == 0.5


def test_server_shows_precision_and_accuracy_and_serves_the_artifact(tmp_path: Path, start_server: StartServer) -> None:
    build_fleet(tmp_path, ["q8"], TINY, precision="int8-dynamic", cpu=ICE_LAKE)
    build_fleet(tmp_path, ["plain"], TINY)
    server = start_server("--store", str(tmp_path), "--log-level", "warning")
    meta = server.client.get("/v2/models/q8").json()["parameters"]
    recorded = load_config(tmp_path / "q8").accuracy
    assert meta["precision"] == "int8-dynamic" and recorded is not None
    assert meta["accuracy"] == recorded.model_dump()
    assert server.client.get("/v2/models/plain").json()["parameters"]["precision"] is None
    resp = server.client.post("/v2/models/q8/infer", json=tensor_body(rows=2))
    assert resp.status_code == 200, resp.text
    served = torch.tensor(resp.json()["outputs"][0]["data"]).reshape(2, -1)
    assert served.shape == (2, 2)
    metrics = server.client.get("/metrics").text
    assert 'modelpack_models_loaded_by_precision{precision="int8-dynamic"} 1.0' in metrics
    assert server.client.post("/v2/repository/models/q8/unload").status_code == 200
    metrics = server.client.get("/metrics").text
    assert 'modelpack_models_loaded_by_precision{precision="int8-dynamic"} 0.0' in metrics
