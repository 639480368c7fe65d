"""The Indexed Job that runs a LoadTest's workers: ``workers`` pods, each sending its share of the load.

Every pod gets the spec as JSON, the common start time, and the pack's route table mounted from its
ConfigMaps (one file per shard); ``JOB_COMPLETION_INDEX`` tells a worker which share is its own. The Job is owned by the
LoadTest, so deleting the LoadTest stops the workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from modelpack.api.loadtest import LoadTest, LoadTestSpec
from modelpack.loadgen.worker_plan import make_plan
from modelpack_operator import labels as L
from modelpack_operator import workerenv as E
from modelpack_operator.builders.meta import object_meta, owner_reference, restricted_container, with_hash
from modelpack_operator.builders.names import MAX_NAME, child_name
from modelpack_operator.builders.routes import ROUTES_KEY
from modelpack_operator.settings import WorkerSettings

DEADLINE_SLACK_SECONDS = 300
CONTAINER = "worker"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
WORKER_GAVE_UP = [1, 2]
"""Exit codes of `modelpack worker` after it reported (1) or found its input unusable (2): retrying cannot help."""
POD_FAILURE_POLICY: dict[str, Any] = {
    "rules": [
        # A worker that failed on its own terms fails the Job at once: a retry would resend load late, alone.
        {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": WORKER_GAVE_UP}},
        # Evictions and preemptions are not the worker's fault and do not use up backoffLimit.
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
}


def generation_of(loadtest: LoadTest) -> int:
    """The spec generation a run belongs to (1 where the API server did not say, as in a file)."""
    return loadtest.metadata.generation or 1


def job_name(loadtest: str, generation: int = 1) -> str:
    """``<loadtest>-load`` for the first spec, ``<loadtest>-load-g<generation>`` for each rerun after an edit: a new
    run never shares a name with the one it replaces, whose pods may still be terminating."""
    # Indexed Job pods are named (and host-named) <job>-<index>: keep room for "-999" within a DNS label.
    return child_name(loadtest, "load" if generation == 1 else f"load-g{generation}", limit=MAX_NAME - 4)


def result_name(loadtest: str, index: int, generation: int = 1) -> str:
    """The ConfigMap worker ``index`` of run ``generation`` writes its outcome to."""
    return f"{loadtest}-result-{index}" + ("" if generation == 1 else f"-g{generation}")


def planned_seconds(spec: LoadTestSpec) -> float:
    """How long the load runs, warm-up included (a sweep: every step up to its max rate): the worker's own plan."""
    return make_plan(spec).end


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def worker_env(loadtest: LoadTest, start_at: float) -> list[dict[str, Any]]:
    """The env of every worker; index and namespace come from the pod itself (downward API)."""
    spec_json = json.dumps(loadtest.spec.to_dict(), separators=(",", ":"), sort_keys=True)
    return [
        {"name": E.LOADTEST, "value": loadtest.metadata.name},
        {"name": E.LOADTEST_UID, "value": loadtest.metadata.uid or ""},
        {"name": E.GENERATION, "value": str(generation_of(loadtest))},
        {"name": E.NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {
            "name": E.INDEX,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}},
        },
        {"name": E.WORKERS, "value": str(loadtest.spec.workers)},
        {"name": E.START_AT, "value": rfc3339(start_at)},
        {"name": E.SPEC, "value": spec_json},
        {"name": E.ROUTES, "value": E.ROUTES_MOUNT},
    ]


def routes_volume(route_tables: Sequence[str]) -> dict[str, Any]:
    """Every shard of the pack's route table in one directory, as ``routes-<k>.json``."""
    sources = [
        {"configMap": {"name": name, "items": [{"key": ROUTES_KEY, "path": f"routes-{k}.json"}]}}
        for k, name in enumerate(route_tables)
    ]
    return {"name": "routes", "projected": {"sources": sources}}


def loadtest_job(
    loadtest: LoadTest, route_tables: Sequence[str], start_at: float, settings: WorkerSettings
) -> dict[str, Any]:
    """The Job; ``route_tables`` names the pack's route-table ConfigMaps, ``start_at`` the common start (Unix time)."""
    name = loadtest.metadata.name
    namespace = loadtest.metadata.namespace or "default"
    workers = loadtest.spec.workers
    generation = generation_of(loadtest)
    labels = {
        L.LOADTEST: name,
        L.GENERATION: str(generation),
        L.COMPONENT: L.WORKER_COMPONENT,
        L.NAME: "modelpack-worker",
    }
    deadline = math.ceil(planned_seconds(loadtest.spec) + settings.start_delay_seconds + DEADLINE_SLACK_SECONDS)
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "command": ["modelpack", "worker"],
        "env": worker_env(loadtest, start_at),
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory},
            "limits": {"memory": settings.memory},
        },
        "securityContext": restricted_container(),
        "volumeMounts": [
            {"name": "routes", "mountPath": E.ROUTES_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.service_account,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            routes_volume(route_tables),
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    owner = owner_reference("LoadTest", name, loadtest.metadata.uid or "")
    obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_meta(job_name(name, generation), namespace, labels, owner),
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": workers,
            "backoffLimit": settings.backoff_limit,
            "podFailurePolicy": POD_FAILURE_POLICY,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": loadtest.spec.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    return with_hash(obj)
