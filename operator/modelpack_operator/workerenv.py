"""The contract between a LoadTest Job's pod template and ``modelpack worker``: environment variable names.

The Job builder writes them, the worker reads them; both import this module so the names cannot drift.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from modelpack.api.loading import format_validation_error
from modelpack.api.loadtest import LoadTestSpec

LOADTEST = "MODELPACK_LOADTEST"
LOADTEST_UID = "MODELPACK_LOADTEST_UID"
GENERATION = "MODELPACK_LOADTEST_GENERATION"
"""Optional: Jobs made before LoadTests re-ran on a spec change lack it, and ran generation 1."""
NAMESPACE = "MODELPACK_NAMESPACE"
WORKERS = "MODELPACK_WORKERS"
START_AT = "MODELPACK_START_AT"
SPEC = "MODELPACK_LOADTEST_SPEC"
ROUTES = "MODELPACK_ROUTES_DIR"
INDEX = "JOB_COMPLETION_INDEX"

ROUTES_MOUNT = "/etc/modelpack/routes"
"""Where the Job mounts the route-table shards, one ``routes-<k>.json`` per ConfigMap."""


class WorkerEnvError(ValueError):
    """A worker variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything one worker needs, as parsed from its environment."""

    loadtest: str
    uid: str
    generation: int
    """The LoadTest spec generation this run belongs to: it names and labels the result ConfigMap."""
    namespace: str
    index: int
    workers: int
    start_at: float
    """Unix time at which every worker starts sending."""
    spec: LoadTestSpec
    routes_dir: Path
    """Directory of the route-table shards; their union is the pack's route table."""


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise WorkerEnvError(f"{name} is not set (the LoadTest Job sets it; see docs/operator.md)")
    return value


def _int(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = _require(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise WorkerEnvError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise WorkerEnvError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def parse_time(raw: str) -> float:
    """Unix time of an RFC 3339 timestamp (``2026-01-01T00:00:00Z``)."""
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def from_env(env: Mapping[str, str] | None = None) -> WorkerConfig:
    source = os.environ if env is None else env
    index = _int(source, INDEX, 0)
    workers = _int(source, WORKERS, 1)
    if index >= workers:
        raise WorkerEnvError(f"{INDEX}={index} is not below {WORKERS}={workers}")
    generation = _int(source, GENERATION, 1) if source.get(GENERATION, "").strip() else 1
    raw_start = _require(source, START_AT)
    try:
        start_at = parse_time(raw_start)
    except ValueError:
        raise WorkerEnvError(f"{START_AT}={raw_start!r}: expected RFC 3339, e.g. 2026-01-01T00:00:00Z") from None
    raw_spec = _require(source, SPEC)
    try:
        spec = LoadTestSpec.model_validate(json.loads(raw_spec))
    except json.JSONDecodeError as err:
        raise WorkerEnvError(f"{SPEC} is not JSON: {err}") from None
    except ValidationError as err:
        raise WorkerEnvError(f"{SPEC} is not a valid LoadTest spec:\n{format_validation_error(err)}") from None
    return WorkerConfig(
        loadtest=_require(source, LOADTEST),
        uid=_require(source, LOADTEST_UID),
        generation=generation,
        namespace=_require(source, NAMESPACE),
        index=index,
        workers=workers,
        start_at=start_at,
        spec=spec,
        routes_dir=Path(_require(source, ROUTES)),
    )
