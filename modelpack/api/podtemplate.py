"""``compute.podTemplate``: the allow-list of pod fields a ModelPack may set on its server pods.

Why an allow-list: the operator creates pods with its own rights, so anything a ModelPack could put in a pod
is something anyone allowed to create ModelPacks could get without being allowed to create pods (the
confused deputy). Only fields that grant nothing are here: scheduling (affinity, tolerations, topology
spread, priority class), labels and annotations, extra environment variables (literal values, the pod's own
fields, or keys of ConfigMaps in the pack's namespace; never Secrets) and volumes of two harmless kinds
(emptyDir, configMap) mounted into the server container. serviceAccountName, host namespaces, privileged,
hostPath, capabilities, security contexts, secrets and extra containers cannot be expressed at all, so the
API server refuses them (unknown fields) before the operator ever sees them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from modelpack.api.base import (
    LABEL_VALUE_PATTERN,
    QUALIFIED_NAME_PATTERN,
    RESOURCE_QUANTITY_PATTERN,
    ApiModel,
    Rule,
)
from modelpack.api.common import NAME_PATTERN, SUBDOMAIN_PATTERN

RESERVED_ENV = ("HOME", "OMP_NUM_THREADS", "AWS_REGION")
"""Env names the operator sets on the server container (with every ``MODELPACK_*`` name)."""
RESERVED_VOLUMES = ("tmp", "model-cache", "model-store")
RESERVED_MOUNT_PATHS = ("/tmp", "/var/cache/modelpack", "/models")
RESERVED_LABEL_PREFIXES = ("modelpack.dev/", "app.kubernetes.io/")
"""Label keys the operator selects and identifies server pods by."""
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PATH_PATTERN = r"^/([^/.][^/]*|\.[^/.][^/]*)?(/([^/.][^/]*|\.[^/.][^/]*))*$"
"""An absolute path without ``.`` or ``..`` segments."""
MAX_ENTRIES = 32

LabelKey = Annotated[str, Field(pattern=QUALIFIED_NAME_PATTERN, max_length=253)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]


def _quoted(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _unreserved_label(key: str) -> bool:
    return not key.startswith(RESERVED_LABEL_PREFIXES)


class Toleration(ApiModel):
    """A Kubernetes toleration, passed through to the server pods."""

    model_config = ApiModel.model_config | {"alias_generator": None}

    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = Field(default=None, ge=0, le=31_536_000)

    rules = (
        Rule(
            cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            message="tolerations: tolerationSeconds needs effect NoExecute",
            check=lambda m: m.tolerationSeconds is None or m.effect == "NoExecute",
        ),
        Rule(
            cel="!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
            message="tolerations: value must be empty when operator is Exists",
            check=lambda m: m.operator != "Exists" or not m.value,
        ),
        Rule(
            cel="(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
            message="tolerations: operator must be Exists when key is empty",
            check=lambda m: bool(m.key) or m.operator == "Exists",
        ),
    )


class PodMetadata(ApiModel):
    """Labels and annotations added to the server pods (the operator's own labels cannot be replaced)."""

    labels: dict[LabelKey, LabelValue] | None = Field(
        default=None, max_length=MAX_ENTRIES, description="Extra pod labels (not modelpack.dev/ or app.kubernetes.io/)."
    )
    annotations: dict[LabelKey, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=MAX_ENTRIES, description="Extra pod annotations."
    )

    rules = (
        Rule(
            cel="!has(self.labels) || self.labels.all(k, "
            + " && ".join(f"!k.startsWith('{p}')" for p in RESERVED_LABEL_PREFIXES)
            + ")",
            message="podTemplate.metadata.labels: keys under modelpack.dev/ and app.kubernetes.io/ are the "
            "operator's (it selects server pods by them)",
            check=lambda m: all(_unreserved_label(k) for k in m.labels or {}),
        ),
    )


class FieldRef(ApiModel):
    """A field of the pod itself, e.g. metadata.name or status.podIP."""

    field_path: str = Field(
        pattern=r"^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])"
        r"|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$",
        max_length=256,
        description="metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], "
        "metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.hostIP(s) or status.podIP(s).",
    )


class ResourceFieldRef(ApiModel):
    """A resource request or limit of the server container."""

    resource: Literal[
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
    ] = Field(description="Which request or limit.")
    divisor: str | None = Field(default=None, pattern=RESOURCE_QUANTITY_PATTERN, description="Unit, e.g. 1Mi.")


class ConfigMapKeyRef(ApiModel):
    """One key of a ConfigMap in the pack's namespace."""

    name: str = Field(pattern=SUBDOMAIN_PATTERN, max_length=253, description="ConfigMap name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key in the ConfigMap.")
    optional: bool | None = Field(default=None, description="Start even if the ConfigMap or key is missing.")


class EnvVarSource(ApiModel):
    """Where an env value comes from; Secrets are not among them (a pack must not read what its author cannot)."""

    field_ref: FieldRef | None = None
    resource_field_ref: ResourceFieldRef | None = None
    config_map_key_ref: ConfigMapKeyRef | None = None

    rules = (
        Rule(
            cel="[has(self.fieldRef), has(self.resourceFieldRef), has(self.configMapKeyRef)].filter(x, x).size() == 1",
            message="valueFrom: set exactly one of fieldRef, resourceFieldRef or configMapKeyRef",
            check=lambda m: sum(x is not None for x in (m.field_ref, m.resource_field_ref, m.config_map_key_ref)) == 1,
        ),
    )


class EnvVar(ApiModel):
    """An environment variable added to the server container."""

    name: str = Field(pattern=ENV_NAME_PATTERN, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(default=None, description="Or a value read from the pod or a ConfigMap.")

    rules = (
        Rule(
            cel=f"!self.name.startsWith('MODELPACK_') && !(self.name in {_quoted(RESERVED_ENV)})",
            message=f"env: MODELPACK_* and {', '.join(RESERVED_ENV)} are set by the operator",
            check=lambda m: not m.name.startswith("MODELPACK_") and m.name not in RESERVED_ENV,
        ),
        Rule(
            cel="!(has(self.value) && has(self.valueFrom))",
            message="env: set value or valueFrom, not both",
            check=lambda m: not (m.value is not None and m.value_from is not None),
        ),
    )


class EmptyDir(ApiModel):
    """A scratch directory that lives as long as the pod."""

    medium: Literal["", "Memory"] | None = Field(default=None, description='"" (node disk) or Memory (tmpfs).')
    size_limit: str | None = Field(default=None, pattern=RESOURCE_QUANTITY_PATTERN, description="e.g. 1Gi.")


class KeyToPath(ApiModel):
    """One ConfigMap key projected to a relative file path."""

    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)
    path: str = Field(
        pattern=r"^([^/.][^/]*|\.[^/.][^/]*)(/([^/.][^/]*|\.[^/.][^/]*))*$",
        max_length=1024,
        description="Relative path without '..'.",
    )


class ConfigMapVolume(ApiModel):
    """A ConfigMap of the pack's namespace as files."""

    name: str = Field(pattern=SUBDOMAIN_PATTERN, max_length=253, description="ConfigMap name.")
    items: list[KeyToPath] | None = Field(default=None, max_length=MAX_ENTRIES, description="Keys to project.")
    optional: bool | None = None


class Volume(ApiModel):
    """A pod volume of an allow-listed kind (emptyDir or configMap), for ``serverContainer.volumeMounts``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Volume name (a DNS label).")
    empty_dir: EmptyDir | None = None
    config_map: ConfigMapVolume | None = None

    rules = (
        Rule(
            cel="has(self.emptyDir) != has(self.configMap)",
            message="volumes: set exactly one of emptyDir or configMap",
            check=lambda m: (m.empty_dir is not None) != (m.config_map is not None),
        ),
        Rule(
            cel=f"!(self.name in {_quoted(RESERVED_VOLUMES)})",
            message=f"volumes: the names {', '.join(RESERVED_VOLUMES)} are the operator's",
            check=lambda m: m.name not in RESERVED_VOLUMES,
        ),
    )


class VolumeMount(ApiModel):
    """One of ``spec.volumes`` mounted into the server container."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="A volume of podTemplate.spec.volumes.")
    mount_path: str = Field(pattern=PATH_PATTERN, max_length=1024, description="Absolute path, no '..'.")
    read_only: bool | None = None

    rules = (
        Rule(
            cel=f"!(self.mountPath in {_quoted(RESERVED_MOUNT_PATHS)})",
            message=f"volumeMounts: {', '.join(RESERVED_MOUNT_PATHS)} are the operator's mounts",
            check=lambda m: m.mount_path not in RESERVED_MOUNT_PATHS,
        ),
    )


class ServerContainer(ApiModel):
    """Additions to the server container (its command, image, probes and security context stay the operator's)."""

    env: list[EnvVar] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="Extra environment variables, after the operator's.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    volume_mounts: list[VolumeMount] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="Mounts of podTemplate.spec.volumes.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["mountPath"]},
    )


class PodSpecOverrides(ApiModel):
    """The pod spec fields a ModelPack may set."""

    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Pod affinity / anti-affinity and node affinity, merged over the generated one "
        "(nodeAffinity from compute.instanceTypes is replaced if this sets nodeAffinity).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=MAX_ENTRIES, description="Tolerations appended to the generated ones."
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=8,
        description="Topology spread constraints.",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    priority_class_name: str | None = Field(
        default=None, pattern=SUBDOMAIN_PATTERN, max_length=253, description="PriorityClass."
    )
    volumes: list[Volume] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="Volumes for serverContainer.volumeMounts: emptyDir or configMap only.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    server_container: ServerContainer | None = Field(default=None, description="Additions to the server container.")

    rules = (
        Rule(
            cel="!has(self.serverContainer) || !has(self.serverContainer.volumeMounts) || "
            "self.serverContainer.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
            message="podTemplate.spec.serverContainer.volumeMounts: every mount names one of podTemplate.spec.volumes",
            check=lambda m: (
                m.server_container is None
                or all(
                    any(v.name == mount.name for v in m.volumes or [])
                    for mount in m.server_container.volume_mounts or []
                )
            ),
        ),
    )


class PodTemplate(ApiModel):
    """What a ModelPack may add to its server pods; everything else about the pod is the operator's."""

    metadata: PodMetadata | None = Field(default=None, description="Extra labels and annotations.")
    spec: PodSpecOverrides | None = Field(default=None, description="Scheduling, env and allow-listed volumes.")
