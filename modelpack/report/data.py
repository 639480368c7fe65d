"""What a report shows, independent of who ran the test (local runtime today, the operator later)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelpack.api.loadtest import LoadTest, LoadTestStatus


@dataclass(frozen=True)
class ServerInfo:
    """One server of the pack as the report lists it, with its counters at the start and end of the run."""

    name: str
    url: str
    models: Sequence[str]
    threads: int | None = None
    metrics_start: Mapping[str, float] = field(default_factory=dict)
    metrics_end: Mapping[str, float] = field(default_factory=dict)

    def metrics_delta(self) -> dict[str, float]:
        """What the run itself added to each counter (end minus start; end alone if start was not scraped)."""
        return {k: v - float(self.metrics_start.get(k, 0.0)) for k, v in self.metrics_end.items()}


@dataclass(frozen=True)
class ReportData:
    loadtest: LoadTest
    status: LoadTestStatus
    timeline: Sequence[Mapping[str, Any]] = ()
    servers: Sequence[ServerInfo] = ()
    pack_name: str | None = None
    machine: str = ""
    notes: Sequence[str] = ()
