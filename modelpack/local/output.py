"""The results directory of a run: results.json (the LoadTest status), report.html and what the report was made of.

``results.json`` is exactly the status the operator would write (camelCase), so tools that read a
LoadTest from the cluster read a local run the same way. ``timeline.json``, ``servers.json``, ``run.json``
and ``objects.yaml`` (the objects that ran) keep what the report shows, so ``python -m modelpack.report DIR``
rebuilds the report without re-running.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import yaml

from modelpack.api.base import ApiModel
from modelpack.api.loadtest import LoadTestStatus
from modelpack.report import ReportData, write_report


def default_out_dir(base: Path, loadtest: str, moment: datetime) -> Path:
    """``./modelpack-results/<loadtest>-<UTC timestamp>``; a suffix keeps two runs in one second apart."""
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    candidate = base / f"{loadtest}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = base / f"{loadtest}-{stamp}-{n}"
    return candidate


def status_json(status: LoadTestStatus) -> str:
    return json.dumps(status.to_dict(), indent=2) + "\n"


def write_results(out: Path, data: ReportData, objects: Sequence[ApiModel] = ()) -> Path:
    """Write every file; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(status_json(data.status))
    docs = [o.to_dict() for o in (objects or [data.loadtest])]
    (out / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    (out / "timeline.json").write_text(json.dumps(list(data.timeline), indent=1) + "\n")
    servers = [
        {
            **asdict(s),
            "models": list(s.models),
            "metrics_start": dict(s.metrics_start),
            "metrics_end": dict(s.metrics_end),
        }
        for s in data.servers
    ]
    (out / "servers.json").write_text(json.dumps(servers, indent=1) + "\n")
    run = {"machine": data.machine, "notes": list(data.notes), "pack": data.pack_name}
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    return write_report(data, out / "report.html")
