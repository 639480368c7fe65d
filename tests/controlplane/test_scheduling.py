"""The real scheduler places pods on the EKS-shaped kwok pools by arch, extended resource and taint."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.cluster


def deployment(
    name: str,
    replicas: int,
    requests: dict[str, str],
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "server", "image": "modelpack/server:test", "resources": {"requests": requests}}]
    }
    extended = {k: v for k, v in requests.items() if "/" in k}
    if extended:
        pod_spec["containers"][0]["resources"]["limits"] = extended
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def pods(cp: ControlPlane, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cp.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return items


def node_labels(cp: ControlPlane, node: str) -> dict[str, str]:
    labels: dict[str, str] = cp.kubectl_json("get", "node", node)["metadata"]["labels"]
    return labels


def scheduling_failures(cp: ControlPlane, namespace: str) -> list[str]:
    events = cp.kubectl_json("get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling")["items"]
    return [e["message"] for e in events]


def test_arm64_deployment_runs_on_graviton(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.apply(
        deployment("arm", 3, {"cpu": "500m", "memory": "256Mi"}, {"kubernetes.io/arch": "arm64"}),
        namespace=namespace,
    )
    control_plane.kubectl("rollout", "status", "deployment/arm", "-n", namespace, "--timeout=60s")
    running = pods(control_plane, namespace, "arm")
    assert len(running) == 3
    for pod in running:
        assert pod["status"]["phase"] == "Running"
        labels = node_labels(control_plane, pod["spec"]["nodeName"])
        assert labels["modelpack.dev/pool"] == "graviton"
        assert labels["node.kubernetes.io/instance-type"] == "c7g.4xlarge"
        assert pod["status"]["podIP"]


def test_neuron_request_lands_only_on_inferentia_and_counts_devices(
    control_plane: ControlPlane, namespace: str
) -> None:
    toleration = [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]
    control_plane.apply(deployment("neuron", 2, {"cpu": "1", "aws.amazon.com/neuron": "1"}, None, toleration),
                        namespace=namespace)  # fmt: skip

    def one_running_one_pending() -> list[dict[str, Any]] | None:
        items = pods(control_plane, namespace, "neuron")
        phases = sorted(p["status"].get("phase", "") for p in items)
        return items if phases == ["Pending", "Running"] else None

    items = wait_for(one_running_one_pending, "one neuron pod Running and one Pending")
    running = next(p for p in items if p["status"]["phase"] == "Running")
    assert running["spec"]["nodeName"] == "inferentia-0"
    assert node_labels(control_plane, "inferentia-0")["node.kubernetes.io/instance-type"] == "inf2.xlarge"
    # The cluster has one inf2.xlarge with one device: the second replica must wait, not land elsewhere.
    pending = next(p for p in items if p["status"]["phase"] == "Pending")
    assert not pending["spec"].get("nodeName")
    messages = wait_for(lambda: scheduling_failures(control_plane, namespace), "a FailedScheduling event")
    assert any("Insufficient aws.amazon.com/neuron" in m for m in messages), messages


def test_neuron_pod_without_toleration_is_kept_off_the_tainted_node(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.apply(deployment("untolerated", 1, {"aws.amazon.com/neuron": "1"}), namespace=namespace)
    messages = wait_for(lambda: scheduling_failures(control_plane, namespace), "a FailedScheduling event")
    assert any("untolerated taint" in m and "aws.amazon.com/neuron" in m for m in messages), messages
    assert all(not p["spec"].get("nodeName") for p in pods(control_plane, namespace, "untolerated"))


def test_more_cpu_than_any_node_stays_pending(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.apply(deployment("huge", 1, {"cpu": "64"}), namespace=namespace)
    messages = wait_for(lambda: scheduling_failures(control_plane, namespace), "a FailedScheduling event")
    assert any("Insufficient cpu" in m for m in messages), messages
    (pod,) = pods(control_plane, namespace, "huge")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
