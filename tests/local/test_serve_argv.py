"""The `modelpack serve` command line built from a pack's server spec."""

from __future__ import annotations

from pathlib import Path

from modelpack.api.modelpack import Batching, ServerSpec
from modelpack.cli.main import build_parser
from modelpack.local.servers import ServeConfig, serve_argv
from modelpack.serving import MODELS_ARG_LIMIT


def _cfg(tmp_path: Path, **spec: object) -> ServeConfig:
    return ServeConfig(
        store_uri="file:///models",
        spec=ServerSpec.model_validate(spec),
        host="127.0.0.1",
        threads=1,
        inference_workers=2,
        work_dir=tmp_path,
    )


def _parsed(argv: list[str]) -> dict[str, object]:
    """Parse with the real `modelpack serve` parser: the flags must exist and take these values."""
    assert argv[1:4] == ["-m", "modelpack.cli.main", "serve"]
    return vars(build_parser(only="serve").parse_args(argv[3:]))


def test_spec_fields_become_serve_flags(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, memoryBudget="1Gi", preload=True, batching=Batching(max_batch_size=4, max_queue_delay_ms=2.5))
    args = _parsed(serve_argv("p-s0000", ["a", "b"], 9000, cfg))
    assert args["store"] == "file:///models"
    assert args["models"] == "a,b"
    assert args["port"] == "9000" and args["host"] == "127.0.0.1"
    assert args["threads"] == "1" and args["inference_workers"] == "2"
    assert args["memory_budget"] == "1Gi"
    assert args["max_batch_size"] == "4" and args["max_queue_delay_ms"] == "2.5"
    assert args["preload"] is True


def test_a_long_model_list_goes_through_a_file(tmp_path: Path) -> None:
    names = [f"model-{i:06d}" for i in range(MODELS_ARG_LIMIT // 10)]
    args = _parsed(serve_argv("big-s0000", names, 9000, _cfg(tmp_path)))
    assert args["models"] is None
    assert Path(str(args["models_file"])).read_text().split() == names
