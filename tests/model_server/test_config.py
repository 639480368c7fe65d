"""config.json parsing: every problem names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_server.config import ConfigError, load_config

GOOD = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [2]}],
}


def write(tmp_path: Path, doc: object) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return tmp_path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.platform == "torchscript" and config.max_batch_size == 8 and config.tokenizer is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{nope", "not readable JSON"),
        ({**GOOD, "inputs": []}, "inputs:"),
        ({**GOOD, "platform": "onnx"}, "platform:"),
        ({**GOOD, "max_batch_size": -1}, "max_batch_size:"),
        ({**GOOD, "inputs": [{"name": "x", "datatype": "FLOAT", "shape": [4]}]}, "inputs.0.datatype:"),
        ({**GOOD, "inputs": [{"name": "x", "datatype": "FP32", "shape": [0]}]}, "shape of 'x'"),
        ({**GOOD, "outputs": [GOOD["outputs"][0], GOOD["outputs"][0]]}, "duplicate names: y"),
        ({**GOOD, "tokenizer": "tokenizer.json"}, "seq_len is required"),
        ({**GOOD, "colour": "blue"}, "colour:"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, doc: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, doc))
    assert str(tmp_path / "config.json") in str(err.value)
    assert message in str(err.value)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.json: missing"):
        load_config(tmp_path)
