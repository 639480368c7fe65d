"""The chart's Argo CD health checks, run in gopher-lua (the interpreter Argo CD embeds, with Argo CD's library
sandbox) on statuses the operator's own code computes: pack statuses from ``compute_status``, LoadTest statuses
from reconciling a LoadTest against an in-memory API through its whole life, an edited spec included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelpack.api.common import API_VERSION
from modelpack.api.loadtest import LoadTestStatus
from modelpack.api.modelpack import ModelPackStatus
from modelpack.placement import place
from modelpack_operator.reconcile import loadtest as R
from modelpack_operator.reconcile.pack_status import PackObservation, ServerHealth, compute_status
from modelpack_operator.results import result_configmap
from modelpack_operator.settings import OperatorSettings
from tests.cluster.binaries import ensure_argocd_lua
from tests.operator import argocd
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.memkube import MemKube
from tests.operator.test_reconcile_loadtest import READY, _outcome


@pytest.fixture(scope="module")
def lua() -> Path:
    return ensure_argocd_lua()


def _pack(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}}
    if status is not None:
        obj["status"] = ModelPackStatus.model_validate(status).to_dict()  # the typed status, as the CRD stores it
    return obj


def _status(ready: list[bool], **kw: Any) -> dict[str, Any]:
    placement = place([f"m{i}" for i in range(len(ready))], 1)
    health_of = {i: ServerHealth(r, not r and kw.get("rolling", True), None) for i, r in enumerate(ready)}
    obs = PackObservation(1, placement, health_of, 1, "p-routes", None, kw.get("previous", {}), None, kw.get("store"))
    return compute_status(obs)


def test_modelpack_health_follows_the_operator_status(lua: Path) -> None:
    assert argocd.health("modelpack", _pack(None), lua) == ("Progressing", "Waiting for the modelpack operator")
    ready = argocd.health("modelpack", _pack(_status([True, True])), lua)
    assert ready == ("Healthy", "2/2 servers ready, 2/2 models servable")
    assert argocd.health("modelpack", _pack(_status([True, False])), lua)[0] == "Progressing"
    status, message = argocd.health("modelpack", _pack(_status([False], store="claim x missing")), lua)
    assert (status, message) == ("Degraded", "StoreUnavailable: claim x missing")
    stale = _pack(_status([True]), generation=2)
    assert argocd.health("modelpack", stale, lua) == ("Progressing", "Waiting for the operator to observe generation 2")


class _Life:
    """One LoadTest reconciled by the operator's code; ``obj()`` is what Argo CD would read from the API."""

    def __init__(self) -> None:
        pack = pack_doc()
        self.kube = MemKube(pack, loadtest_doc())
        self.reconcile()  # no pack status yet: Pending
        pack["status"] = READY
        self.kube.put(pack)

    def obj(self) -> dict[str, Any]:
        lt = self.kube.get(API_VERSION, "LoadTest", "ns", "lt")
        assert lt is not None
        lt["metadata"].setdefault("generation", 1)
        if "status" in lt:
            LoadTestStatus.model_validate(lt["status"])  # a status the CRD's typed schema accepts
        return lt

    def reconcile(self) -> None:
        R.reconcile_loadtest(self.kube.as_kube(), self.obj(), OperatorSettings())

    def report(self, **kwargs: Any) -> None:
        lt = self.obj()
        generation = lt["metadata"]["generation"]
        self.kube.put(result_configmap("lt", lt["metadata"]["uid"], "ns", 0, generation=generation, **kwargs))

    def edit(self) -> None:
        lt = self.obj()
        lt["spec"]["load"]["rate"] = 30
        lt["metadata"]["generation"] += 1
        self.kube.put(lt)


def test_loadtest_health_through_a_run_and_a_rerun(lua: Path) -> None:
    life = _Life()
    assert argocd.health("loadtest", {"metadata": {"name": "lt"}}, lua) == (
        "Progressing",
        "Waiting for the modelpack operator",
    )
    status, message = argocd.health("loadtest", life.obj(), lua)
    assert status == "Progressing" and message.startswith("WaitingForModelPack: waiting for ModelPack bert")
    life.reconcile()
    status, message = argocd.health("loadtest", life.obj(), lua)
    assert status == "Progressing" and message.startswith("Running: 1 workers of Job lt-load start sending")
    life.report(outcome=_outcome(100))
    life.reconcile()
    status, message = argocd.health("loadtest", life.obj(), lua)
    assert status == "Healthy" and message.startswith("Succeeded: 50.0 successful req/s, 0 errors of 100")
    life.edit()  # synced from Git, not yet seen by the operator
    assert argocd.health("loadtest", life.obj(), lua) == ("Progressing", "Waiting for the operator to run generation 2")
    life.reconcile()
    status, message = argocd.health("loadtest", life.obj(), lua)
    assert status == "Progressing" and "Job lt-load-g2" in message
    life.report(outcome=_outcome(10, errors=90))
    life.reconcile()
    status, message = argocd.health("loadtest", life.obj(), lua)
    assert status == "Degraded" and message.startswith("RequestsFailed: ")


def test_an_unknown_status_or_a_broken_script_is_reported_as_argo_cd_would(lua: Path, tmp_path: Path) -> None:
    script = tmp_path / "bad.lua"
    script.write_text('hs = {}\nhs.status = "Fine"\nreturn hs\n')
    proc = subprocess.run([str(lua), str(script)], input="{}", capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == {"status": "Unknown", "message": "Lua returned an invalid health status"}
    script.write_text('return {status = string.upper("healthy")}\n')  # no string library in Argo CD's sandbox
    proc = subprocess.run([str(lua), str(script)], input="{}", capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "attempt to index a non-table object(nil) with key 'upper'" in proc.stderr
    proc = subprocess.run([str(lua), str(script)], input="{", capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "the object on stdin is not JSON" in proc.stderr
