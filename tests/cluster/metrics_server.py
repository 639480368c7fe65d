"""The resource metrics API (``metrics.k8s.io``) for the real node: metrics-server, built from its Go module.

The HorizontalPodAutoscaler controller reads pods' CPU from ``metrics.k8s.io``, which no apiserver serves by
itself: metrics-server scrapes each kubelet's ``/metrics/resource`` and serves the API as an extension
apiserver behind an ``APIService``, through the aggregation layer (``ControlPlane._aggregation_flags``).

The apiserver runs on the host and reaches the node's namespace only at the node's address (no route to pods or
ClusterIPs; ``tests/cluster/netns.py``), so metrics-server runs on the node's network (``hostNetwork``) on
``PORT``, and the apiserver's aggregator routing dials the Service's endpoint, which is the node's address. Its
serving certificate is signed by the cluster CA for the Service's DNS name (what the aggregator checks), and the
``APIService`` carries that CA: no ``insecureSkipTLSVerify``. The kubelets' serving certs are not checked
(``--kubelet-insecure-tls``, as upstream's test manifests do): the scrape stays inside the node's namespace.

Pure builders from a few parameters to the objects (upstream's ``manifests/base`` RBAC, as dicts); ``deploy()``
applies them and returns once the API answers with the node's usage.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.cluster.node_images import ImageSpec, scratch_image
from tests.cluster.wait import wait_for

if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane
    from tests.cluster.realnode import RealNode

NAMESPACE = "kube-system"
NAME = "metrics-server"
IMAGE = "localhost/modelpack/metrics-server"
# On the node's own network: the kubelet has 10250 (upstream's default here), kube-proxy 10249 and 10256.
PORT = 4443
RESOLUTION = "10s"  # metrics-server's floor: an HPA sees a load change within one or two of these
LABELS = {"k8s-app": NAME}
API_GROUP, API_VERSION = "metrics.k8s.io", "v1beta1"
APISERVICE = f"{API_VERSION}.{API_GROUP}"
UID = 65532  # scratch_image's default user
CERT_DIR = "/etc/metrics-server/tls"


def image(binary: Path) -> ImageSpec:
    return scratch_image(IMAGE, [binary], "metrics-server")


def service_dns() -> str:
    """The name the aggregator checks the serving cert against (``<service>.<namespace>.svc``)."""
    return f"{NAME}.{NAMESPACE}.svc"


def rbac_objects() -> list[dict[str, Any]]:
    """Upstream's RBAC: read the metrics API (aggregated into view/edit/admin), delegate authn/authz to the
    apiserver, read the front proxy's CA from kube-system, and scrape nodes."""
    rbac = "rbac.authorization.k8s.io/v1"
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]

    def ref(kind: str, name: str) -> dict[str, str]:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}

    aggregate = {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true" for r in ("view", "edit", "admin")}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "system:aggregated-metrics-reader", "labels": aggregate},
            "rules": [{"apiGroups": [API_GROUP], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": f"{NAME}-auth-reader", "namespace": NAMESPACE},
            "roleRef": ref("Role", "extension-apiserver-authentication-reader"),
            "subjects": subject,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{NAME}:system:auth-delegator"},
            "roleRef": ref("ClusterRole", "system:auth-delegator"),
            "subjects": subject,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"system:{NAME}"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"system:{NAME}"},
            "roleRef": ref("ClusterRole", f"system:{NAME}"),
            "subjects": subject,
        },
    ]


def args(node_ip: str) -> list[str]:
    return [
        f"--bind-address={node_ip}",
        f"--secure-port={PORT}",
        f"--tls-cert-file={CERT_DIR}/tls.crt",
        f"--tls-private-key-file={CERT_DIR}/tls.key",
        "--kubelet-insecure-tls",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        f"--metric-resolution={RESOLUTION}",
        # Must stay under 90% of the resolution (metrics-server refuses to start otherwise; its default is 10s).
        "--kubelet-request-timeout=5s",
    ]


def server_objects(
    image_ref: str, node_ip: str, apiserver: str, cert_pem: str, key_pem: str, ca_pem: str
) -> list[dict[str, Any]]:
    """The serving cert's Secret, the Deployment on the node's network, its Service and the APIService.

    ``apiserver`` (``https://host:port``): where metrics-server's in-cluster client connects. On the node's
    network it takes the node daemons' way, the host end of the veth, rather than the ``kubernetes`` ClusterIP
    (which there is only kube-proxy's DNAT of locally sent packets): the variables the kubelet would set for
    that Service are overridden by the container's own.
    """
    url = urlsplit(apiserver)
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}
    probe = {"path": "/readyz", "port": PORT, "scheme": "HTTPS"}
    container = {
        "name": NAME,
        "image": image_ref,
        "imagePullPolicy": "IfNotPresent",
        "args": args(node_ip),
        "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": url.hostname},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(url.port)},
        ],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": probe, "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {**probe, "path": "/livez"}, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tls", "mountPath": CERT_DIR, "readOnly": True}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{NAME}-tls", "namespace": NAMESPACE},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                # One node, one host port: the old pod must free it before the new one binds.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": NAME,
                        "hostNetwork": True,
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {"fsGroup": UID},
                        "containers": [container],
                        "volumes": [{"name": "tls", "secret": {"secretName": f"{NAME}-tls", "defaultMode": 0o440}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": LABELS,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}],
            },
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE, "labels": LABELS},
            "spec": {
                "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                "group": API_GROUP,
                "version": API_VERSION,
                "caBundle": base64.b64encode(ca_pem.encode()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def metrics_path(resource: str, namespace: str | None = None) -> str:
    """The API path ``kubectl top`` reads: ``nodes``, or ``pods`` of one namespace."""
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{API_GROUP}/{API_VERSION}{ns}/{resource}"


def diagnose(cp: ControlPlane) -> str:
    pods = cp.kubectl("get", "pods", "-n", NAMESPACE, "-l", "k8s-app=" + NAME, "-o", "wide", check=False).stdout
    log = cp.kubectl("logs", "-n", NAMESPACE, "-l", "k8s-app=" + NAME, "--tail=30", check=False).stdout
    api = cp.kubectl("get", "apiservice", APISERVICE, "-o", "jsonpath={.status.conditions}", check=False).stdout
    return f"pods:\n{pods}\nmetrics-server log:\n{log}\nAPIService conditions: {api}"


def deploy(cp: ControlPlane, node: RealNode, binary: Path, timeout: float = 120) -> None:
    """Import the image, apply everything, and wait until the API serves the node's usage (which takes two
    scrapes: CPU is a rate between them)."""
    ref = node.import_image(image(binary))
    node_ip = node.network.node_ip
    cert = cp.serving_cert(NAME, NAME, [f"DNS:{service_dns()}", f"DNS:{NAME}.{NAMESPACE}", f"IP:{node_ip}"])
    cp.apply(rbac_objects())
    pems = (cert.cert.read_text(), cert.key.read_text(), cp.ca_cert.read_text())
    cp.apply(server_objects(ref, node_ip, cp.server, *pems))

    def node_usage() -> bool:
        got = cp.kubectl("get", "--raw", metrics_path("nodes"), check=False)
        return got.returncode == 0 and '"usage"' in got.stdout

    try:
        wait_for(node_usage, f"{metrics_path('nodes')} serving the node's usage", timeout, 1)
    except TimeoutError as err:
        raise TimeoutError(f"{err}\n{diagnose(cp)}") from err
