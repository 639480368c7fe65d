"""Generated V2 request bodies follow the model's declared inputs."""

from __future__ import annotations

import json

import pytest

from modelpack.api.loadtest import Payload
from modelpack.loadgen.errors import TargetError
from modelpack.loadgen.payloads import DEFAULT_TEXT, encode_body, generate_request


def _meta(*inputs: tuple[str, str, list[int]]) -> dict[str, object]:
    return {"name": "m", "inputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in inputs]}


def test_token_model_gets_batch_and_seq_len() -> None:
    meta = _meta(("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1]))
    req = generate_request("m", meta, Payload(batch_size=2), seq_len=16)
    ids, mask = req["inputs"]
    assert ids["shape"] == [2, 16] and len(ids["data"]) == 32
    assert all(0 <= v < 1000 for v in ids["data"]) and len(set(ids["data"])) > 1
    assert mask["data"] == [1] * 32


def test_model_taking_text_or_tokens_gets_text_only() -> None:
    meta = _meta(("text", "BYTES", [-1]), ("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1]))
    req = generate_request("m", meta, Payload(batch_size=2, text="hello"))
    assert [i["name"] for i in req["inputs"]] == ["text"]
    assert req["inputs"][0]["data"] == ["hello", "hello"]


def test_text_model_gets_the_payload_text() -> None:
    meta = _meta(("text", "BYTES", [-1]))
    assert generate_request("m", meta, Payload(batch_size=3))["inputs"][0] == {
        "name": "text",
        "shape": [3],
        "datatype": "BYTES",
        "data": [DEFAULT_TEXT] * 3,
    }
    assert generate_request("m", meta, Payload(text="hi"))["inputs"][0]["data"] == ["hi"]


def test_fixed_and_float_shapes() -> None:
    req = generate_request("m", _meta(("image", "FP32", [-1, 3, 4, 4]), ("flag", "BOOL", [2])), Payload())
    image, flag = req["inputs"]
    assert image["shape"] == [1, 3, 4, 4] and len(image["data"]) == 48
    assert all(isinstance(v, float) for v in image["data"])
    assert flag["shape"] == [2] and all(isinstance(v, bool) for v in flag["data"])
    assert json.loads(encode_body(req)) == req


def test_seq_only_vector() -> None:
    req = generate_request("m", _meta(("ids", "INT32", [-1])), Payload(), seq_len=8)
    assert req["inputs"][0]["shape"] == [8]


def test_bad_metadata_names_the_model() -> None:
    with pytest.raises(TargetError, match="model 'm': its metadata declares no inputs"):
        generate_request("m", {"name": "m"}, Payload())
    with pytest.raises(TargetError, match="model 'm': malformed input"):
        generate_request("m", {"inputs": [{"name": "x"}]}, Payload())
    with pytest.raises(TargetError, match="model 'm': input 'x': unsupported datatype 'COMPLEX'"):
        generate_request("m", _meta(("x", "COMPLEX", [1])), Payload())
