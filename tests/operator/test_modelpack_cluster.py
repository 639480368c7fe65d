"""ModelPack reconciliation against the real control plane, with the operator running as a process.

kwok marks scheduled pods Ready, so a server Deployment becomes available exactly when the scheduler
finds a node for its pods: the arch selectors, taints and resources are exercised for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack.serving import STORE_UNAVAILABLE_EXIT
from modelpack_operator import labels as L
from modelpack_operator.builders.routes import read_routes, route_table_names
from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.cluster.process import free_port
from tests.operator.factories import pack_doc
from tests.operator.harness import MODELPACK, OperatorProcess, condition, events_for, get_status, wait_until
from tests.operator.local_pods import report_pod_status

pytestmark = pytest.mark.cluster
API = "modelpack.dev/v1alpha1"


def _apply(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)


def _servers(kube: Kube, namespace: str, pack: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in kube.list("apps/v1", "Deployment", namespace, L.pack_selector(pack))}


def _ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = get_status(kube, "ModelPack", namespace, name)
    return status if status.get("phase") == "Ready" else None


def test_pack_becomes_ready_with_servers_routes_and_true_status(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    assert _apply(crds, namespace, pack_doc(namespace=namespace)).returncode == 0
    status = wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)
    assert status["servers"] == 3 and status["readyServers"] == 3
    assert status["models"] == 5 and status["readyModels"] == 5
    assert status["routeTable"] == "bert-routes"
    assert status["routes"]["model-00004"] == f"http://bert-s0002.{namespace}.svc.cluster.local:8080"
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Degraded")["status"] == "False"
    assert status["observedGeneration"] == 1
    servers = _servers(kube, namespace, "bert")
    assert sorted(servers) == ["bert-s0000", "bert-s0001", "bert-s0002"]
    pods = kube.list("v1", "Pod", namespace, f"{L.PACK}=bert")
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert all(n.startswith("graviton") for n in nodes), nodes  # arm64 selector honoured by the real scheduler
    services = kube.list("v1", "Service", namespace, L.pack_selector("bert"))
    assert sorted(s["metadata"]["name"] for s in services) == sorted(servers)
    wait_until(
        lambda: {"ServersCreated", "Ready"} <= {e["reason"] for e in events_for(kube, namespace, "bert")},
        "ServersCreated and Ready events",
        op=op,
    )


def test_reconcile_is_idempotent_no_writes_once_converged(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    port, liveness = free_port(), free_port()
    op = start_operator(metrics_port=port, liveness_port=liveness)
    assert _apply(crds, namespace, pack_doc(namespace=namespace)).returncode == 0
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)

    def versions() -> dict[str, str]:
        objs = [
            *kube.list("apps/v1", "Deployment", namespace),
            *kube.list("v1", "Service", namespace),
            *kube.list("v1", "ConfigMap", namespace, f"{L.PACK}=bert"),
            *kube.list(API, "ModelPack", namespace),
        ]
        return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in objs}

    before = versions()
    resyncs = op.log().count("modelpack ")
    wait_until(lambda: op.log().count("modelpack ") >= resyncs + 3, "three more reconciles", op=op)
    assert versions() == before
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        scraped = resp.read().decode()
    ok = re.search(r'modelpack_operator_reconciles_total\{kind="ModelPack",result="ok"\} (\d+)', scraped)
    assert ok is not None and int(ok.group(1)) >= 3
    with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=5) as resp:  # the chart's probe
        assert resp.status == 200


def test_density_change_repacks_and_deletes_servers_no_longer_needed(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    assert _apply(crds, namespace, pack_doc(namespace=namespace)).returncode == 0
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)
    assert _apply(crds, namespace, pack_doc(namespace=namespace, modelsPerServer=5)).returncode == 0
    wait_until(lambda: list(_servers(kube, namespace, "bert")) == ["bert-s0000"], "servers 1 and 2 deleted", op=op)
    status = wait_until(
        lambda: (s := _ready(kube, namespace, "bert")) and s["observedGeneration"] == 2 and s, "repacked Ready", op=op
    )
    assert status["servers"] == 1 and status["readyModels"] == 5
    args = _servers(kube, namespace, "bert")["bert-s0000"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--models") + 1] == ",".join(f"model-{i:05d}" for i in range(5))
    wait_until(
        lambda: {e["reason"] for e in events_for(kube, namespace, "bert")} >= {"ServersDeleted", "ServersUpdated"},
        "ServersDeleted and ServersUpdated events",
        op=op,
    )


def test_adding_models_keeps_existing_models_on_their_servers(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    names = ["a", "b", "c", "d"]
    assert _apply(crds, namespace, pack_doc(namespace=namespace, models={"names": names})).returncode == 0
    first = wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)["routes"]
    changed = pack_doc(namespace=namespace, models={"names": ["b", "c", "d", "e"]})
    assert _apply(crds, namespace, changed).returncode == 0
    second = wait_until(
        lambda: (s := _ready(kube, namespace, "bert")) and s["observedGeneration"] == 2 and s["routes"],
        "pack Ready after the change",
        op=op,
    )
    assert {m: second[m] for m in ("b", "c", "d")} == {m: first[m] for m in ("b", "c", "d")}
    assert second["e"] == first["a"]  # the new model fills the gap the removed one left


def test_server_deleted_or_edited_by_hand_is_restored(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    assert _apply(crds, namespace, pack_doc(namespace=namespace)).returncode == 0
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)
    old_uid = _servers(kube, namespace, "bert")["bert-s0001"]["metadata"]["uid"]
    crds.kubectl("delete", "deployment", "bert-s0001", "-n", namespace)
    wait_until(
        lambda: (d := _servers(kube, namespace, "bert").get("bert-s0001")) and d["metadata"]["uid"] != old_uid,
        "bert-s0001 recreated",
        op=op,
    )
    crds.kubectl("scale", "deployment", "bert-s0000", "-n", namespace, "--replicas=4")
    wait_until(
        lambda: _servers(kube, namespace, "bert")["bert-s0000"]["spec"]["replicas"] == 1, "replicas restored", op=op
    )
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready again", op=op)


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    small = {"type": "x86", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}  # 40 pods fit 2 nodes
    doc = pack_doc(namespace=namespace, models={"count": 40}, modelsPerServer=1, compute=small)
    assert _apply(crds, namespace, doc).returncode == 0
    wait_until(lambda: len(_servers(kube, namespace, "bert")) >= 1, "the first servers", op=op)
    op.kill()
    partial = len(_servers(kube, namespace, "bert"))
    start_operator()
    expected = [f"bert-s{i:04d}" for i in range(40)]
    wait_until(lambda: sorted(_servers(kube, namespace, "bert")) == expected, "exactly the 40 servers")
    status = wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready after restart", timeout=120)
    assert status["servers"] == 40 and status["readyModels"] == 40
    assert len(kube.list("v1", "Service", namespace, L.pack_selector("bert"))) == 40
    assert partial <= 40


def test_deleting_the_pack_garbage_collects_its_objects(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    assert _apply(crds, namespace, pack_doc(namespace=namespace)).returncode == 0
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)
    crds.kubectl("delete", "modelpacks.modelpack.dev", "bert", "-n", namespace)
    wait_until(
        lambda: (
            not _servers(kube, namespace, "bert")
            and not kube.list("v1", "ConfigMap", namespace, f"{L.PACK}=bert")
            and not kube.list("v1", "Service", namespace, L.pack_selector("bert"))
        ),
        "owned objects garbage-collected",
        op=op,
    )


def test_missing_pvc_store_is_reported_as_degraded_with_an_event(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    doc = pack_doc(namespace=namespace, store={"uri": "pvc://no-such-claim/fleet"})
    assert _apply(crds, namespace, doc).returncode == 0
    status = wait_until(
        lambda: (s := get_status(kube, "ModelPack", namespace, "bert")).get("phase") == "Degraded" and s,
        "pack Degraded",
        op=op,
    )
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "StoreUnavailable"
    assert "no-such-claim" in degraded["message"] and "spec.store.uri" in degraded["message"]
    wait_until(  # the Event follows the status write
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "StoreUnavailable" and "no-such-claim" in e["message"]
            for e in events_for(kube, namespace, "bert")
        ),
        "StoreUnavailable warning event",
        op=op,
    )
    assert op.alive()


def test_duplicate_model_names_are_refused_at_admission(crds: ControlPlane, kube: Kube, namespace: str) -> None:
    result = _apply(crds, namespace, pack_doc(namespace=namespace, models={"names": ["a", "b", "a"]}))
    assert result.returncode != 0
    assert "spec.models.names[2]: Duplicate value" in result.stderr
    assert not _servers(kube, namespace, "bert")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"compute": {"type": "tpu"}}, "spec.compute.type"),
        ({"modelsPerServer": 0}, "spec.modelsPerServer"),
        ({"models": {"count": 3, "names": ["a"]}}, "set exactly one of models.names or models.count"),
        ({"store": {"uri": "ftp://x"}}, "spec.store.uri"),
    ],
)
def test_invalid_specs_are_refused_by_the_crd_schema(
    crds: ControlPlane, namespace: str, spec: dict[str, Any], named: str
) -> None:
    result = _apply(crds, namespace, pack_doc(namespace=namespace, **spec))
    assert result.returncode != 0
    assert named in result.stderr


def test_a_large_route_table_is_split_and_stale_shards_are_deleted_when_it_shrinks(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator({"MODELPACK_RECONCILE_ROUTE_TABLE_SHARD_BYTES": "600"})
    big = pack_doc(namespace=namespace, models={"count": 40}, modelsPerServer=4)  # ~370 bytes of routes per server
    assert _apply(crds, namespace, big).returncode == 0
    status = wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready", op=op)
    shards = kube.list("v1", "ConfigMap", namespace, L.routes_selector("bert"))
    assert status["routeTableShards"] == len(shards) >= 3
    assert {cm["metadata"]["name"] for cm in shards} == set(route_table_names("bert", len(shards)))
    table = read_routes(shards)
    assert len(table) == 40 and table["model-00039"] == f"http://bert-s0009.{namespace}.svc.cluster.local:8080"

    small = pack_doc(namespace=namespace, models={"count": 3}, modelsPerServer=4)
    assert _apply(crds, namespace, small).returncode == 0
    wait_until(
        lambda: (s := _ready(kube, namespace, "bert")) and s["observedGeneration"] == 2 and s["routeTableShards"] == 1,
        "pack Ready at generation 2 in one shard",
        op=op,
    )
    shards = kube.list("v1", "ConfigMap", namespace, L.routes_selector("bert"))
    assert [cm["metadata"]["name"] for cm in shards] == ["bert-routes"]
    assert sorted(read_routes(shards)) == [f"model-{i:05d}" for i in range(3)]


def _run_server_once(
    deployment: dict[str, Any], env: dict[str, str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Run the Deployment's server container command to its end, as a kubelet would start it."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelpack", "serve"]
    declared = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    local = {"PATH": os.environ["PATH"], "HOME": str(workdir), "MODELPACK_CACHE_DIR": str(workdir / "cache")}
    return subprocess.run(
        [MODELPACK, "serve", *container["args"]],
        env={**declared, **local, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_server_that_cannot_read_its_store_degrades_the_pack_in_the_servers_own_words(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess], tmp_path: Path
) -> None:
    op = start_operator({"MODELPACK_RECONCILE_POD_CHECK_AFTER_SECONDS": "0"})
    doc = pack_doc(namespace=namespace, store={"uri": "s3://no-such-bucket/fleet", "region": "us-east-1"})
    assert _apply(crds, namespace, doc).returncode == 0
    wait_until(lambda: _ready(kube, namespace, "bert"), "pack Ready (kwok starts pods without running them)", op=op)
    deployment = _servers(kube, namespace, "bert")["bert-s0001"]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    )

    # The real server command against an S3 endpoint nobody listens on: it exits with the store status.
    unreachable = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_MAX_ATTEMPTS": "1",
    }
    crashed = _run_server_once(deployment, unreachable, tmp_path)
    assert crashed.returncode == STORE_UNAVAILABLE_EXIT, crashed.stderr

    # What the kubelet then reports for the pod: not ready, crash-looping, the log tail as termination message.
    [pod] = kube.list("v1", "Pod", namespace, f"{L.PACK}=bert,{L.SERVER}=1")
    crash = {
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {
            "terminated": {"exitCode": crashed.returncode, "reason": "Error", "message": crashed.stderr[-2048:]}
        },
    }
    not_ready = [{"type": t, "status": "False"} for t in ("Ready", "ContainersReady")]
    report_pod_status(crds, pod, {"conditions": not_ready}, **{pod["spec"]["containers"][0]["name"]: crash})

    def degraded() -> dict[str, Any] | None:
        status = get_status(kube, "ModelPack", namespace, "bert")
        return status if status.get("phase") == "Degraded" else None

    status = wait_until(degraded, "pack Degraded", timeout=90, op=op)
    reason = condition(status, "Degraded")
    assert reason["reason"] == "StoreUnavailable", reason
    assert reason["message"].startswith(f"pod {pod['metadata']['name']}: CrashLoopBackOff, exit 4: ")
    assert "store unavailable: cannot read s3://no-such-bucket/fleet: Could not connect" in reason["message"]
    assert status["readyServers"] == 2 and status["readyModels"] == 3
    wait_until(
        lambda: (
            "StoreUnavailable" in {e["reason"] for e in events_for(kube, namespace, "bert") if e["type"] == "Warning"}
        ),
        "a StoreUnavailable Warning event",
        op=op,
    )
