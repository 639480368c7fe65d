"""How a server pod reaches the model store named by ``spec.store.uri``.

- ``s3://bucket/prefix``: the server reads through boto3 into its cache emptyDir; the region goes in env.
- ``pvc://claim/path``: the claim is mounted read-only at /models and the server reads ``file:///models/path``.
- ``file:///path``: a directory baked into the image; nothing to mount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelpack.api.modelpack import ModelStore

PVC_MOUNT = "/models"
PVC_VOLUME = "model-store"


@dataclass(frozen=True)
class StoreAccess:
    """The pieces of a pod spec that give a server its store."""

    uri: str
    """What the server is given as ``--store``."""
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    claim: str | None = None
    """The PersistentVolumeClaim the pods need, checked by the operator before rollout."""


def parse_pvc(uri: str) -> tuple[str, str]:
    """(claim, path inside the claim) of a ``pvc://claim/path`` URI."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    return claim, path.strip("/")


def store_access(store: ModelStore) -> StoreAccess:
    uri = store.uri
    if uri.startswith("s3://"):
        env = [{"name": "AWS_REGION", "value": store.region}] if store.region else []
        return StoreAccess(uri=uri, env=env)
    if uri.startswith("pvc://"):
        claim, path = parse_pvc(uri)
        volume = {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": PVC_VOLUME, "mountPath": PVC_MOUNT, "readOnly": True}
        local = f"file://{PVC_MOUNT}/{path}" if path else f"file://{PVC_MOUNT}"
        return StoreAccess(uri=local, volumes=[volume], mounts=[mount], claim=claim)
    return StoreAccess(uri=uri)
