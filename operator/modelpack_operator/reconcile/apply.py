"""Make live objects match desired ones with as few writes as possible.

An object is applied (server-side apply, forced, as ``modelpack-operator``) only when it is missing,
when what the operator wants changed (the desired-hash annotation differs), or when someone edited a
field the operator sets (the desired object is no longer a subset of the live one). A reconcile that
finds everything in place therefore makes no write at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelpack.api.base import parse_quantity
from modelpack_operator import labels as L
from modelpack_operator.kube import Kube


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        # The API server canonicalises quantities (1024Mi is stored as 1Gi).
        try:
            return parse_quantity(want) == parse_quantity(have)
        except ValueError:
            return False
    return False


def is_subset(want: Any, have: Any) -> bool:
    """Every field of ``want`` is in ``have`` with the same value; ``have`` may hold more (server defaults)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(is_subset, want, have))
    return _same_scalar(want, have)


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    if live is None:
        return True
    want_hash = desired["metadata"].get("annotations", {}).get(L.DESIRED_HASH)
    have_hash = (live.get("metadata", {}).get("annotations") or {}).get(L.DESIRED_HASH)
    if want_hash != have_hash:
        return True
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    meta_want = {k: desired["metadata"][k] for k in ("labels", "ownerReferences") if k in desired["metadata"]}
    return not (is_subset(body, live) and is_subset(meta_want, live.get("metadata", {})))


@dataclass
class SyncReport:
    """What a sync changed, for events and logs."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def _apply(kube: Kube, obj: dict[str, Any]) -> bool:
    """Apply and drop the response: thousands of applied objects held until the last write ends add up."""
    kube.apply(obj)
    return True


def sync(
    kube: Kube,
    desired: Iterable[dict[str, Any]],
    live: Iterable[dict[str, Any]],
    *,
    prune: bool = True,
    report: SyncReport | None = None,
    concurrency: int = 1,
) -> SyncReport:
    """Apply what differs among ``desired``; delete ``live`` objects of the same kinds not desired (if ``prune``).

    Writes run ``concurrency`` at a time: a pack of hundreds of servers is hundreds of independent requests,
    and the API server handles them in parallel. Every write is attempted; the first failure is raised after.
    """
    out = report or SyncReport()
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in live}
    wanted = set()
    writes: list[tuple[str, list[str], Callable[[], object]]] = []
    for obj in desired:
        key = (obj["kind"], obj["metadata"]["name"])
        wanted.add(key)
        current = by_key.get(key)
        if needs_apply(obj, current):
            target = out.updated if current is not None else out.created
            writes.append((f"{key[0]}/{key[1]}", target, functools.partial(_apply, kube, obj)))
    if prune:
        for key, obj in by_key.items():
            if key not in wanted:
                meta = obj["metadata"]
                delete = functools.partial(
                    kube.delete, obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]
                )
                writes.append((f"{key[0]}/{key[1]}", out.deleted, delete))
    if not writes:
        return out
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(writes)))) as pool:
        futures = [(name, target, pool.submit(call)) for name, target, call in writes]
    errors = []
    for name, target, future in futures:
        err = future.exception()
        if err is not None:
            errors.append(err)
        elif future.result() is not False:  # delete() returns False when the object was already gone
            target.append(name)
    if errors:
        raise errors[0]
    return out
