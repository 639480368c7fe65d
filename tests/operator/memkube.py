"""An in-memory stand-in for :class:`modelpack_operator.kube.Kube` for unit tests of the reconcile stages: objects
in a dict, label selectors of ``k=v`` terms, server-side apply as a replace (the stages apply whole objects)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

from modelpack_operator.kube import Kube

Key = tuple[str, str, str | None, str]


def _matches(labels: Mapping[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",")))


class MemKube:
    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, str]] = []
        for obj in objects:
            self.put(obj)

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(obj)
        stored["metadata"].setdefault("uid", f"uid-{stored['metadata']['name']}")
        self.objects[self._key(stored)] = stored
        return stored

    def as_kube(self) -> Kube:
        return cast(Kube, self)

    # ---- the Kube methods the reconcile stages call ----------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None, selector: str | None = None) -> list[Any]:
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in self.objects.items()
            if v == api_version
            and k == kind
            and (namespace is None or ns == namespace)
            and _matches(o["metadata"].get("labels") or {}, selector)
        ]

    def apply(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        self.writes.append(("apply" + (f"/{subresource}" if subresource else ""), obj["kind"], obj["metadata"]["name"]))
        live = self.objects.get(self._key(obj))
        if subresource == "status":
            if live is None:
                raise AssertionError(f"status of a missing object {self._key(obj)}")
            live["status"] = copy.deepcopy(obj["status"])
            return copy.deepcopy(live)
        return self.put(dict(obj))

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        self.writes.append(("create", obj["kind"], obj["metadata"]["name"]))
        if self._key(obj) in self.objects:
            return None
        return self.put(dict(obj))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        self.writes.append(("delete", kind, name))
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        self.events.append(dict(body))
        return dict(body)
