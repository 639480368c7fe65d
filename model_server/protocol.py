"""Open Inference Protocol V2 request decoding and response encoding, checked against a model's config.

Decoding is hand-written over ``orjson.loads`` rather than a pydantic model per request: it is the hot path,
and every error must name the input it is about (V2 clients get ``{"error": "..."}`` with status 400).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from model_server.config import ModelConfig, TensorSpec
from model_server.datatypes import NUMPY_DTYPES


class BadRequestError(ValueError):
    """The request does not match the protocol or the model's inputs; status 400."""


@dataclass
class InferRequest:
    id: str | None
    inputs: list[np.ndarray] | None  # in config order; None when the request carries text
    texts: list[str] | None
    requested_outputs: list[str] | None


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequestError(f"request body is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise BadRequestError("request body must be a JSON object")
    return doc


def decode_infer(doc: dict[str, Any], config: ModelConfig) -> InferRequest:
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("'id' must be a string")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors")
    tensors: dict[str, dict[str, Any]] = {}
    for i, tensor in enumerate(raw_inputs):
        if not isinstance(tensor, dict):
            raise BadRequestError(f"inputs[{i}] must be an object with name, datatype, shape and data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequestError(f"inputs[{i}].name must be a string")
        if name in tensors:
            raise BadRequestError(f"input '{name}' is given twice")
        tensors[name] = tensor
    requested = _requested_outputs(doc, config)
    if config.tokenizer is not None and config.text_input in tensors:
        if len(tensors) > 1:
            extra = sorted(set(tensors) - {config.text_input})
            raise BadRequestError(
                f"give either '{config.text_input}' or the tensor inputs, not both (also got {extra})"
            )
        texts = _decode_text(tensors[config.text_input], config)
        return InferRequest(request_id, None, texts, requested)
    expected = {spec.name: spec for spec in config.inputs}
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        accepted = sorted(expected) + ([config.text_input] if config.tokenizer else [])
        raise BadRequestError(f"unknown input '{unknown[0]}' (the model takes {', '.join(accepted)})")
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise BadRequestError(f"missing input '{missing[0]}'")
    arrays = [_decode_tensor(tensors[spec.name], spec, config) for spec in config.inputs]
    if config.max_batch_size > 0:
        rows = {int(a.shape[0]) for a in arrays}
        if len(rows) > 1:
            raise BadRequestError(f"inputs disagree on the batch dimension: {sorted(rows)}")
    return InferRequest(request_id, arrays, None, requested)


def _requested_outputs(doc: dict[str, Any], config: ModelConfig) -> list[str] | None:
    outputs = doc.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise BadRequestError("'outputs' must be a list of {name}")
    known = {spec.name for spec in config.outputs}
    names = []
    for i, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise BadRequestError(f"outputs[{i}].name must be a string")
        if name not in known:
            raise BadRequestError(f"unknown output '{name}' (the model returns {', '.join(sorted(known))})")
        names.append(name)
    return names


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise BadRequestError(f"input '{name}': shape must be a list of integers")
    if any(d < 0 for d in shape):
        raise BadRequestError(f"input '{name}': shape {shape} has a negative dimension")
    return shape


def _check_dims(shape: list[int], spec: TensorSpec, config: ModelConfig) -> None:
    expected = ([-1] if config.max_batch_size > 0 else []) + spec.shape
    if len(shape) != len(expected) or any(e not in (-1, d) for e, d in zip(expected, shape, strict=True)):
        shown = ["batch" if i == 0 and config.max_batch_size > 0 else str(e) for i, e in enumerate(expected)]
        raise BadRequestError(f"input '{spec.name}': shape {shape} does not match [{', '.join(shown)}]")
    if config.max_batch_size > 0:
        if shape[0] < 1:
            raise BadRequestError(f"input '{spec.name}': batch dimension must be at least 1")
        if shape[0] > config.max_batch_size:
            raise BadRequestError(
                f"input '{spec.name}': batch of {shape[0]} exceeds the model's max_batch_size {config.max_batch_size}"
            )


def _decode_tensor(tensor: dict[str, Any], spec: TensorSpec, config: ModelConfig) -> np.ndarray:
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise BadRequestError(f"input '{name}': datatype {datatype!r} does not match the model's {spec.datatype}")
    shape = _shape(tensor, name)
    _check_dims(shape, spec, config)
    data = tensor.get("data")
    if data is None:
        raise BadRequestError(f"input '{name}': 'data' is missing (binary tensor data is not supported)")
    try:
        array = np.asarray(data, dtype=NUMPY_DTYPES[spec.datatype])
    except (ValueError, TypeError, OverflowError) as err:
        raise BadRequestError(f"input '{name}': data is not a {spec.datatype} tensor: {err}") from None
    count = math.prod(shape)
    if array.size != count:
        raise BadRequestError(f"input '{name}': data has {array.size} elements, shape {shape} needs {count}")
    return array.reshape(shape)


def _decode_text(tensor: dict[str, Any], config: ModelConfig) -> list[str]:
    name = config.text_input
    if tensor.get("datatype") != "BYTES":
        raise BadRequestError(f"input '{name}': datatype must be BYTES, got {tensor.get('datatype')!r}")
    shape = _shape(tensor, name)
    if len(shape) != 1 or shape[0] < 1:
        raise BadRequestError(f"input '{name}': shape must be [batch], got {shape}")
    if config.max_batch_size and shape[0] > config.max_batch_size:
        raise BadRequestError(
            f"input '{name}': batch of {shape[0]} exceeds the model's max_batch_size {config.max_batch_size}"
        )
    data = tensor.get("data")
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise BadRequestError(f"input '{name}': data must be a list of strings")
    if len(data) != shape[0]:
        raise BadRequestError(f"input '{name}': data has {len(data)} elements, shape {shape} needs {shape[0]}")
    return data


def encode_infer(
    model_name: str, request: InferRequest, config: ModelConfig, outputs: list[np.ndarray]
) -> dict[str, Any]:
    wanted = request.requested_outputs
    result = []
    for spec, array in zip(config.outputs, outputs, strict=True):
        if wanted is not None and spec.name not in wanted:
            continue
        # ``data`` stays a numpy array: orjson serializes it natively (see app._json), far faster than tolist().
        result.append({"name": spec.name, "datatype": spec.datatype, "shape": list(array.shape), "data": array.ravel()})
    doc: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": result}
    if request.id is not None:
        doc["id"] = request.id
    return doc


def model_metadata(name: str, config: ModelConfig) -> dict[str, Any]:
    batch = [-1] if config.max_batch_size > 0 else []

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {"name": spec.name, "datatype": spec.datatype, "shape": batch + spec.shape}

    inputs = [tensor(s) for s in config.inputs]
    if config.tokenizer is not None:
        # Either the tensors or this one text input (tokenized on the server).
        inputs.append({"name": config.text_input, "datatype": "BYTES", "shape": [-1] if batch else [1]})
    return {
        "name": name,
        "versions": ["1"],
        "platform": f"pytorch_{config.platform}",
        "inputs": inputs,
        "outputs": [tensor(s) for s in config.outputs],
        "parameters": {
            "max_batch_size": config.max_batch_size,
            "task": config.task,
            "seq_len": config.seq_len,
            # The artifact served and how far the build-time gate measured it from fp32 (None: a plain trace).
            "precision": config.precision,
            "accuracy": config.accuracy.model_dump() if config.accuracy is not None else None,
        },
    }
