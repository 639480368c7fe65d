"""Request bodies shared by the tests."""

from __future__ import annotations

from typing import Any

SEQ = 16


def tensor_body(rows: int = 1, seq: int = SEQ, token: int = 7) -> dict[str, Any]:
    ids = [[2] + [token] * (seq - 2) + [3] for _ in range(rows)]
    mask = [[1] * seq for _ in range(rows)]
    return {
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [rows, seq], "data": ids},
            {"name": "attention_mask", "datatype": "INT64", "shape": [rows, seq], "data": mask},
        ]
    }


def text_body(*texts: str) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}]}
