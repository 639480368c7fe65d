"""Label and annotation keys the operator writes and selects on: one place, so selectors and builders agree."""

from __future__ import annotations

FIELD_MANAGER = "modelpack-operator"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "modelpack-operator"
COMPONENT = "app.kubernetes.io/component"
NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"

PACK = "modelpack.dev/pack"
SERVER = "modelpack.dev/server"
LOADTEST = "modelpack.dev/loadtest"
WORKER_INDEX = "modelpack.dev/worker-index"
GENERATION = "modelpack.dev/generation"
"""The LoadTest ``metadata.generation`` a Job and its result ConfigMaps belong to (absent: made before reruns
existed, so generation 1)."""
ROLE = "modelpack.dev/role"

DESIRED_HASH = "modelpack.dev/desired-hash"
"""Hash of what the operator last applied; a changed hash means the desired object changed (fields removed too)."""

SERVER_COMPONENT = "model-server"
ROUTES_COMPONENT = "route-table"
MODELS_COMPONENT = "server-models"
WORKER_COMPONENT = "loadtest-worker"
RESULT_COMPONENT = "loadtest-result"


def pack_selector(pack: str) -> str:
    """Label selector of every object the operator made for one pack."""
    return f"{PACK}={pack},{MANAGED_BY}={MANAGED_BY_VALUE}"


def loadtest_selector(loadtest: str) -> str:
    """Label selector of a LoadTest's Job and result ConfigMaps."""
    return f"{LOADTEST}={loadtest}"


def models_selector(pack: str) -> str:
    """Label selector of the ConfigMaps holding long server model lists."""
    return f"{pack_selector(pack)},{COMPONENT}={MODELS_COMPONENT}"


def routes_selector(pack: str) -> str:
    """Label selector of a pack's route-table shards."""
    return f"{pack_selector(pack)},{COMPONENT}={ROUTES_COMPONENT}"
