"""Conditions as Kubernetes conventions want them, for both runtimes: lastTransitionTime moves only when the
status changes.

Re-running a reconcile that observes the same state must produce the same status, byte for byte, so the
operator writes nothing (and no watch event fires) when nothing changed; ``modelpack run`` stamps the same
conditions once, with no previous status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Cond:
    """A condition as computed, before it meets the previous status."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def merge_conditions(
    previous: Iterable[dict[str, Any]] | None,
    computed: Iterable[Cond],
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """The new conditions list; a condition whose status is unchanged keeps its lastTransitionTime."""
    before = {c.get("type"): c for c in previous or []}
    stamp = now or now_rfc3339()
    out = []
    for cond in computed:
        old = before.get(cond.type)
        unchanged = old is not None and old.get("status") == cond.status_text and old.get("lastTransitionTime")
        item: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": old["lastTransitionTime"] if unchanged and old else stamp,
        }
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return out


def find(conditions: Iterable[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: Iterable[dict[str, Any]] | None, type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == "True"
