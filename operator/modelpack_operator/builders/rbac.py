"""Identities of the pods the operator makes: workers (a Role that can only write result ConfigMaps) and
servers (no rights, no token).

Workers report through the API rather than logs, so they need a token; this keeps what that token can
do to the one thing workers must do. Servers never call the API, so theirs is an account with nothing bound
and its token not mounted: a server pod cannot act as the namespace's ``default`` account, whatever that
account has been granted.
"""

from __future__ import annotations

from typing import Any

from modelpack_operator import labels as L
from modelpack_operator.builders.meta import object_meta, with_hash

WORKER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "get"]},
]


def worker_rbac(namespace: str, service_account: str) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for workers in ``namespace`` (shared by its LoadTests, so unowned)."""
    labels = {L.COMPONENT: L.WORKER_COMPONENT, L.PART_OF: "modelpack"}
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(service_account, namespace, labels),
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(service_account, namespace, labels),
        "rules": WORKER_RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(service_account, namespace, labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": service_account},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
    return [with_hash(o) for o in (sa, role, binding)]


def server_service_account(namespace: str, name: str) -> dict[str, Any]:
    """The server pods' ServiceAccount: nothing bound to it, its token never mounted."""
    labels = {L.COMPONENT: L.SERVER_COMPONENT, L.PART_OF: "modelpack"}
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(name, namespace, labels),
        "automountServiceAccountToken": False,
    }
    return with_hash(sa)
