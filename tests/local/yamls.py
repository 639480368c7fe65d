"""ModelPack and LoadTest documents for tests, as dicts written with yaml.safe_dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def pack_doc(name: str, store: str, models: list[str], per_server: int = 2, port: int = 8080) -> dict[str, Any]:
    return {
        "apiVersion": "modelpack.dev/v1alpha1",
        "kind": "ModelPack",
        "metadata": {"name": name},
        "spec": {
            "store": {"uri": store},
            "models": {"names": models},
            "modelsPerServer": per_server,
            "compute": {"type": "x86"},
            "server": {"port": port, "memoryBudget": "512Mi", "batching": {"maxQueueDelayMs": 2}},
        },
    }


# What a client of a text model sends; the server tokenizes it.
TEXT_REQUEST = {
    "mode": "given",
    "request": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a short sentence"]}]},
}


def loadtest_doc(
    name: str,
    pack: str,
    *,
    rate: float = 20,
    duration: str = "3s",
    warmup: str = "1s",
    slo: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = TEXT_REQUEST,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"modelPack": pack, "spread": "zipf"},
        "load": {"mode": "constant-rate", "rate": rate, "duration": duration, "warmup": warmup},
    }
    if slo is not None:
        spec["slo"] = slo
    if payload is not None:
        spec["payload"] = payload
    return {"apiVersion": "modelpack.dev/v1alpha1", "kind": "LoadTest", "metadata": {"name": name}, "spec": spec}


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path
