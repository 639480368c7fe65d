"""Whole-process behaviour: back-pressure, graceful shutdown, the memory budget, preload, env configuration."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.model_server.conftest import StartServer
from tests.model_server.helpers import tensor_body


def test_full_queue_answers_503_with_retry_after(fleet: Path, start_server: StartServer) -> None:
    # A request to an idle model runs at once, so the queue only fills under a burst: one row per batch and room
    # for one waiting request, then 40 requests at once; those arriving while one runs and one waits are refused.
    server = start_server(
        "--store",
        str(fleet),
        "--models",
        "m-a",
        "--preload",
        "--max-queue-size",
        "1",
        "--max-batch-size",
        "1",
    )

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return list(
                await asyncio.gather(*(client.post("/v2/models/m-a/infer", json=tensor_body()) for _ in range(40)))
            )

    responses = asyncio.run(scenario())
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "no request was refused although 40 arrived at once for a queue of 1"
    assert all(r.status_code in (200, 503) for r in responses), [r.status_code for r in responses]
    assert all(r.headers["retry-after"] == "1" and "queue is full" in r.json()["error"] for r in refused)
    metrics = server.client.get("/metrics").text
    assert f"modelpack_queue_rejections_total {float(len(refused))}" in metrics


def test_sigterm_finishes_in_flight_requests(fleet: Path, start_server: StartServer) -> None:
    # One request per batch, so requests queue behind each other and several are in flight at the signal.
    server = start_server("--store", str(fleet), "--models", "m-a", "--preload", "--max-batch-size", "64")
    answers: list[tuple[int, float]] = []

    def request() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                status = client.post("/v2/models/m-a/infer", json=tensor_body(rows=64)).status_code
            answers.append((status, time.monotonic()))
        except httpx.TransportError:  # not yet taken in by the server when it stopped accepting: allowed
            pass

    workers = [threading.Thread(target=request) for _ in range(8)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    in_flight = 0.0
    while in_flight < 2:  # requests the server has taken in: each must still be answered
        metrics = server.client.get("/metrics").text
        in_flight = float(metrics.split("\nmodelpack_requests_in_flight ")[1].split()[0])
        assert time.monotonic() < deadline, f"never two requests in flight: {answers}"
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.join(60)
    assert all(status == 200 for status, _ in answers), answers
    after = [at for _, at in answers if at > signalled]
    assert len(after) >= 1 and len(answers) >= in_flight, (in_flight, answers, signalled)
    # uvicorn re-raises the signal once shutdown is complete, so the exit status is "killed by SIGTERM".
    assert server.proc.wait(30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.stop()
    try:
        httpx.get(f"{server.url}/v2/health/live", timeout=2)
        raise AssertionError("server still accepting connections after SIGTERM")
    except httpx.TransportError:
        pass


def test_memory_budget_evicts_least_recently_used(fleet: Path, start_server: StartServer) -> None:
    server = start_server("--store", str(fleet), "--models", "m-a,m-b,m-c", "--memory-budget", "7Mi")  # two tiny models
    for name in ("m-a", "m-b", "m-c", "m-a"):
        assert server.client.post(f"/v2/models/{name}/infer", json=tensor_body()).status_code == 200
    states = {r["name"]: r["state"] for r in server.client.get("/v2/repository/index").json()}
    loaded = [n for n, s in states.items() if s == "READY"]
    assert "m-a" in loaded and len(loaded) < 3
    metrics = server.client.get("/metrics").text
    assert "modelpack_model_evictions_total 0.0" not in metrics
    assert 'modelpack_model_cache_total{result="miss"}' in metrics


def test_preload_and_models_from_env(fleet: Path, tmp_path: Path, start_server: StartServer) -> None:
    models_file = tmp_path / "models.txt"
    models_file.write_text("# two of the fleet\nm-b\n\nm-c  # trailing comment\n")
    server = start_server(
        env={"MODELPACK_STORE": str(fleet), "MODELPACK_MODELS_FILE": str(models_file), "MODELPACK_PRELOAD": "true"}
    )
    rows = server.client.get("/v2/repository/index").json()
    assert {r["name"]: r["state"] for r in rows} == {"m-b": "READY", "m-c": "READY"}


def test_flag_wins_over_env(fleet: Path, start_server: StartServer) -> None:
    server = start_server("--models", "m-a", env={"MODELPACK_STORE": str(fleet), "MODELPACK_MODELS": "m-b,m-c"})
    assert [r["name"] for r in server.client.get("/v2/repository/index").json()] == ["m-a"]


def test_file_uri_store(fleet: Path, start_server: StartServer) -> None:
    server = start_server("--store", f"file://{fleet}", "--models", "m-c")
    assert server.client.post("/v2/models/m-c/infer", json=tensor_body()).status_code == 200


def test_qa_model_returns_start_and_end_logits(qa_fleet: Path, start_server: StartServer) -> None:
    server = start_server("--store", str(qa_fleet))
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["what is it", "a model"]}]}
    doc = server.client.post("/v2/models/qa-1/infer", json=body).json()
    assert [(o["name"], o["shape"]) for o in doc["outputs"]] == [("start_logits", [2, 16]), ("end_logits", [2, 16])]
    body["outputs"] = [{"name": "end_logits"}]
    doc = server.client.post("/v2/models/qa-1/infer", json=body).json()
    assert [o["name"] for o in doc["outputs"]] == ["end_logits"]
