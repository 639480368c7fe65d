"""GitOps on the real control plane: objects applied as Argo CD applies them (server-side apply, field manager
``argocd-controller``, its tracking annotation) stay Argo CD's; an edited LoadTest runs again.

- A pack synced by Argo CD: after the operator reconciles it (and again), the only fields its manager owns are
  under ``status``; Argo CD's manager still owns everything it applied; re-applying the same manifest changes
  nothing (in sync), and neither does the server-side dry run Argo CD's server-side diff makes. No child object
  carries the tracking annotation or ``app.kubernetes.io/instance`` (Argo CD would take it for its own).
- A LoadTest whose spec changes in Git: a second run, under a Job of its own, and a history of 2.
- The chart's health scripts, in gopher-lua, on the live objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack_operator import labels as L
from modelpack_operator.kube import Kube
from tests.cluster.binaries import ensure_argocd_lua
from tests.cluster.controlplane import ControlPlane
from tests.operator import argocd
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.harness import OperatorProcess, condition, events_for, get_status, wait_until
from tests.operator.local_pods import LocalProcess
from tests.operator.test_loadtest_cluster import (  # the same pack, servers and workers as the LoadTest tests
    MODELS,
    PENDING_WORKERS,
    SMALL,
    _finished,
    _local_servers,
    _run_workers,
    processes,
    store,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
__all__ = ["processes", "store"]  # fixtures, imported for pytest
APP = "fleet"
GROUP_VERSION = "modelpack.dev/v1alpha1"


def _argocd_sync(cp: ControlPlane, namespace: str, doc: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Apply ``doc`` as Argo CD's server-side apply sync does: its field manager, its tracking annotation."""
    doc = json.loads(json.dumps(doc))
    meta = doc["metadata"]
    meta.setdefault("annotations", {})[argocd.TRACKING_ANNOTATION] = argocd.tracking_id(
        APP, doc["kind"], namespace, meta["name"]
    )
    args = ["apply", "-n", namespace, "--server-side", f"--field-manager={argocd.FIELD_MANAGER}", "-o", "json"]
    if dry_run:
        args.append("--dry-run=server")
    out = cp.kubectl(*args, "-f", "-", input=yaml.safe_dump(doc)).stdout
    return dict(json.loads(out))


def _managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """managedFields by (manager, subresource) -> the fields it owns."""
    return {(m["manager"], m.get("subresource", "")): m.get("fieldsV1", {}) for m in obj["metadata"]["managedFields"]}


def _assert_operator_owns_only_status(obj: dict[str, Any]) -> None:
    managers = _managers(obj)
    ours = {key: fields for key, fields in managers.items() if key[0] == L.FIELD_MANAGER}
    assert set(ours) == {(L.FIELD_MANAGER, "status")}, f"operator owns more than status: {sorted(ours)}"
    assert set(ours[(L.FIELD_MANAGER, "status")]) == {"f:status"}
    theirs = managers[(argocd.FIELD_MANAGER, "")]
    assert "f:spec" in theirs and f"f:{argocd.TRACKING_ANNOTATION}" in theirs["f:metadata"]["f:annotations"]


def _in_sync(live: dict[str, Any], predicted: dict[str, Any]) -> bool:
    """What Argo CD's server-side diff compares: the dry-run result of the desired manifest against the live one."""
    return all(live.get(k) == predicted.get(k) for k in ("spec",)) and all(
        live["metadata"].get(k) == predicted["metadata"].get(k) for k in ("labels", "annotations", "finalizers")
    )


def test_a_pack_synced_by_argo_cd_stays_argo_cds(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    lua = ensure_argocd_lua()
    doc = pack_doc(namespace=namespace, models={"names": MODELS}, compute=SMALL)
    doc["metadata"]["labels"] = {"team": "search"}
    first = _argocd_sync(crds, namespace, doc)
    op = start_operator()
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "pack Ready", op=op)
    # Make it reconcile again, from a child's event and from resyncs: a server Deployment deleted is restored.
    servers = kube.list("apps/v1", "Deployment", namespace, L.pack_selector("bert"))
    assert servers
    assert kube.delete("apps/v1", "Deployment", namespace, servers[0]["metadata"]["name"])
    wait_until(
        lambda: len(kube.list("apps/v1", "Deployment", namespace, L.pack_selector("bert"))) == len(servers),
        "server restored",
        op=op,
    )
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "Ready again", op=op)
    live = crds.kubectl_json("get", "modelpack", "bert", "-n", namespace, "--show-managed-fields")
    _assert_operator_owns_only_status(live)
    assert live["metadata"].get("finalizers") is None  # nothing blocks Argo CD's prune or a cascade delete
    assert live["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert live["status"]["observedGeneration"] == 1
    assert live["spec"] == first["spec"]  # the API server's defaults are in both: what Argo CD compares
    # In sync: the server-side diff's dry run predicts the live object, and a real re-sync changes nothing.
    assert _in_sync(live, _argocd_sync(crds, namespace, doc, dry_run=True))
    again = _argocd_sync(crds, namespace, doc)
    assert again["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    # The children are the operator's, marked as the pack's, never as Argo CD's.
    for kind, api_version in (("Deployment", "apps/v1"), ("Service", "v1"), ("ConfigMap", "v1")):
        children = kube.list(api_version, kind, namespace, L.pack_selector("bert"))
        assert children, kind
        for child in children:
            meta = child["metadata"]
            assert argocd.TRACKING_ANNOTATION not in (meta.get("annotations") or {}), meta["name"]
            assert "app.kubernetes.io/instance" not in (meta.get("labels") or {}), meta["name"]
            assert meta["ownerReferences"][0]["kind"] == "ModelPack", meta["name"]
    assert argocd.health("modelpack", live, lua)[0] == "Healthy"


def test_a_loadtest_edited_in_git_runs_again_with_a_history_of_two(
    crds: ControlPlane,
    kube: Kube,
    namespace: str,
    store: Path,
    tmp_path: Path,
    processes: list[LocalProcess],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    lua = ensure_argocd_lua()
    op = start_operator(PENDING_WORKERS)
    pack = pack_doc(namespace=namespace, store={"uri": f"file://{store}"}, models={"names": MODELS}, compute=SMALL)
    _argocd_sync(crds, namespace, pack)
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "pack Ready", op=op)
    service_urls = _local_servers(kube, namespace, tmp_path, processes)
    doc = loadtest_doc(namespace=namespace, load={"rate": 20, "duration": "2s", "warmup": "500ms"})
    created = _argocd_sync(crds, namespace, doc)
    # Defaults Git never set, filled in by the API server: what a client-side diff cannot predict.
    assert "payload" not in doc["spec"] and created["spec"]["payload"] == {"mode": "generated", "batchSize": 1}
    assert _in_sync(created, _argocd_sync(crds, namespace, doc, dry_run=True))

    def job(name: str) -> dict[str, Any]:
        return wait_until(lambda: kube.get("batch/v1", "Job", namespace, name), f"Job {name}", op=op)

    def finished(generation: int) -> dict[str, Any] | None:
        status = _finished(kube, namespace, "lt")
        return status if status and status.get("observedGeneration") == generation else None

    assert _run_workers(crds, kube, job("lt-load"), service_urls, tmp_path / "g1", processes) == [0]
    first = wait_until(lambda: finished(1), "first run finished", op=op)
    assert first["phase"] == "Succeeded", condition(first, "Complete")["message"]
    live = crds.kubectl_json("get", "loadtest", "lt", "-n", namespace)
    assert argocd.health("loadtest", live, lua)[0] == "Healthy"

    # The spec changes in Git and Argo CD syncs it: accepted (no immutability error), a new generation.
    doc["spec"]["load"]["rate"] = 40
    synced = _argocd_sync(crds, namespace, doc)
    assert synced["metadata"]["generation"] == 2
    second_job = job("lt-load-g2")
    assert second_job["metadata"]["labels"][L.GENERATION] == "2"
    running = wait_until(
        lambda: (s := get_status(kube, "LoadTest", namespace, "lt")).get("observedGeneration") == 2 and s,
        "second run started",
        op=op,
    )
    assert running["phase"] == "Running" and "results" not in running
    assert [h["generation"] for h in running["history"]] == [1]
    status, message = argocd.health("loadtest", crds.kubectl_json("get", "loadtest", "lt", "-n", namespace), lua)
    assert status == "Progressing" and "-g2" in message  # the new run's Job or results
    wait_until(lambda: kube.get("batch/v1", "Job", namespace, "lt-load") is None, "first Job deleted", op=op)
    assert _run_workers(crds, kube, second_job, service_urls, tmp_path / "g2", processes) == [0]
    done = wait_until(lambda: finished(2), "second run finished", op=op)
    assert done["phase"] == "Succeeded", condition(done, "Complete")["message"]
    assert all(c["observedGeneration"] == 2 for c in done["conditions"])
    history = done["history"]
    assert [(h["generation"], h["phase"]) for h in history] == [(2, "Succeeded"), (1, "Succeeded")]
    assert history[1]["throughput"] == first["results"]["throughput"]
    assert history[0]["throughput"] == done["results"]["throughput"]
    assert history[0]["requests"] > history[1]["requests"]  # twice the rate for as long
    assert any(e["reason"] == "SpecChanged" for e in events_for(kube, namespace, "lt"))
    live = crds.kubectl_json("get", "loadtest", "lt", "-n", namespace, "--show-managed-fields")
    _assert_operator_owns_only_status(live)
    assert argocd.health("loadtest", live, lua)[0] == "Healthy"
    # `kubectl get lt` shows the newest run.
    row = crds.kubectl("get", "lt", "lt", "-n", namespace, "--no-headers").stdout.split()
    assert row[:2] == ["lt", "Succeeded"] and float(row[2]) == pytest.approx(done["results"]["throughput"], rel=0.01)
