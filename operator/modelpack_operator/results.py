"""How a worker reports through the API: one ConfigMap per worker, read back and merged by the operator.

A worker that succeeds stores its ``LoadOutcome.to_json()`` (histograms included, so the merge is
exact); one that fails stores the reason, so the LoadTest can say why instead of "BackoffLimitExceeded".
Outcomes over half a megabyte are gzipped into ``binaryData`` to stay inside a ConfigMap's 1 MiB.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from typing import Any

from modelpack.api.common import API_VERSION
from modelpack.loadgen.outcome import LoadOutcome
from modelpack_operator import labels as L
from modelpack_operator.builders.loadtest_job import result_name

OUTCOME_KEY = "outcome.json"
OUTCOME_GZ_KEY = "outcome.json.gz"
PLAIN_LIMIT = 512 * 1024


def result_configmap(
    loadtest: str,
    uid: str,
    namespace: str,
    index: int,
    *,
    outcome: dict[str, Any] | None = None,
    error: str | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    """The ConfigMap worker ``index`` of run ``generation`` writes: its outcome, or the error that stopped it."""
    data: dict[str, str] = {"index": str(index), "status": "failed" if error else "succeeded"}
    binary: dict[str, str] = {}
    if error:
        data["error"] = error[:4000]
    if outcome is not None:
        text = json.dumps(outcome, separators=(",", ":"))
        if len(text) <= PLAIN_LIMIT:
            data[OUTCOME_KEY] = text
        else:
            binary[OUTCOME_GZ_KEY] = base64.b64encode(gzip.compress(text.encode())).decode()
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": result_name(loadtest, index, generation),
            "namespace": namespace,
            "labels": {
                L.LOADTEST: loadtest,
                L.GENERATION: str(generation),
                L.COMPONENT: L.RESULT_COMPONENT,
                L.WORKER_INDEX: str(index),
            },
            # blockOwnerDeletion needs rights on the LoadTest's finalizers, which workers do not get.
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "LoadTest", "name": loadtest, "uid": uid}],
        },
        "data": data,
    }
    if binary:
        obj["binaryData"] = binary
    return obj


@dataclass(frozen=True)
class WorkerResult:
    """One worker's report as read back; ``outcome`` is None when it failed or the report is unreadable."""

    index: int
    ok: bool
    error: str | None
    outcome: LoadOutcome | None


def read_result(configmap: dict[str, Any]) -> WorkerResult:
    """Parse a result ConfigMap; a malformed one counts as that worker failing, with the reason."""
    data = configmap.get("data") or {}
    name = configmap["metadata"]["name"]
    try:
        index = int(data.get("index", configmap["metadata"].get("labels", {}).get(L.WORKER_INDEX, "")))
    except ValueError:
        index = -1
    if data.get("status") == "failed":
        return WorkerResult(index, False, data.get("error") or "worker failed without a message", None)
    try:
        if OUTCOME_KEY in data:
            raw = data[OUTCOME_KEY]
        else:
            packed = (configmap.get("binaryData") or {})[OUTCOME_GZ_KEY]
            raw = gzip.decompress(base64.b64decode(packed)).decode()
        outcome = LoadOutcome.from_json(json.loads(raw))
    except (KeyError, ValueError, OSError, TypeError) as err:
        return WorkerResult(index, False, f"{name}: unreadable outcome: {err}", None)
    return WorkerResult(index, True, None, outcome)
