"""Hypothesis against the live server: whatever JSON arrives, the answer is a 2xx/4xx with a V2 error body,
never a 500 or a dropped connection, and the server keeps serving afterwards."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.model_server.conftest import ServerProcess
from tests.model_server.helpers import SEQ, tensor_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
names = st.sampled_from(["input_ids", "attention_mask", "text", "x", ""])
datatypes = st.sampled_from(["INT64", "INT32", "FP32", "BYTES", "BOOL", "nope"])
shapes = st.lists(st.integers(-2, SEQ + 2), max_size=3) | st.sampled_from([[1, SEQ], [2, SEQ], [1]])
tensors = st.fixed_dictionaries(
    {"name": names, "datatype": datatypes, "shape": shapes},
    optional={
        "data": st.lists(st.integers(-5, 2000), max_size=40) | json_values | st.lists(st.text(max_size=5), max_size=3)
    },
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"inputs": st.lists(tensors, max_size=3)}, optional={"outputs": json_values, "id": json_values}
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, model=st.sampled_from(["m-a", "m-c", "corrupt", "missing"]))
def test_no_input_makes_the_server_fail(server: ServerProcess, body: Any, model: str) -> None:
    resp = server.client.post(f"/v2/models/{model}/infer", content=json.dumps(body).encode())
    assert resp.status_code in (200, 400, 404, 503), resp.text
    if resp.status_code != 200:
        assert isinstance(resp.json()["error"], str)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_arbitrary_bytes_are_rejected_cleanly(server: ServerProcess, raw: bytes) -> None:
    resp = server.client.post("/v2/models/m-a/infer", content=raw)
    assert resp.status_code == 400
    assert server.client.post("/v2/models/m-a/infer", json=tensor_body()).status_code == 200
