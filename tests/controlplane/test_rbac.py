"""RBAC is really enforced: a ServiceAccount token and a client-cert user get exactly what their roles grant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


def reader_role(namespace: str, subject: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "configmap-reader", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [subject],
        },
    ]


@pytest.fixture
def reader_sa(control_plane: ControlPlane, namespace: str) -> Path:
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    sa = {"kind": "ServiceAccount", "name": "reader", "namespace": namespace}
    control_plane.apply(reader_role(namespace, sa))
    control_plane.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "models"}}, namespace=namespace)
    return control_plane.service_account_kubeconfig(namespace, "reader")


def test_service_account_token_authenticates_as_the_service_account(
    control_plane: ControlPlane, namespace: str, reader_sa: Path
) -> None:
    who = control_plane.kubectl_json("auth", "whoami", kubeconfig=reader_sa)["status"]["userInfo"]
    assert who["username"] == f"system:serviceaccount:{namespace}:reader"
    assert f"system:serviceaccounts:{namespace}" in who["groups"]


def test_role_allows_reading_configmaps(control_plane: ControlPlane, namespace: str, reader_sa: Path) -> None:
    names = control_plane.kubectl("get", "configmaps", "-n", namespace, "-o", "name", kubeconfig=reader_sa).stdout
    assert "configmap/models" in names.split()
    with control_plane.api_client(reader_sa) as api:
        got = client.CoreV1Api(api).read_namespaced_config_map("models", namespace)
        assert got.metadata is not None and got.metadata.name == "models"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "configmap", "sneaky"), 'cannot create resource "configmaps"'),
        (("get", "secrets"), 'cannot list resource "secrets"'),
        (("delete", "configmap", "models"), 'cannot delete resource "configmaps"'),
    ],
)
def test_role_refuses_what_it_does_not_grant(
    control_plane: ControlPlane, namespace: str, reader_sa: Path, args: tuple[str, ...], message: str
) -> None:
    got = control_plane.kubectl(*args, "-n", namespace, kubeconfig=reader_sa, check=False)
    assert got.returncode != 0
    assert "forbidden" in got.stderr.lower() and message in got.stderr, got.stderr


def test_role_is_namespaced(control_plane: ControlPlane, namespace: str, reader_sa: Path) -> None:
    with control_plane.api_client(reader_sa) as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespaced_config_map("default")
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in str(err.value.body)


def test_cert_user_gets_rights_through_its_group(control_plane: ControlPlane, namespace: str) -> None:
    group = {"kind": "Group", "name": "modelpack-viewers", "apiGroup": "rbac.authorization.k8s.io"}
    control_plane.apply(reader_role(namespace, group))
    member = control_plane.kubeconfig_for("alice", ["modelpack-viewers"])
    outsider = control_plane.kubeconfig_for("bob", ["other-team"])
    can = ["auth", "can-i", "list", "configmaps", "-n", namespace]
    assert control_plane.kubectl(*can, kubeconfig=member, check=False).stdout.strip() == "yes"
    assert control_plane.kubectl(*can, kubeconfig=outsider, check=False).stdout.strip() == "no"
    refused = control_plane.kubectl("get", "configmaps", "-n", namespace, kubeconfig=outsider, check=False)
    assert 'User "bob" cannot list resource "configmaps"' in refused.stderr, refused.stderr
