"""Kubernetes Events on the transitions a user watching ``kubectl describe`` cares about.

Events are best effort: failing to record one is logged, never allowed to fail a reconcile.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Literal

from modelpack.conditions import now_rfc3339
from modelpack_operator.kube import Kube, KubeError
from modelpack_operator.labels import FIELD_MANAGER

log = logging.getLogger(__name__)
EventType = Literal["Normal", "Warning"]


def event_body(obj: dict[str, Any], type_: EventType, reason: str, message: str, now: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def record(
    kube: Kube, obj: dict[str, Any], type_: EventType, reason: str, message: str, name: str | None = None
) -> None:
    """Post an Event about ``obj`` (a ModelPack or LoadTest as read from the API).

    With ``name``, the Event is one of a kind: posting it again (another operator pod saw the same thing)
    is refused by the API server as a conflict, which is what is wanted."""
    body = event_body(obj, type_, reason, message, now_rfc3339())
    if name is not None:
        body["metadata"] = {"name": name, "namespace": obj["metadata"]["namespace"]}
    try:
        kube.post(f"/api/v1/namespaces/{obj['metadata']['namespace']}/events", body)
    except KubeError as err:
        if name is not None and err.status == 409:
            return
        log.warning("could not record event %s on %s: %s", reason, obj["metadata"]["name"], err)
