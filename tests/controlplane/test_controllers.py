"""The controller-manager's controllers work: Jobs complete (kwok plays kubelet) and owners cascade."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.cluster


def test_job_completes_and_is_marked_complete(control_plane: ControlPlane, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "loadtest-worker"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"modelpack.dev/pool": "x86"},
                    "containers": [{"name": "worker", "image": "modelpack/loadgen:test"}],
                }
            },
        },
    }
    control_plane.apply(job, namespace=namespace)
    control_plane.kubectl("wait", "--for=condition=Complete", "job/loadtest-worker", "-n", namespace, "--timeout=60s")
    status = control_plane.kubectl_json("get", "job", "loadtest-worker", "-n", namespace)["status"]
    assert status["succeeded"] == 2
    assert not status.get("failed")
    pods = control_plane.kubectl_json("get", "pods", "-n", namespace, "-l", "job-name=loadtest-worker")["items"]
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert {p["spec"]["nodeName"] for p in pods} <= {"x86-0", "x86-1"}


def test_deleting_an_owner_garbage_collects_its_dependent(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace=namespace)
    owner_uid = control_plane.kubectl_json("get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    dependent: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        },
    }
    bystander = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}}
    control_plane.apply([dependent, bystander], namespace=namespace)
    control_plane.kubectl("delete", "configmap", "owner", "-n", namespace)

    def dependent_gone() -> bool:
        got = control_plane.kubectl("get", "configmap", "dependent", "-n", namespace, check=False)
        return got.returncode != 0 and "NotFound" in got.stderr

    wait_for(dependent_gone, "the garbage collector to delete the dependent ConfigMap")
    control_plane.kubectl("get", "configmap", "bystander", "-n", namespace)  # an unrelated object survives


def test_deleting_a_deployment_removes_its_replicasets_and_pods(control_plane: ControlPlane, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "server"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "server"}},
            "template": {
                "metadata": {"labels": {"app": "server"}},
                "spec": {"containers": [{"name": "server", "image": "modelpack/server:test"}]},
            },
        },
    }
    control_plane.apply(deployment, namespace=namespace)
    control_plane.kubectl("rollout", "status", "deployment/server", "-n", namespace, "--timeout=60s")
    assert len(control_plane.kubectl_json("get", "replicasets", "-n", namespace)["items"]) == 1
    control_plane.kubectl("delete", "deployment", "server", "-n", namespace, "--cascade=background")

    def all_gone() -> bool:
        rs = control_plane.kubectl_json("get", "replicasets", "-n", namespace)["items"]
        pods = control_plane.kubectl_json("get", "pods", "-n", namespace)["items"]
        return not rs and not pods

    wait_for(all_gone, "ReplicaSets and pods of the deleted Deployment to be collected")
