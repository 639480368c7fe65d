"""Runs inside the arm64 server image (under qemu) with the image's own Python: builds one tiny BERT with the
project's fleet builder, serves it with ``modelpack serve`` on loopback, sends one V2 inference request, and runs
the same model with plain torch for comparison. Prints one JSON object; the test on the host judges it.

Only the image's contents are used (the checkout is not mounted on ``sys.path``): this file is copied in alone.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MODEL = "graviton-bert"
TEXT = "graviton runs this model"
SHAPE = {"layers": 1, "hidden": 32, "heads": 2, "seq_len": 16, "vocab_size": 600}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def _post(url: str, body: dict[str, Any], timeout: float = 120) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"modelpack serve exited {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/v2/models/{MODEL}/ready", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - began
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"model {MODEL} not ready on {base} within {timeout:.0f}s")


def main() -> None:
    report: dict[str, Any] = {"machine": platform.machine(), "uname_m": os.uname().machine}
    import torch
    from tokenizers import Tokenizer

    from model_server.fleet import build_fleet, shape_for

    report["torch"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda
    store = Path(tempfile.mkdtemp(prefix="store-"))
    began = time.monotonic()
    built = build_fleet(store, [MODEL], shape_for("tiny", **SHAPE))  # type: ignore[arg-type]
    report["build_s"] = round(time.monotonic() - began, 2)
    report["built"] = built.built
    report["config"] = json.loads((store / MODEL / "config.json").read_text())

    # Plain torch: the saved TorchScript and the model's own tokenizer, no server code in the path.
    tokenizer = Tokenizer.from_file(str(store / MODEL / "tokenizer.json"))
    enc = tokenizer.encode(TEXT)
    module = torch.jit.load(str(store / MODEL / "model.pt"))
    with torch.no_grad():
        ids = torch.tensor([enc.ids], dtype=torch.int64)
        mask = torch.tensor([enc.attention_mask], dtype=torch.int64)
        report["torch_logits"] = module(ids, mask).tolist()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    argv = ["modelpack", "serve", "--store", f"file://{store}", "--host", "127.0.0.1", "--port", str(port),
            "--threads", "1", "--inference-workers", "1", "--preload", "--log-level", "warning"]  # fmt: skip
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr)
    try:
        report["ready_s"] = round(_wait_ready(base, proc, 600), 2) if proc else None
        body = {"id": "arm64-1", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXT]}]}
        latencies = []
        for _ in range(3):  # the first request pays the executor's first-run plan; the others are steady state
            began = time.monotonic()
            report["response"] = _post(f"{base}/v2/models/{MODEL}/infer", body)
            latencies.append(round((time.monotonic() - began) * 1000, 1))
        report["latency_ms"] = latencies
        tensors = {"inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [1, len(enc.ids)], "data": enc.ids},
            {"name": "attention_mask", "datatype": "INT64", "shape": [1, len(enc.ids)], "data": enc.attention_mask},
        ]}  # fmt: skip
        report["tensor_response"] = _post(f"{base}/v2/models/{MODEL}/infer", tensors)
        report["ids"], report["mask"] = enc.ids, enc.attention_mask
        report["server_meta"] = _get(f"{base}/v2")
    finally:
        proc.terminate()
        report["server_exit"] = proc.wait(timeout=60)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
