"""Cluster DNS for the real node: CoreDNS (built from its Go module) as a Deployment behind 10.96.0.10.

Pure builders from a few parameters to the objects; ``deploy()`` applies them and waits for the pod's readiness,
which CoreDNS' ``ready`` plugin reports only after its kubernetes plugin has synced with the apiserver, through
the ``kubernetes`` Service, i.e. through kube-proxy. There is no ``forward``: a name outside the cluster domain
gets no answer from anywhere (the node has no route out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.cluster.wait import wait_for

if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane

NAMESPACE = "kube-system"
NAME = "coredns"
PORT = 1053  # unprivileged: CoreDNS runs as non-root with no capabilities; the Service maps 53 to it
LABELS = {"k8s-app": "kube-dns"}


def corefile(domain: str) -> str:
    return (
        f".:{PORT} {{\n"
        "    errors\n"
        "    health :8080\n"
        "    ready :8181\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "    }\n"
        "    cache 30\n"
        "}\n"
    )


def dns_objects(image: str, cluster_ip: str, domain: str) -> list[dict[str, Any]]:
    """ServiceAccount, RBAC (what the kubernetes plugin watches), ConfigMap, Deployment and Service."""
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "modelpack:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "modelpack:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelpack:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": corefile(domain)}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": NAME,
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": PORT, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"},
                                ],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "170Mi"},
                                },
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "selector": LABELS,
                "clusterIP": cluster_ip,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP"},
                ],
            },
        },
    ]


def deploy(cp: ControlPlane, image: str, cluster_ip: str, domain: str, timeout: float = 120) -> None:
    cp.apply(dns_objects(image, cluster_ip, domain))

    def available() -> bool:
        got = cp.kubectl("get", "deployment", NAME, "-n", NAMESPACE, "-o", "jsonpath={.status.availableReplicas}",
                         check=False)  # fmt: skip
        return got.stdout.strip() == "1"

    wait_for(available, "CoreDNS available (its ready plugin synced with the apiserver via kube-proxy)", timeout, 0.5)
