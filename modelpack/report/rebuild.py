"""Rebuild report.html from a results directory: results.json, timeline.json, servers.json, run.json, objects.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from modelpack.api.loading import parse_object
from modelpack.api.loadtest import LoadTest, LoadTestStatus
from modelpack.report.data import ReportData, ServerInfo
from modelpack.report.render import write_report


class RebuildError(ValueError):
    """A directory that is not a complete `modelpack run` results directory; the message names the file."""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise RebuildError(f"{path}: no such file (is {path.parent} a modelpack results directory?)") from None


def load_report_data(out: Path) -> ReportData:
    status = LoadTestStatus.model_validate(json.loads(_read(out / "results.json")))
    objects = [parse_object(d, str(out / "objects.yaml")) for d in yaml.safe_load_all(_read(out / "objects.yaml")) if d]
    loadtest = next((o for o in objects if isinstance(o, LoadTest)), None)
    if loadtest is None:
        raise RebuildError(f"{out / 'objects.yaml'}: no LoadTest in it")
    run = json.loads(_read(out / "run.json"))
    timeline = json.loads(_read(out / "timeline.json"))
    servers = [ServerInfo(**s) for s in json.loads(_read(out / "servers.json"))]
    return ReportData(
        loadtest=loadtest,
        status=status,
        timeline=timeline,
        servers=servers,
        pack_name=run.get("pack"),
        machine=run.get("machine", ""),
        notes=run.get("notes", []),
    )


def rebuild(out: Path) -> Path:
    return write_report(load_report_data(out), out / "report.html")
