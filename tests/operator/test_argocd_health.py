"""The chart's Argo CD health checks, run by a real Lua 5.1 interpreter (Argo CD's dialect) on real statuses."""

from __future__ import annotations

from typing import Any

import pytest
from lupa import lua51

from modelpack.placement import place
from modelpack_operator.reconcile.pack_status import PackObservation, ServerHealth, compute_status
from tests.operator.harness import ROOT

FILES = ROOT / "helm" / "modelpack" / "files"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    lua.execute(f"function __health()\n{(FILES / f'argocd-health-{kind}.lua').read_text()}\nend")
    hs = lua.globals().__health()
    return str(hs.status), str(hs.message or "")


def _pack(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def _status(ready: list[bool], **kw: Any) -> dict[str, Any]:
    placement = place([f"m{i}" for i in range(len(ready))], 1)
    health_of = {i: ServerHealth(r, not r and kw.get("rolling", True), None) for i, r in enumerate(ready)}
    obs = PackObservation(1, placement, health_of, 1, "p-routes", None, kw.get("previous", {}), None, kw.get("store"))
    return compute_status(obs)


def test_modelpack_health_follows_the_operator_status() -> None:
    assert health("modelpack", _pack(None)) == ("Progressing", "Waiting for the modelpack operator")
    assert health("modelpack", _pack(_status([True, True]))) == ("Healthy", "2/2 servers ready, 2/2 models servable")
    assert health("modelpack", _pack(_status([True, False])))[0] == "Progressing"
    status, message = health("modelpack", _pack(_status([False], store="claim x missing")))
    assert (status, message) == ("Degraded", "StoreUnavailable: claim x missing")
    stale = _pack(_status([True]), generation=2)
    assert health("modelpack", stale) == ("Progressing", "Waiting for the operator to observe generation 2")


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        ("Pending", "ModelPackNotFound", "Progressing"),
        ("Running", "Running", "Progressing"),
        ("Succeeded", "Succeeded", "Healthy"),
        ("Failed", "SLOMissed", "Degraded"),
    ],
)
def test_loadtest_health_by_phase(phase: str, reason: str, expected: str) -> None:
    obj = {"status": {"phase": phase, "conditions": [{"type": "Complete", "reason": reason, "message": "why"}]}}
    assert health("loadtest", obj) == (expected, f"{reason}: why")
