"""Pod and Service dicts for the real-node tests (busybox probes), and waiting on what the kubelet reports."""

from __future__ import annotations

from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.wait import wait_for

RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def busybox_pod(
    name: str, image: str, args: list[str], *, labels: dict[str, str] | None = None, restart: str = "Never",
    volumes: list[dict[str, Any]] | None = None, mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A pod running ``busybox <args>`` as non-root with a read-only root filesystem and no capabilities."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "securityContext": RESTRICTED,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    }
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [container], "terminationGracePeriodSeconds": 1}
    if restart == "Never":
        spec["activeDeadlineSeconds"] = 60  # a probe that hangs fails instead of waiting out the test's timeout
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def web_objects(image: str, name: str = "web", body: str = "hello from a real pod\n") -> list[dict[str, Any]]:
    """busybox httpd serving ``body`` from a ConfigMap on port 8080, and a ClusterIP Service in front of it."""
    labels = {"app": name}
    pod = busybox_pod(
        name, image, ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"], labels=labels, restart="Always",
        volumes=[{"name": "www", "configMap": {"name": name}}], mounts=[{"name": "www", "mountPath": "/www"}],
    )  # fmt: skip
    pod["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"index.html": body}},
        pod,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]


def pod_phase(cp: ControlPlane, ns: str, name: str) -> str:
    return cp.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False).stdout.strip()


def wait_phase(cp: ControlPlane, ns: str, name: str, phases: tuple[str, ...], timeout: float = 90) -> str:
    return wait_for(lambda: (p := pod_phase(cp, ns, name)) in phases and p, f"pod {ns}/{name} in {phases}", timeout)


def wait_ready(cp: ControlPlane, ns: str, name: str, timeout: float = 90) -> None:
    def ready() -> bool:
        got = cp.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                         check=False)  # fmt: skip
        return got.stdout.strip() == "True"

    wait_for(ready, f"pod {ns}/{name} Ready", timeout, 0.3)
