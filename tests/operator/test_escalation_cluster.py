"""Nobody gains rights through a ModelPack: tried as a user who may create ModelPacks and nothing else.

The user is bound to a Role granting only ModelPacks; every way the issue found to get a pod with another
account's token, privileges, host namespaces or the host's filesystem is refused at admission (the typed
podTemplate cannot express it), and what the operator does create runs under Pod Security ``restricted``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from modelpack_operator import labels as L
from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.harness import OperatorProcess, get_status, wait_until

pytestmark = pytest.mark.cluster
USER = "mallory"

ESCALATIONS: dict[str, dict[str, Any]] = {
    "another-service-account": {"spec": {"serviceAccountName": "cluster-admin-sa"}},
    "token-mounted": {"spec": {"automountServiceAccountToken": True}},
    "privileged-container": {"spec": {"containers": [{"name": "server", "securityContext": {"privileged": True}}]}},
    "host-network-and-pid": {"spec": {"hostNetwork": True, "hostPID": True}},
    "host-root-mounted": {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
    "added-capabilities": {
        "spec": {"containers": [{"name": "server", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}
    },
    "root-user": {"spec": {"securityContext": {"runAsUser": 0}}},
    "secret-as-env": {
        "spec": {"serverContainer": {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}}
    },
    "secret-as-volume": {"spec": {"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}},
    "extra-container": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}},
}


def _as_user(cp: ControlPlane, namespace: str, *args: str, input: str | None = None) -> Any:
    return cp.kubectl(*args, f"--as={USER}", "-n", namespace, input=input, check=False)


def _grant_modelpacks_only(cp: ControlPlane, namespace: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "modelpack-author", "namespace": namespace},
        "rules": [{"apiGroups": ["modelpack.dev"], "resources": ["modelpacks"], "verbs": ["create", "get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "modelpack-author", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "modelpack-author"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))
    assert _as_user(cp, namespace, "auth", "can-i", "create", "pods").stdout.strip() == "no"
    assert _as_user(cp, namespace, "auth", "can-i", "create", "modelpacks.modelpack.dev").stdout.strip() == "yes"


def test_every_escalation_path_is_refused_to_a_modelpack_only_user(crds: ControlPlane, namespace: str) -> None:
    _grant_modelpacks_only(crds, namespace)
    for case, pod_template in ESCALATIONS.items():
        doc = pack_doc(name=f"x-{case}", namespace=namespace, compute={"type": "x86", "podTemplate": pod_template})
        result = _as_user(crds, namespace, "apply", "-f", "-", input=yaml.safe_dump(doc))
        assert result.returncode != 0, f"{case}: accepted"
        assert "podTemplate" in result.stderr, f"{case}: {result.stderr}"
    assert not json.loads(crds.kubectl("get", "mp", "-n", namespace, "-o", "json").stdout)["items"]


def test_a_packs_pods_run_under_pod_security_restricted_with_an_account_that_has_nothing(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    crds.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    _grant_modelpacks_only(crds, namespace)
    op = start_operator()
    allowed = {
        "metadata": {"labels": {"team": "ml"}},
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "serverContainer": {
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            },
        },
    }
    pack = pack_doc(namespace=namespace, compute={"type": "x86", "podTemplate": allowed})
    result = _as_user(crds, namespace, "apply", "-f", "-", input=yaml.safe_dump(pack))
    assert result.returncode == 0, result.stderr
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "pack Ready", op=op)
    pods = kube.list("v1", "Pod", namespace, f"{L.PACK}=bert")
    assert len(pods) == 3  # admitted by Pod Security restricted
    for pod in pods:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "modelpack-server"
        assert spec["automountServiceAccountToken"] is False
        assert not any("projected" in v for v in spec["volumes"])  # no API token volume
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        assert pod["metadata"]["labels"]["team"] == "ml"
    account = kube.get("v1", "ServiceAccount", namespace, "modelpack-server")
    assert account is not None and account["automountServiceAccountToken"] is False
    bindings = kube.list("rbac.authorization.k8s.io/v1", "RoleBinding", namespace)
    assert not [b for b in bindings if any(s.get("name") == "modelpack-server" for s in b.get("subjects") or [])]
    # Load-test workers too are admitted under restricted.
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(loadtest_doc(namespace=namespace)))
    wait_until(lambda: kube.list("v1", "Pod", namespace, f"{L.LOADTEST}=lt"), "worker pod admitted", op=op)
