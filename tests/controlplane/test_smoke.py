"""The plane itself: every component answers, the admin is a real cert user, kwok nodes are Ready."""

from __future__ import annotations

import pytest

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.cluster.nodes import DEFAULT_POOLS

pytestmark = pytest.mark.cluster


def test_apiserver_reports_version_and_healthy_components(control_plane: ControlPlane) -> None:
    version = control_plane.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    assert control_plane.server.startswith("https://127.0.0.1:")


def test_admin_is_a_system_masters_cert_user(control_plane: ControlPlane) -> None:
    review = control_plane.kubectl_json("auth", "whoami")
    info = review["status"]["userInfo"]
    assert info["username"] == "kubernetes-admin"
    assert "system:masters" in info["groups"]


def test_default_pools_are_ready_kwok_nodes(control_plane: ControlPlane) -> None:
    nodes = control_plane.kubectl_json("get", "nodes", "-l", "type=kwok")["items"]
    by_pool: dict[str, int] = {}
    for node in nodes:
        pool = node["metadata"]["labels"]["modelpack.dev/pool"]
        by_pool[pool] = by_pool.get(pool, 0) + 1
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
    assert by_pool == dict(DEFAULT_POOLS)


def test_python_client_talks_to_the_plane(control_plane: ControlPlane, namespace: str) -> None:
    from kubernetes import client

    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        assert namespace in {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hello"), data={"k": "v"})
        core.create_namespaced_config_map(namespace, body)
        assert core.read_namespaced_config_map("hello", namespace).data == {"k": "v"}


def test_failed_kubectl_says_what_kubectl_said(control_plane: ControlPlane, namespace: str) -> None:
    with pytest.raises(KubectlError, match=r'get pod nope -n .* exited 1: .*pods "nope" not found'):
        control_plane.kubectl("get", "pod", "nope", "-n", namespace)
    assert control_plane.kubectl("get", "pod", "nope", "-n", namespace, check=False).returncode == 1
