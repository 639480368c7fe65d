"""One server of a pack: a Deployment running ``modelpack serve`` over its models, and the Service in front.

Readiness is ``/v2/health/ready``: the server answers 200 only once its models are loadable, so an
available Deployment means its models are servable and the operator can count them ready without a
per-model API call.
"""

from __future__ import annotations

from typing import Any

from modelpack import serving
from modelpack.api.modelpack import DEFAULT_SERVER_IMAGE, ModelPack
from modelpack.placement import Server, server_name
from modelpack_operator import labels as L
from modelpack_operator.builders import scheduling
from modelpack_operator.builders.meta import object_meta, owner_reference, restricted_container, with_hash
from modelpack_operator.builders.pod_template import apply_pod_template
from modelpack_operator.builders.store import store_access
from modelpack_operator.settings import ServerSettings

CACHE_DIR = "/var/cache/modelpack"
MODELS_DIR = "/etc/modelpack/models"
MODELS_KEY = "models"
CONTAINER = "server"
PORT_NAME = "http"


def server_labels(pack: str, index: int) -> dict[str, str]:
    """The selector labels of one server's pods (stable: a Deployment selector is immutable)."""
    return {L.PACK: pack, L.SERVER: str(index)}


def models_config_map(pack: ModelPack, server: Server) -> dict[str, Any] | None:
    """The ConfigMap holding a server's model list when it is too long for ``--models`` (None otherwise)."""
    if not serving.models_in_file(server.models):
        return None
    name = pack.metadata.name
    labels = {**server_labels(name, server.index), L.COMPONENT: L.MODELS_COMPONENT}
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(
            models_config_map_name(name, server.index), pack.metadata.namespace or "default", labels, owner
        ),
        "data": {MODELS_KEY: serving.models_file_text(server.models)},
    }
    return with_hash(obj)


def models_config_map_name(pack: str, index: int) -> str:
    return f"{server_name(pack, index)}-models"


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _base_image(image: str, settings: ServerSettings) -> str:
    return settings.default_image if settings.default_image and image == DEFAULT_SERVER_IMAGE else image


def _container(pack: ModelPack, server: Server, settings: ServerSettings) -> dict[str, Any]:
    spec = pack.spec.server
    access = store_access(pack.spec.store)
    in_file = serving.models_in_file(server.models)
    env = [
        {"name": "MODELPACK_CACHE_DIR", "value": CACHE_DIR},
        {"name": "HOME", "value": "/tmp"},
        {"name": "OMP_NUM_THREADS", "value": str(spec.worker_threads)},
        *access.env,
    ]
    return {
        "name": CONTAINER,
        "image": scheduling.server_image(_base_image(spec.image, settings), pack.spec.compute, settings),
        "command": ["modelpack", "serve"],
        "args": serving.serve_args(
            spec,
            server.models,
            store_uri=access.uri,
            host="0.0.0.0",
            port=spec.port,
            threads=spec.worker_threads,
            models_file=f"{MODELS_DIR}/{MODELS_KEY}",
        ),
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "resources": serving.server_resources(pack.spec, settings.memory_overhead),
        "startupProbe": _probe("/v2/health/live", 5, max(1, settings.startup_seconds // 5)),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 2),
        # The sleep action needs no binary in the image (Kubernetes 1.30+, on by default).
        **(
            {"lifecycle": {"preStop": {"sleep": {"seconds": settings.drain_seconds}}}} if settings.drain_seconds else {}
        ),
        # A crashing server's last log line (e.g. "store unavailable: ...") becomes the pod's termination
        # message, which the operator reads to say why the pack is Degraded.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": restricted_container(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "model-cache", "mountPath": CACHE_DIR},
            *([{"name": "models", "mountPath": MODELS_DIR, "readOnly": True}] if in_file else []),
            *access.mounts,
        ],
    }


def _pod_spec(pack: ModelPack, server: Server, settings: ServerSettings) -> dict[str, Any]:
    compute = pack.spec.compute
    access = store_access(pack.spec.store)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": scheduling.node_selector(compute),
        "topologySpreadConstraints": scheduling.spread(server_labels(pack.metadata.name, server.index)),
        "containers": [_container(pack, server, settings)],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": settings.tmp_size}},
            {"name": "model-cache", "emptyDir": {"sizeLimit": settings.cache_size}},
            *(
                [{"name": "models", "configMap": {"name": models_config_map_name(pack.metadata.name, server.index)}}]
                if serving.models_in_file(server.models)
                else []
            ),
            *access.volumes,
        ],
        # The preStop pause counts against the grace period: in-flight requests still get their 30 s after it.
        "terminationGracePeriodSeconds": settings.drain_seconds + 30,
    }
    tolerations = scheduling.tolerations(compute)
    if tolerations:
        pod["tolerations"] = tolerations
    affinity = scheduling.affinity(compute)
    if affinity:
        pod["affinity"] = affinity
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account  # never the namespace's default account
    return pod


def server_deployment(pack: ModelPack, server: Server, settings: ServerSettings) -> dict[str, Any]:
    """The Deployment of server ``server.index``; ``compute.podTemplate``'s allow-listed fields are added last."""
    name = pack.metadata.name
    namespace = pack.metadata.namespace or "default"
    selector = server_labels(name, server.index)
    labels = {**selector, L.COMPONENT: L.SERVER_COMPONENT, L.NAME: "modelpack-server"}
    template: dict[str, Any] = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(pack.spec.server.port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": _pod_spec(pack, server, settings),
    }
    if pack.spec.compute.pod_template is not None:
        template = apply_pod_template(template, pack.spec.compute.pod_template)
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(server_name(name, server.index), namespace, labels, owner),
        "spec": {
            # With spec.autoscaling the HPA sets replicas: left out, so server-side apply never takes them back.
            **({} if pack.spec.autoscaling else {"replicas": pack.spec.replicas}),
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": max(600, settings.startup_seconds + 60),
            "template": template,
        },
    }
    return with_hash(obj)


def service_host(pack: ModelPack, index: int, settings: ServerSettings) -> str:
    namespace = pack.metadata.namespace or "default"
    return f"{server_name(pack.metadata.name, index)}.{namespace}.svc.{settings.cluster_domain}"


def service_url(pack: ModelPack, index: int, settings: ServerSettings) -> str:
    """What the route table maps a model to: the server's Service, by its cluster DNS name."""
    return f"http://{service_host(pack, index, settings)}:{pack.spec.server.port}"


def server_service(pack: ModelPack, server: Server, settings: ServerSettings) -> dict[str, Any]:
    """A ClusterIP Service in front of one server's pods; clients pick the server from the route table."""
    name = pack.metadata.name
    namespace = pack.metadata.namespace or "default"
    selector = server_labels(name, server.index)
    labels = {**selector, L.COMPONENT: L.SERVER_COMPONENT, L.NAME: "modelpack-server"}
    owner = owner_reference("ModelPack", name, pack.metadata.uid or "")
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(server_name(name, server.index), namespace, labels, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": PORT_NAME, "port": pack.spec.server.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
    return with_hash(obj)
