"""Faults on real pods: a server crash mid-load, OOM kills at start and after Ready, the operator pod deleted, the
pack deleted.

Every wait polls what the API (or a server's own metrics) reports; no fixed sleeps: on this 2-core machine, shared
with other sessions, how long a pod takes to start varies by tens of seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from model_server.fleet import shape_for
from tests.cluster.controlplane import ControlPlane
from tests.cluster.realcluster import RealCluster
from tests.cluster.wait import wait_for
from tests.realnode.packs import (
    MODELS,
    PER_SERVER,
    RELEASE_NS,
    SERVER_SELECTOR,
    condition,
    control_plane,
    diagnose,
    fill_store,
    finished_loadtest,
    loadtest,
    operator_pods,
    pack,
    pack_events,
    ready_pack,
    status,
    store_volume,
    wait_pack,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]


def _served(cp: ControlPlane, ns: str, pod: dict[str, Any]) -> int:
    """Inference requests the server in ``pod`` has answered, from its own Prometheus counter (0 if unreadable)."""
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    read = (
        f"import urllib.request as u; t = u.urlopen('http://127.0.0.1:{port}/metrics', timeout=3).read().decode(); "
        "print(sum(float(x.split()[-1]) for x in t.splitlines() if x.startswith('modelpack_requests_total')))"
    )
    got = cp.kubectl("exec", pod["metadata"]["name"], "-n", ns, "--", "python", "-c", read, check=False)
    try:
        return int(float(got.stdout.strip()))
    except ValueError:
        return 0


def test_a_server_container_killed_mid_load_is_restarted_and_the_loadtest_counts_its_errors(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    """SIGKILL from the host (a crash, not a graceful stop) of one of two servers while the workers send."""
    cp, ns, node = control_plane(real_cluster), real_namespace, real_cluster.node
    assert node is not None
    pods = ready_pack(cp, ns, store, MODELS[: 2 * PER_SERVER])
    victim = pods[0]["metadata"]["name"]
    container_id = pods[0]["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    cp.apply([loadtest(ns, duration="30s", slo=False)], namespace=ns)
    # Kill inside the measured window, known from the victim's own counter, not from a guess of when the worker
    # pods started: it gets ~10 req/s, so 100 answered is past the 5 s warm-up with ~25 s of the window left.
    wait_for(lambda: _served(cp, ns, pods[0]) >= 100, f"{victim} answered 100 requests of the load", 180, 1)
    tasks = node.ctr("tasks", "ls").stdout.splitlines()[1:]
    (pid,) = [int(line.split()[1]) for line in tasks if line.split()[0] == container_id]
    os.kill(pid, 9)

    def restarted() -> bool:
        pod = cp.kubectl_json("get", "pod", victim, "-n", ns)
        (cs,) = pod["status"]["containerStatuses"]
        return bool(cs["restartCount"] >= 1 and cs["ready"])

    wait_for(restarted, f"{victim} restarted by the kubelet and Ready again", 180, 1)
    final = finished_loadtest(cp, ns, 240)
    results = final.get("results") or {}
    summary = {k: final.get(k) for k in ("phase", "workersSucceeded", "workersFailed", "conditions")}
    summary["results"] = {k: v for k, v in results.items() if not k.endswith("istogram") and k != "perModel"}
    assert final["phase"] == "Succeeded" and final["workersSucceeded"] == 2, f"{summary}\n{diagnose(cp, ns)}"
    # Open loop: every scheduled request is in the results, answered or failed; the crash's share failed.
    assert results["requests"] >= 20 * 30 * 0.8, summary
    assert 0 < results["errors"] < results["requests"], summary
    assert results["successes"] + results["errors"] == results["requests"], summary
    assert condition(final, "Complete")["status"] == "True", summary


def test_a_server_over_its_memory_limit_is_oom_killed_and_the_pack_says_so_in_a_condition_and_an_event(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    cp, ns = control_plane(real_cluster), real_namespace
    cp.apply(store_volume(ns, store))
    # 40 MiB: the interpreter starts, the server's imports do not fit; the kernel's OOM killer ends it.
    cp.apply([pack(ns, MODELS[:PER_SERVER], memory="40Mi")], namespace=ns)
    st = wait_pack(
        cp, ns, "Degraded reason OOMKilled", lambda s: condition(s, "Degraded").get("reason") == "OOMKilled" and s, 240
    )
    (pod,) = cp.kubectl_json("get", "pods", "-n", ns, "-l", SERVER_SELECTOR)["items"]
    (cs,) = pod["status"]["containerStatuses"]
    # What the kubelet saw, for real: the container died of the cgroup's OOM kill.
    assert (cs.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled", cs
    degraded = condition(st, "Degraded")
    assert st["phase"] == "Degraded" and degraded["status"] == "True", st
    assert f"pod {pod['metadata']['name']}: OOMKilled, exit 137" in degraded["message"], degraded
    assert "memory limit 40Mi" in degraded["message"] and "spec.server.memoryBudget" in degraded["message"], degraded
    assert condition(st, "Ready")["status"] == "False" and condition(st, "Progressing")["reason"] == "OOMKilled", st
    oom = pack_events(cp, ns, "OOMKilled")
    assert oom and oom[0]["type"] == "Warning" and "memory limit 40Mi" in oom[0]["message"], oom
    described = cp.kubectl("describe", "modelpack", "bert", "-n", ns).stdout
    print(described[-1500:])
    assert "Warning  OOMKilled" in described and "memory limit 40Mi" in described, described


# Measured in the server's container on this node (cgroup memory.stat): 312 MiB of anonymous memory at Ready, and
# the libraries' mapped pages on top (~220 MiB). Models of ~50 MiB each never reached an OOM kill under a limit
# just above that: once loads pushed the cgroup to its limit, the kernel reclaimed the libraries' pages, the
# server thrashed and the kubelet's liveness probe restarted it first. Two models of ~100 M parameters (8 layers,
# hidden 1024: ~400 MB of fp32 weights by count) do: one lazy load alone needs more anonymous memory than the
# 600Mi limit holds, so reclaim cannot help and the kernel's OOM killer ends the server within the load.
BIG_MODELS = ["big-0", "big-1"]
BIG_SHAPE = shape_for("small", layers=8, hidden=1024, seq_len=16, vocab_size=600)
BIG_LIMIT = "600Mi"


def test_a_server_oom_killed_after_ready_by_its_own_lazy_loads_is_one_warning_event_per_kill(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str
) -> None:
    """The kill the pack's conditions cannot show: the server was Ready, then a model loaded under load outgrew
    the limit (the 2Gi budget never asked the LRU to evict) and the kubelet restarted the container."""
    cp, ns = control_plane(real_cluster), real_namespace
    store = fill_store(real_cluster.network.state_dir / f"store-{ns}", BIG_MODELS, BIG_SHAPE)
    cp.apply(store_volume(ns, store))
    cp.apply([pack(ns, BIG_MODELS, memory=BIG_LIMIT, budget="2Gi")], namespace=ns)
    wait_pack(cp, ns, "ModelPack Ready", lambda s: s.get("phase") == "Ready")
    (pod,) = cp.kubectl_json("get", "pods", "-n", ns, "-l", SERVER_SELECTOR)["items"]
    name, container = pod["metadata"]["name"], pod["spec"]["containers"][0]["name"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, pod["status"]  # Ready before any kill
    cp.apply([loadtest(ns, duration="20s", slo=False)], namespace=ns)

    try:
        first = wait_for(lambda: pack_events(cp, ns, "ServerOOMKilled"), "a ServerOOMKilled Event", 240, 2)[0]
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{diagnose(cp, ns)}") from err
    assert first["type"] == "Warning" and first["involvedObject"]["name"] == "bert", first
    assert f"memory limit {BIG_LIMIT}" in first["message"] and "spec.server.memoryBudget" in first["message"], first
    final = finished_loadtest(cp, ns, 240)
    pod = cp.kubectl_json("get", "pod", name, "-n", ns)
    (cs,) = pod["status"]["containerStatuses"]
    # What the kubelet saw, for real: the container that had been Ready died of the cgroup's OOM kill.
    assert (cs.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled", cs
    restarts = int(cs["restartCount"])
    # One Event per kill, named for the restart it caused: never two for one kill, however often the pod is seen.
    kills = pack_events(cp, ns, "ServerOOMKilled")
    names = [e["metadata"]["name"] for e in kills]
    assert len(set(names)) == len(names) and all(e.get("count", 1) == 1 for e in kills), kills
    assert all(n.rsplit(".", 1)[0] == f"{name}.oomkilled.{container}" for n in names), names
    assert {int(n.rsplit(".", 1)[1]) for n in names} <= set(range(1, restarts + 1)), (names, restarts)
    print(f"[faults] {restarts} OOM restart(s) under load, Events: {names}")
    # The load test lost nothing: every scheduled request is answered or counted as an error. (Each restarted
    # server is killed again by its first load, so few or no requests succeed: Succeeded or Failed both finish.)
    results = final.get("results") or {}
    assert final["phase"] in ("Succeeded", "Failed") and condition(final, "Complete"), final.get("conditions")
    assert results["errors"] > 0 and results["successes"] + results["errors"] == results["requests"], results
    described = cp.kubectl("describe", "modelpack", "bert", "-n", ns).stdout
    assert "Warning  ServerOOMKilled" in described, described


def _owned(cp: ControlPlane, ns: str) -> dict[str, list[dict[str, Any]]]:
    """The pack's children and their dependants by kind (everything garbage collection must remove with it)."""
    by_pack = "modelpack.dev/pack=bert"
    kinds = {"deployments": by_pack, "services": by_pack, "configmaps": by_pack,
             "replicasets": SERVER_SELECTOR, "pods": SERVER_SELECTOR}  # fmt: skip
    return {kind: cp.kubectl_json("get", kind, "-n", ns, "-l", sel)["items"] for kind, sel in kinds.items()}


def test_the_operator_pod_deleted_mid_reconcile_is_replaced_and_converges_then_deleting_the_pack_removes_all(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    cp, ns = control_plane(real_cluster), real_namespace
    cp.apply(store_volume(ns, store))
    (old,) = operator_pods(cp)
    cp.apply([pack(ns, MODELS)], namespace=ns)
    # The reconcile writes the route table first, then the servers: kill the operator as soon as it has begun.
    wait_for(lambda: cp.kubectl("get", "configmap", "bert-routes", "-n", ns, check=False).returncode == 0,
             "the route table written", 60, 0.05)  # fmt: skip
    cp.kubectl(
        "delete", "pod", old["metadata"]["name"], "-n", RELEASE_NS, "--grace-period=0", "--force", "--wait=false"
    )
    at_kill = {kind: len(items) for kind, items in _owned(cp, ns).items()}
    print(f"[faults] operator {old['metadata']['name']} deleted; the pack's objects then: {at_kill}")
    assert status(cp, "modelpack", ns, "bert").get("phase") != "Ready"  # deleted before the pack converged

    def replaced() -> str | None:
        pods = [p for p in operator_pods(cp) if p["metadata"]["uid"] != old["metadata"]["uid"]]
        ready = [p for p in pods if condition(p["status"], "Ready").get("status") == "True"]
        return ready[0]["metadata"]["name"] if len(pods) == 1 and ready else None

    new = wait_for(replaced, "a new operator pod Ready", 180, 1)
    st = wait_pack(cp, ns, "ModelPack Ready after the operator restart", lambda s: s.get("phase") == "Ready" and s)
    assert st["readyServers"] == st["servers"] == 3 and st["readyModels"] == len(MODELS), st
    uid = cp.kubectl_json("get", "modelpack", "bert", "-n", ns)["metadata"]["uid"]
    owned = _owned(cp, ns)
    servers = [f"bert-s{i:04d}" for i in range(3)]
    # No duplicates: exactly the placement's servers, each rolled out once (the new operator's apply of the same
    # spec changed nothing: generation 1, one ReplicaSet each); no orphans: every child owned by this pack.
    assert sorted(d["metadata"]["name"] for d in owned["deployments"]) == servers, owned["deployments"]
    assert sorted(s["metadata"]["name"] for s in owned["services"]) == servers
    assert all(d["metadata"]["generation"] == 1 for d in owned["deployments"]), [
        d["metadata"] for d in owned["deployments"]
    ]
    assert len(owned["replicasets"]) == 3 and len(owned["pods"]) == 3, {k: len(v) for k, v in owned.items()}
    for obj in owned["deployments"] + owned["services"] + owned["configmaps"]:
        refs = obj["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"]) for r in refs] == [("ModelPack", uid)], obj["metadata"]
    assert "bert-routes" in {c["metadata"]["name"] for c in owned["configmaps"]}
    print(f"[faults] new operator {new} converged the pack; children: { {k: len(v) for k, v in owned.items()} }")

    # Deleting the pack removes everything it owns (garbage collection through the ownerReferences).
    cp.kubectl("delete", "modelpack", "bert", "-n", ns, "--wait=true", "--timeout=60s")

    def gone() -> bool:
        return not any(_owned(cp, ns).values())

    try:
        wait_for(gone, "every Deployment, ReplicaSet, Service, ConfigMap and pod of the pack gone", 180, 2)
    except TimeoutError as err:
        raise AssertionError(
            f"{err}\nleft: { {k: [o['metadata']['name'] for o in v] for k, v in _owned(cp, ns).items()} }"
        ) from err
    slices = cp.kubectl_json("get", "endpointslices", "-n", ns)["items"]
    assert [
        s["metadata"]["name"]
        for s in slices
        if s["metadata"].get("labels", {}).get("kubernetes.io/service-name", "").startswith("bert-")
    ] == [], slices
