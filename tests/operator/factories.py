"""Typed test objects: a ModelPack or LoadTest from a few overrides, validated like the API server would."""

from __future__ import annotations

from typing import Any

from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack
from modelpack_operator.builders.merge import deep_merge


def pack_doc(name: str = "bert", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "modelpack.dev/v1alpha1",
        "kind": "ModelPack",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "store": {"uri": "s3://models-bucket/fleet", "region": "us-west-2"},
            "models": {"count": 5},
            "modelsPerServer": 2,
            "compute": {"type": "graviton"},
        },
    }
    replaced = {k: spec.pop(k) for k in ("models", "store") if k in spec}  # one-of fields: replace, not merge
    doc = deep_merge(base, {"spec": spec})
    doc["spec"].update(replaced)
    return doc


def make_pack(name: str = "bert", namespace: str = "ns", uid: str = "uid-1", **spec: Any) -> ModelPack:
    doc = pack_doc(name, namespace, **spec)
    doc["metadata"]["uid"] = uid
    return ModelPack.model_validate(doc)


def loadtest_doc(name: str = "lt", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "modelpack.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"target": {"modelPack": "bert"}, "load": {"rate": 20, "duration": "2s", "warmup": "1s"}},
    }
    return deep_merge(base, {"spec": spec})


def make_loadtest(name: str = "lt", namespace: str = "ns", uid: str = "lt-uid", **spec: Any) -> LoadTest:
    doc = loadtest_doc(name, namespace, **spec)
    doc["metadata"]["uid"] = uid
    return LoadTest.model_validate(doc)
