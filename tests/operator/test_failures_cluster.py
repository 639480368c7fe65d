"""Failures reach the ModelPack: a specific condition reason and a Warning Event within one resync, no silent retry;
and what one object may cost the operator is bounded (memory, objects, shutdown)."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from modelpack_operator import handlers
from modelpack_operator import labels as L
from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.cluster.process import free_port
from tests.operator.factories import pack_doc
from tests.operator.harness import OperatorProcess, condition, events_for, get_status, wait_until

pytestmark = pytest.mark.cluster


def _apply(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def _degraded(kube: Kube, namespace: str, name: str, reason: str) -> dict[str, Any] | None:
    status = get_status(kube, "ModelPack", namespace, name)
    return status if condition(status, "Degraded").get("reason") == reason else None


def _warning(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in events_for(kube, namespace, name) if e["type"] == "Warning" and e["reason"] == reason]


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def test_servers_no_node_can_hold_are_unschedulable_with_the_schedulers_message(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator({"MODELPACK_RECONCILE_POD_CHECK_AFTER_SECONDS": "1"})
    _apply(crds, namespace, pack_doc(namespace=namespace, compute={"type": "gpu", "acceleratorsPerServer": 16}))
    status = wait_until(lambda: _degraded(kube, namespace, "bert", "Unschedulable"), "Degraded Unschedulable", 60, op)
    assert status["phase"] == "Degraded"
    message = condition(status, "Degraded")["message"]
    assert "Insufficient nvidia.com/gpu" in message, message
    assert condition(status, "Progressing")["status"] == "False"
    assert condition(status, "Ready")["status"] == "False"
    wait_until(lambda: _warning(kube, namespace, "bert", "Unschedulable"), "Warning event Unschedulable", 30, op)


def test_a_child_the_api_server_refuses_is_named_in_status_and_an_event(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator()
    empty_terms = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    pack = pack_doc(namespace=namespace, compute={"type": "x86", "podTemplate": {"spec": {"affinity": empty_terms}}})
    _apply(crds, namespace, pack)
    status = wait_until(
        lambda: (s := get_status(kube, "ModelPack", namespace, "bert")).get("phase") == "Failed" and s, "Failed", 60, op
    )
    ready = condition(status, "Ready")
    assert ready["reason"] == "ApplyRefused"
    assert "nodeSelectorTerms" in ready["message"], ready["message"]
    wait_until(lambda: _warning(kube, namespace, "bert", "ApplyRefused"), "Warning event ApplyRefused", 30, op)
    assert op.alive()


def test_a_pack_over_the_operators_limit_costs_nothing_and_says_so(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    refused = crds.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input=yaml.safe_dump(
            pack_doc(name="million", namespace=namespace, models={"count": 1_000_000}, modelsPerServer=1)
        ),
    )
    assert refused.returncode != 0 and "spec.models.count" in refused.stderr  # the API's own ceiling
    liveness = free_port()
    op = start_operator({"MODELPACK_LIMITS_MAX_MODELS_PER_PACK": "1000"}, liveness_port=liveness)
    assert op.popen is not None
    wait_until(lambda: _answers(f"http://127.0.0.1:{liveness}/healthz"), "the operator's liveness endpoint", op=op)
    baseline = _rss_mib(op.popen.pid)
    # The most the API admits (no admission policy installed here): 100,000 models, 10 per server.
    _apply(crds, namespace, pack_doc(name="huge", namespace=namespace, models={"count": 100_000}, modelsPerServer=10))
    peak = baseline
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and not status:
        peak = max(peak, _rss_mib(op.popen.pid))
        status = _degraded(kube, namespace, "huge", "TooLarge") or {}
        time.sleep(0.2)
    assert status, f"no TooLarge condition: {get_status(kube, 'ModelPack', namespace, 'huge')}"
    print(f"operator RSS: {baseline:.0f} MiB before, {peak:.0f} MiB peak with a 100,000-model pack over its limit")
    assert status["phase"] == "Failed"
    assert "spec.models: 100000 models, over the limit of 1000 per pack" in condition(status, "Ready")["message"]
    assert peak - baseline < 50, (baseline, peak)
    assert not kube.list("apps/v1", "Deployment", namespace, L.pack_selector("huge"))
    assert not kube.list("v1", "ConfigMap", namespace, L.pack_selector("huge"))
    wait_until(lambda: _warning(kube, namespace, "huge", "TooLarge"), "Warning event TooLarge", 30, op)


def test_the_operator_stops_promptly_on_sigterm_in_the_middle_of_a_large_rollout(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator({"MODELPACK_RECONCILE_APPLY_CONCURRENCY": "2"})
    _apply(crds, namespace, pack_doc(name="big", namespace=namespace, models={"count": 4000}, modelsPerServer=2))
    wait_until(lambda: kube.list("apps/v1", "Deployment", namespace, L.pack_selector("big")), "rollout started", 60, op)
    assert op.popen is not None
    started = time.monotonic()
    os.killpg(op.popen.pid, signal.SIGTERM)
    op.popen.wait(timeout=28)  # within the pod's 30 s grace period
    took = time.monotonic() - started
    print(f"operator exited {took:.1f}s after SIGTERM with a 2,000-server rollout in flight")
    assert took < handlers.STOP_DEADLINE_SECONDS + 5


def _answers(url: str) -> bool:
    """Started up: kopf serves liveness once its startup handlers ran and the watches began."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
