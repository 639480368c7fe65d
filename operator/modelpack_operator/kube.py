"""A thin, typed-enough Kubernetes client for the handful of kinds the operator manages.

Built on the official client's ``ApiClient`` (auth, TLS, kubeconfig or in-cluster config) but speaking
plain dicts, because the builders produce dicts and server-side apply takes them as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config

from modelpack_operator.labels import FIELD_MANAGER

REQUEST_TIMEOUT = 30
LIST_PAGE = 500
"""Objects per list page."""

# (apiVersion, kind) -> plural; the only kinds the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Event"): "events",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "Job"): "jobs",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("modelpack.dev/v1alpha1", "ModelPack"): "modelpacks",
    ("modelpack.dev/v1alpha1", "LoadTest"): "loadtests",
}


class KubeError(RuntimeError):
    """An API call failed for a reason other than 'not found'; carries the HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster config inside a pod, else ``kubeconfig`` / ``$KUBECONFIG`` / ~/.kube/config."""
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        return client.ApiClient(configuration)


def path_of(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"kind {kind} of {api_version} is not one the operator manages") from None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def _message(data: bytes | None, reason: str | None) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or reason)
    except (ValueError, AttributeError):
        return str(reason)


class Kube:
    """Apply, get, list and delete dict objects; ``None`` / ``False`` for 'not found', :class:`KubeError` else."""

    def __init__(self, api_client: client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api = api_client
        self.field_manager = field_manager

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        method, url, headers, payload, _ = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, headers, payload, _request_timeout=REQUEST_TIMEOUT)
        except Exception as err:  # urllib3 connection errors: the API server is unreachable
            raise KubeError(0, f"{method} {path}: {err}") from None
        data = response.read()
        if response.status == 404:
            return None
        if not 200 <= response.status <= 299:
            raise KubeError(response.status, _message(data, response.reason))
        return json.loads(data) if data else {}

    def apply(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply with this operator's field manager; ``force`` takes fields back from hand edits."""
        meta = obj["metadata"]
        path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        if subresource:
            path = f"{path}/{subresource}"
        query = [("fieldManager", self.field_manager), ("force", "true")]
        result = self._call("PATCH", path, body=dict(obj), query=query, content_type="application/apply-patch+yaml")
        if result is None:
            raise KubeError(404, f"{obj['kind']} {meta['name']} vanished while being applied")
        return result

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create; ``None`` if it already exists (creation is how exactly-once objects such as Jobs are made)."""
        meta = obj["metadata"]
        path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        try:
            return self._call("POST", path, body=dict(obj), query=[("fieldManager", self.field_manager)])
        except KubeError as err:
            if err.status == 409:
                return None
            raise

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """PUT (update) an existing object; ``metadata.resourceVersion`` guards against lost updates."""
        meta = obj["metadata"]
        path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return self._call("PUT", path, body=dict(obj), query=[("fieldManager", self.field_manager)])

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._call("GET", path_of(api_version, kind, namespace, name))

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every matching object, read in pages of :data:`LIST_PAGE` and without ``metadata.managedFields``.

        Pages bound the memory one response takes (a 30,000-model pack has 1,875 Deployments), and the
        operator never reads managedFields, which are the largest part of a server-side-applied object.
        """
        base = [("labelSelector", label_selector)] if label_selector else []
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [*base, ("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
            result = self._call("GET", path_of(api_version, kind, namespace), query=query) or {}
            for item in result.get("items") or []:
                item.get("metadata", {}).pop("managedFields", None)
                # List items carry no apiVersion/kind; add them so items can be applied or deleted like any object.
                items.append({"apiVersion": api_version, "kind": kind, **item})
            token = (result.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete in the background (dependents garbage-collected); ``False`` if it was already gone."""
        body = {"propagationPolicy": "Background"}
        return self._call("DELETE", path_of(api_version, kind, namespace, name), body=body) is not None

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call("POST", path, body=dict(body))
