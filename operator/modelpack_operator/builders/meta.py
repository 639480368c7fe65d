"""Metadata every owned object carries: owner reference, labels, and the hash of what was applied."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelpack.api.common import API_VERSION
from modelpack_operator import labels as L


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """Makes the owner's deletion garbage-collect the object; ``controller`` marks the operator's own objects."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {**labels, L.MANAGED_BY: L.MANAGED_BY_VALUE}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": all_labels}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def desired_hash(obj: dict[str, Any]) -> str:
    """A short digest of an object as built, stable across runs (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with its own hash as an annotation, so a later reconcile can tell a changed desired state."""
    digest = desired_hash(obj)
    meta = obj["metadata"]
    return {**obj, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), L.DESIRED_HASH: digest}}}


def restricted_container() -> dict[str, Any]:
    """A container's securityContext under Pod Security ``restricted``: every pod the operator makes holds it
    (what the server or worker writes goes to an emptyDir)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
