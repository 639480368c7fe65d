"""Request bodies generated once per model from its V2 metadata (or given), JSON-encoded before the run starts.

Shape rule for ``-1`` (variable) dimensions, following Triton's metadata where a batching model lists its batch
dimension first as -1: in a shape with two or more dimensions a leading -1 becomes ``payload.batchSize``; every
other -1 becomes the sequence length (128 unless ``--seq-len``). A one-dimensional BYTES input ``[-1]`` is a batch
of strings and gets ``batchSize`` of them. INT64/INT32 inputs get token ids in [0, 1000) (inputs whose name
contains "mask" get ones), floats get standard-normal values, BOOL random booleans, BYTES the payload text.
A model declaring both BYTES and tensor inputs (a text model that also accepts token ids) gets only its BYTES
inputs: the server tokenizes, as it would for a real text client.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from modelpack.api.loadtest import Payload
from modelpack.loadgen.errors import TargetError

DEFAULT_SEQ_LEN = 128
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog while the model server counts the milliseconds."
MAX_ELEMENTS = 16_000_000
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64", "BF16"}


def concrete_shape(shape: list[int], datatype: str, batch_size: int, seq_len: int) -> list[int]:
    dims = []
    for i, d in enumerate(shape):
        if d == -1 and i == 0 and (len(shape) >= 2 or datatype == "BYTES"):
            dims.append(batch_size)
        elif d == -1:
            dims.append(seq_len)
        else:
            dims.append(int(d))
    return dims


def tensor_data(name: str, datatype: str, count: int, rng: np.random.Generator, text: str) -> list[Any]:
    if datatype == "BYTES":
        return [text] * count
    if datatype == "BOOL":
        return list(rng.integers(0, 2, count).astype(bool).tolist())
    if datatype in _INTS:
        if "mask" in name.lower():
            return [1] * count
        high = {"INT8": 128, "UINT8": 256}.get(datatype, 1000)
        return list(rng.integers(0, high, count).tolist())
    if datatype in _FLOATS:
        return list(np.round(rng.standard_normal(count), 4).tolist())
    raise ValueError(f"unsupported datatype {datatype!r}")


def generate_request(
    model: str, metadata: dict[str, Any], payload: Payload, seq_len: int = DEFAULT_SEQ_LEN, seed: int = 0
) -> dict[str, Any]:
    """A V2 inference request for the inputs the model declares."""
    inputs = metadata.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise TargetError(f"model {model!r}: its metadata declares no inputs, so no request can be generated")
    rng = np.random.default_rng(seed)
    text = payload.text or DEFAULT_TEXT
    # A model that declares a BYTES input takes text and tokenizes it itself; its tensor inputs are the
    # alternative for clients that tokenize, and servers refuse both at once. Send what a text client sends.
    text_inputs = [s for s in inputs if isinstance(s, dict) and s.get("datatype") == "BYTES"]
    if text_inputs and len(text_inputs) < len(inputs):
        inputs = text_inputs
    request_inputs = []
    for spec in inputs:
        try:
            name, datatype, shape = str(spec["name"]), str(spec["datatype"]), [int(d) for d in spec["shape"]]
        except (KeyError, TypeError, ValueError):
            raise TargetError(f"model {model!r}: malformed input in metadata: {spec!r}") from None
        dims = concrete_shape(shape, datatype, payload.batch_size, seq_len)
        count = math.prod(dims)
        if count > MAX_ELEMENTS:
            raise TargetError(f"model {model!r}: input {name!r} would hold {count} elements; lower --seq-len")
        try:
            data = tensor_data(name, datatype, count, rng, text)
        except ValueError as err:
            raise TargetError(f"model {model!r}: input {name!r}: {err}") from None
        request_inputs.append({"name": name, "shape": dims, "datatype": datatype, "data": data})
    return {"inputs": request_inputs}


def encode_body(request: dict[str, Any]) -> bytes:
    return json.dumps(request, separators=(",", ":")).encode()
