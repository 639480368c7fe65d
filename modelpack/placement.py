"""Which models go on which server: one function, used by the operator and the local runtime alike.

Placement is deterministic and stable. Given the previous assignment, models that remain keep their
server; new models first fill the gaps that removals left, then open new servers. Only a change of
``modelsPerServer`` (an explicit request to repack) starts from scratch, in model order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Server:
    """One server group: a Deployment (and Service) holding these models."""

    index: int
    models: tuple[str, ...]

    def name(self, pack: str) -> str:
        return server_name(pack, self.index)


@dataclass(frozen=True)
class Placement:
    """The whole pack's assignment, servers ordered by index."""

    models_per_server: int
    servers: tuple[Server, ...]
    server_of: Mapping[str, int] = field(repr=False)

    def assignment(self) -> dict[str, int]:
        """model -> server index; what the next call to :func:`place` needs as ``previous``."""
        return dict(self.server_of)


def server_name(pack: str, index: int) -> str:
    """Deployment/Service name of server ``index``; short enough for a DNS label with a pack of 50 chars."""
    return f"{pack}-s{index:04d}"


def place(
    models: Sequence[str],
    models_per_server: int,
    previous: Mapping[str, int] | None = None,
    previous_models_per_server: int | None = None,
) -> Placement:
    """Assign ``models`` to servers of ``models_per_server`` each.

    ``previous`` is the last assignment (model -> server index). It is honoured unless the density
    changed, in which case the pack is repacked in model order.
    """
    if models_per_server < 1:
        raise ValueError("models_per_server must be at least 1")
    if len(set(models)) != len(models):
        dupes = sorted({m for m in models if models.count(m) > 1})
        raise ValueError(f"duplicate model names: {', '.join(dupes[:5])}")
    if previous_models_per_server not in (None, models_per_server):
        previous = None
    order = {m: i for i, m in enumerate(models)}
    buckets: dict[int, list[str]] = {}
    for model, index in (previous or {}).items():
        if model in order and index >= 0:
            buckets.setdefault(index, []).append(model)
    # A previous assignment can only exceed the density if it was hand-edited: shed the excess.
    placed: dict[str, int] = {}
    for index, bucket in buckets.items():
        bucket.sort(key=order.__getitem__)
        for model in bucket[:models_per_server]:
            placed[model] = index
    pending = [m for m in models if m not in placed]
    counts: dict[int, int] = {}
    for index in placed.values():
        counts[index] = counts.get(index, 0) + 1
    gaps = sorted(i for i, n in counts.items() if n < models_per_server)
    next_index = max(counts, default=-1) + 1
    cursor = 0
    for model in pending:
        while cursor < len(gaps) and counts[gaps[cursor]] >= models_per_server:
            cursor += 1
        if cursor < len(gaps):
            index = gaps[cursor]
        else:
            if counts.get(next_index, 0) >= models_per_server:
                next_index += 1
            index = next_index
        placed[model] = index
        counts[index] = counts.get(index, 0) + 1
    grouped: dict[int, list[str]] = {}
    for model, index in placed.items():
        grouped.setdefault(index, []).append(model)
    servers = tuple(
        Server(index=i, models=tuple(sorted(ms, key=order.__getitem__))) for i, ms in sorted(grouped.items())
    )
    return Placement(models_per_server=models_per_server, servers=servers, server_of=placed)
