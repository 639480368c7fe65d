"""Argo CD as far as the tests need it: its health scripts run in gopher-lua (``argocd-lua``, built from Go
modules), its field manager and tracking annotation for server-side applies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.cluster.binaries import ensure_argocd_lua
from tests.operator.harness import ROOT

HEALTH_FILES = ROOT / "helm" / "modelpack" / "files"
FIELD_MANAGER = "argocd-controller"
"""The manager name Argo CD's application controller applies with (server-side apply syncs)."""
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"


def tracking_id(app: str, kind: str, namespace: str, name: str, group: str = "modelpack.dev") -> str:
    """Argo CD's annotation value for a resource of application ``app``: ``<app>:<group>/<kind>:<ns>/<name>``."""
    return f"{app}:{group}/{kind}:{namespace}/{name}"


def health(kind: str, obj: dict[str, Any], binary: Path | None = None) -> tuple[str, str]:
    """(status, message) of the chart's health script for ``kind`` ("modelpack" or "loadtest") on ``obj``."""
    lua = binary or ensure_argocd_lua()
    script = HEALTH_FILES / f"argocd-health-{kind}.lua"
    proc = subprocess.run(
        [str(lua), str(script)], input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script.name} failed in gopher-lua: {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    return out["status"], out["message"]
