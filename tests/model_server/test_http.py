"""The server as a real process over HTTP: protocol routes, bad input, failed models next to healthy ones."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tests.model_server.conftest import ServerProcess, StartServer
from tests.model_server.helpers import SEQ, tensor_body, text_body


def test_health_and_server_metadata(server: ServerProcess) -> None:
    assert server.client.get("/v2/health/live").json() == {"live": True}
    assert server.client.get("/v2/health/ready").status_code == 200
    meta = server.client.get("/v2").json()
    assert meta["name"] == "modelpack"
    assert "model_repository" in meta["extensions"]


def test_model_metadata_lists_tensor_and_text_inputs(server: ServerProcess) -> None:
    meta = server.client.get("/v2/models/m-a").json()
    assert meta["name"] == "m-a"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("input_ids", "INT64", [-1, SEQ]),
        ("attention_mask", "INT64", [-1, SEQ]),
        ("text", "BYTES", [-1]),
    ]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}]


def test_infer_tensor_returns_logits_per_row(server: ServerProcess) -> None:
    body = tensor_body(rows=3)
    body["id"] = "req-1"
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["model_name"] == "m-a"
    assert doc["id"] == "req-1"
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 2]
    rows = np.array(out["data"]).reshape(3, 2)
    assert np.allclose(rows[0], rows[1]) and np.allclose(rows[1], rows[2])  # same input, same output


def test_distinct_models_give_distinct_outputs(server: ServerProcess) -> None:
    a = server.client.post("/v2/models/m-a/infer", json=tensor_body()).json()["outputs"][0]["data"]
    b = server.client.post("/v2/models/m-b/infer", json=tensor_body()).json()["outputs"][0]["data"]
    assert not np.allclose(a, b)


def test_versioned_infer_route(server: ServerProcess) -> None:
    resp = server.client.post("/v2/models/m-a/versions/1/infer", json=tensor_body())
    assert resp.status_code == 200


def test_text_is_tokenized_like_the_models_tokenizer(server: ServerProcess, fleet: Path) -> None:
    text = "the model servers are great"
    by_text = server.client.post("/v2/models/m-c/infer", json=text_body(text))
    assert by_text.status_code == 200, by_text.text
    tokenizer = Tokenizer.from_file(str(fleet / "m-c" / "tokenizer.json"))
    enc = tokenizer.encode(text)
    assert len(enc.ids) == SEQ  # padded to the model's sequence length
    tensors = {
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [1, SEQ], "data": enc.ids},
            {"name": "attention_mask", "datatype": "INT64", "shape": [1, SEQ], "data": enc.attention_mask},
        ]
    }
    by_tensor = server.client.post("/v2/models/m-c/infer", json=tensors)
    assert np.allclose(by_text.json()["outputs"][0]["data"], by_tensor.json()["outputs"][0]["data"], atol=1e-5)


def test_long_text_is_truncated_not_rejected(server: ServerProcess) -> None:
    resp = server.client.post("/v2/models/m-c/infer", json=text_body("word " * 500, "short"))
    assert resp.status_code == 200
    assert resp.json()["outputs"][0]["shape"] == [2, 2]


def test_unknown_model_is_404(server: ServerProcess) -> None:
    resp = server.client.post("/v2/models/nope/infer", json=tensor_body())
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]
    assert server.client.get("/v2/models/nope").status_code == 404
    assert server.client.get("/v2/models/nope/ready").status_code == 404


def test_malformed_json_is_400(server: ServerProcess) -> None:
    resp = server.client.post(
        "/v2/models/m-a/infer", content=b'{"inputs": [', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]


def test_wrong_input_name_is_400_naming_it(server: ServerProcess) -> None:
    body = tensor_body()
    body["inputs"][0]["name"] = "token_ids"
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "token_ids" in resp.json()["error"]


def test_missing_input_is_400_naming_it(server: ServerProcess) -> None:
    body = tensor_body()
    del body["inputs"][1]
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "attention_mask" in resp.json()["error"]


def test_wrong_datatype_is_400_naming_input(server: ServerProcess) -> None:
    body = tensor_body()
    body["inputs"][1]["datatype"] = "FP32"
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert "attention_mask" in err and "FP32" in err and "INT64" in err


def test_wrong_shape_is_400_naming_input(server: ServerProcess) -> None:
    body = tensor_body(seq=SEQ + 1)
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "input_ids" in resp.json()["error"] and "shape" in resp.json()["error"]


def test_data_not_matching_shape_is_400(server: ServerProcess) -> None:
    body = tensor_body()
    body["inputs"][0]["shape"] = [2, SEQ]
    body["inputs"][1]["shape"] = [2, SEQ]
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "input_ids" in resp.json()["error"] and "elements" in resp.json()["error"]


def test_token_id_out_of_vocabulary_is_400_not_500(server: ServerProcess) -> None:
    resp = server.client.post("/v2/models/m-a/infer", json=tensor_body(token=10**6))
    assert resp.status_code == 400
    assert "m-a" in resp.json()["error"]


def test_text_to_a_tensor_only_input_is_400(server: ServerProcess) -> None:
    body = text_body("hi")
    body["inputs"][0]["datatype"] = "INT64"
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "'text'" in resp.json()["error"]


def test_requested_outputs_are_checked(server: ServerProcess) -> None:
    body = tensor_body()
    body["outputs"] = [{"name": "embeddings"}]
    resp = server.client.post("/v2/models/m-a/infer", json=body)
    assert resp.status_code == 400
    assert "embeddings" in resp.json()["error"]


def test_oversized_body_is_413(server: ServerProcess) -> None:
    body = json.dumps(text_body("x" * 70_000)).encode()  # the fixture's limit is 64Ki
    resp = server.client.post("/v2/models/m-a/infer", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "limit" in resp.json()["error"]


def test_oversized_chunked_body_is_413(server: ServerProcess) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 8192

    resp = server.client.post("/v2/models/m-a/infer", content=chunks())
    assert resp.status_code == 413


def test_failed_models_are_visible_and_others_keep_serving(server: ServerProcess) -> None:
    for name in ("corrupt", "bad-config"):
        resp = server.client.post("/v2/models/" + name + "/infer", json=tensor_body())
        assert resp.status_code == 503, resp.text
        assert "failed to load" in resp.json()["error"]
    index = {row["name"]: row for row in server.client.post("/v2/repository/index").json()}
    assert index["corrupt"]["state"] == "FAILED"
    assert "not a loadable TorchScript archive" in index["corrupt"]["reason"]
    assert index["no-weights"]["state"] == "FAILED"  # found at registration: model.pt is missing
    assert "model.pt" in index["no-weights"]["reason"]
    assert index["bad-config"]["state"] == "FAILED"
    assert "config.json" in index["bad-config"]["reason"] and "inputs" in index["bad-config"]["reason"]
    ready = server.client.get("/v2/models/corrupt/ready")
    assert ready.status_code == 503
    assert ready.json()["state"] == "FAILED" and ready.json()["reason"]
    assert server.client.post("/v2/models/m-b/infer", json=tensor_body()).status_code == 200
    assert server.client.get("/v2/health/ready").status_code == 200


def test_failed_model_is_retried_after_back_off(store_copy: Path, start_server: StartServer) -> None:
    """A model named before it is in the store is FAILED, says when it is retried, and serves once copied in."""
    backoff = ["--load-retry-base-s", "0.2", "--load-retry-max-s", "0.2"]
    server = start_server("--store", str(store_copy), "--models", "m-a,late", "--log-level", "warning", *backoff)
    resp = server.client.post("/v2/models/late/infer", json=tensor_body())
    assert resp.status_code == 503, resp.text
    assert re.fullmatch(
        r"model 'late' failed to load: no folder 'late' in .* \(retrying after 0\.\d s\)", resp.json()["error"]
    )
    assert resp.headers["Retry-After"] == "1"  # whole seconds, rounded up
    index = {row["name"]: row for row in server.client.get("/v2/repository/index").json()}
    assert index["late"]["state"] == "FAILED" and index["late"]["reason"].startswith("no folder 'late'")
    shutil.copytree(store_copy / "m-b", store_copy / "late")
    deadline = time.monotonic() + 5
    while (resp := server.client.post("/v2/models/late/infer", json=tensor_body())).status_code == 503:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.05)
    assert resp.status_code == 200, resp.text
    assert server.client.get("/v2/models/late/ready").json()["state"] == "READY"


def test_repository_index_states_and_ready_filter(server: ServerProcess) -> None:
    server.client.post("/v2/models/m-a/infer", json=tensor_body())
    rows = server.client.get("/v2/repository/index").json()
    assert {r["name"] for r in rows} == {"m-a", "m-b", "m-c", "corrupt", "no-weights", "bad-config"}
    assert all(r["state"] in ("UNAVAILABLE", "LOADING", "READY", "FAILED") for r in rows)
    ready_only = server.client.post("/v2/repository/index", json={"ready": True}).json()
    assert "m-a" in {r["name"] for r in ready_only}
    assert all(r["state"] == "READY" for r in ready_only)


def test_unload_then_lazy_reload(server: ServerProcess) -> None:
    assert server.client.post("/v2/repository/models/m-b/load").status_code == 200
    assert server.client.post("/v2/repository/models/m-b/unload").json()["state"] == "UNAVAILABLE"
    assert server.client.post("/v2/models/m-b/infer", json=tensor_body()).status_code == 200
    assert server.client.get("/v2/models/m-b/ready").json()["state"] == "READY"


def test_metrics_have_no_per_model_labels(server: ServerProcess) -> None:
    server.client.post("/v2/models/m-a/infer", json=tensor_body())
    text = server.client.get("/metrics").text
    for family in (
        "modelpack_requests_total",
        "modelpack_queue_seconds_bucket",
        "modelpack_compute_seconds_bucket",
        "modelpack_batch_size_bucket",
        "modelpack_model_loads_total",
        "modelpack_model_cache_total",
        "modelpack_models_loaded",
        "modelpack_model_loaded_bytes_total",
    ):
        assert family in text, family
    assert 'modelpack_requests_total{code="200"}' in text
    assert "\nmodelpack_requests_in_flight 0.0\n" in text  # the answered request left it
    assert 'modelpack_requests_total{code="404"}' in text
    assert "m-a" not in text and "model=" not in text
