"""The ModelPack kind: a fleet of distinct models and how densely to pack them onto which compute."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from modelpack.api.autoscaling import Autoscaling
from modelpack.api.base import (
    RESOURCE_QUANTITY_PATTERN,
    SET,
    ApiModel,
    Rule,
    StatusModel,
    Unique,
    bounded_quantity,
    parse_resource_quantity,
)
from modelpack.api.common import PACK_NAME_MAX, PACK_NAME_PATTERN, Condition, ObjectMeta
from modelpack.api.podtemplate import LabelKey, LabelValue, PodTemplate, Toleration
from modelpack.modelnames import MODEL_NAME_MAX, MODEL_NAME_PATTERN, MODEL_NAME_RULE

ComputeType = Literal["graviton", "x86", "inferentia", "gpu"]
Precision = Literal["fp32", "int8-dynamic", "bf16"]
"""The optimized artifact a model is built as (model_server/precision.py): fp32 frozen, int8 dynamic quantization of
the Linear layers, or bfloat16 (CPUs with native bf16 only)."""
DEFAULT_PRECISION: dict[ComputeType, Precision] = {
    "x86": "int8-dynamic",
    "graviton": "int8-dynamic",
    "inferentia": "fp32",
    "gpu": "fp32",
}
"""``server.precision`` when unset, per compute type. x86: measured (docs/performance.md, bert-base precision
table: int8-dynamic within the default tolerance and faster than fp32 on an AVX-512 VNNI Xeon). graviton:
int8-dynamic runs on every Graviton (bf16 only from Graviton3 on), not measured here (no arm64 hardware).
inferentia / gpu: fp32; neither runs these CPU artifacts' kernels."""
_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*)"
"""One path segment that is neither ``.`` nor ``..``: a store path never climbs out of its bucket or claim."""
STORE_URI_PATTERN = (
    rf"^(s3://[a-z0-9][a-z0-9.\-]{{1,61}}[a-z0-9](/{_SEGMENT})*/?"
    rf"|pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/{_SEGMENT})*/?"
    rf"|file:///(\./)?({_SEGMENT}(/{_SEGMENT})*/?)?)$"
)
DEFAULT_SERVER_IMAGE = "ghcr.io/modelpack/model-server:0.1.0"
IMAGE_PATTERN = (
    r"^[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+([._-][a-z0-9]+)*)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
"""An image reference (registry[:port]/path[:tag][@digest]), so a typo is refused here, not as InvalidImageName."""

MAX_MODELS = 100_000
"""Most models one pack can hold at all; an operator's MODELPACK_LIMITS_MAX_MODELS_PER_PACK may allow fewer."""
MAX_SERVERS = 10_000
"""Most servers (Deployments) one pack can have at all: ``<pack>-s<index:04d>`` names stop at s9999."""
MAX_PODS = 50_000
"""Most server pods (servers x replicas) one pack can ask for at all."""

ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, min_length=1, max_length=MODEL_NAME_MAX)]
ResourceMap = Annotated[
    dict[LabelKey, Annotated[str, Field(pattern=RESOURCE_QUANTITY_PATTERN, max_length=32)]], Field(max_length=16)
]


class ModelStore(ApiModel):
    """Where the models' artifacts live."""

    uri: str = Field(
        pattern=STORE_URI_PATTERN,
        max_length=1024,
        description=(
            "Model store: `s3://bucket/prefix` (read through boto3 into a local cache), "
            "`pvc://claim/path` (a PersistentVolumeClaim mounted read-only) or `file:///path` "
            "(a directory baked into the image or, for `modelpack run`, on this machine). "
            "No `.` or `..` path segments."
        ),
        examples=["s3://my-models/bert", "pvc://models/fleet", "file:///models"],
    )
    region: str | None = Field(
        default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", max_length=32, description="AWS region of an s3:// store."
    )


DEFAULT_NAME_PATTERN = "model-{index:05d}"
NAME_PATTERN_PATTERN = r"^([A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?)?\{index(:0?[1-9]d)?\}(\.?[A-Za-z0-9_-])*$"
"""Patterns whose every expansion is a model name: the text around ``{index}`` follows the model-name rule."""


class ModelSelection(ApiModel):
    """Which models the pack serves. Set exactly one of `names` (an explicit list) or `count` (names expanded
    from `namePattern`, starting at `startIndex`)."""

    names: Annotated[list[ModelName], Unique] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MODELS,
        description=f"Explicit model names (folders in the store), unique; not with `count`. {MODEL_NAME_RULE}.",
        json_schema_extra=SET,
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_MODELS,
        description="How many models to take from `namePattern`; not with `names`.",
    )
    name_pattern: str | None = Field(
        default=None,
        max_length=100,
        pattern=NAME_PATTERN_PATTERN,
        description=f"With `count`: Python format pattern for fleet names, `{{index}}` runs from `startIndex` "
        f"(default `{DEFAULT_NAME_PATTERN}`); e.g. `bert-{{index:03d}}`. Each expansion must be a model name.",
    )
    start_index: int | None = Field(
        default=None,
        ge=0,
        le=999_999_999,
        description="With `count`: first index substituted into `namePattern` (default 0).",
    )

    rules = (
        Rule(
            cel="has(self.names) != has(self.count)",
            message="set exactly one of models.names or models.count",
            check=lambda m: (m.names is not None) != (m.count is not None),
        ),
        Rule(
            cel="has(self.count) || (!has(self.namePattern) && !has(self.startIndex))",
            message="models.namePattern and models.startIndex go with models.count, not models.names",
            check=lambda m: m.count is not None or (m.name_pattern is None and m.start_index is None),
        ),
    )

    def size(self) -> int:
        """How many models, without expanding them (what limits are checked against)."""
        return len(self.names) if self.names is not None else self.count or 0

    def expand(self) -> list[str]:
        """Every model name, in the order placement assigns them to servers."""
        if self.names is not None:
            return list(self.names)
        assert self.count is not None
        pattern = self.name_pattern or DEFAULT_NAME_PATTERN
        start = self.start_index or 0
        return [pattern.format(index=i) for i in range(start, start + self.count)]


class Resources(ApiModel):
    """Container resources; quantities as Kubernetes writes them."""

    requests: ResourceMap | None = Field(default=None, description="e.g. {cpu: '2', memory: 4Gi}.")
    limits: ResourceMap | None = Field(default=None, description="e.g. {memory: 6Gi}.")

    rules = (
        Rule(
            cel="!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
            "quantity(self.requests[k]).compareTo(quantity(self.limits[k])) <= 0)",
            message="compute.resources: a request cannot exceed its limit",
            check=lambda m: all(
                parse_resource_quantity(v) <= parse_resource_quantity((m.limits or {})[k])
                for k, v in (m.requests or {}).items()
                if k in (m.limits or {})
            ),
        ),
    )


class Compute(ApiModel):
    """What hardware the servers run on, plus the scheduling and pod fields the defaults do not cover."""

    type: ComputeType = Field(
        description="`graviton` (arm64), `x86` (amd64), `inferentia` (AWS Neuron) or `gpu` (NVIDIA)."
    )
    instance_types: Annotated[list[LabelValue], Unique] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Restrict to these instance types (node.kubernetes.io/instance-type), e.g. [c7g.4xlarge].",
        json_schema_extra=SET,
    )
    accelerators_per_server: int = Field(
        default=1, ge=1, le=16, description="Neuron devices or GPUs each server requests (inferentia, gpu)."
    )
    node_selector: dict[LabelKey, LabelValue] | None = Field(
        default=None, max_length=32, description="Extra node labels, applied last."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Extra tolerations, appended."
    )
    resources: Resources | None = Field(
        default=None,
        description="Container resources, laid over the ones sized from the server spec (a request set without "
        "its limit raises the limit to it).",
    )
    pod_template: PodTemplate | None = Field(
        default=None,
        description="What else the server pods get, from an allow-list: labels, annotations, affinity, "
        "tolerations, topology spread, priority class, extra env and emptyDir/configMap volumes mounted into the "
        "server container. Maps merge into the generated pod; lists are appended. Nothing that grants rights "
        "(service account, host namespaces, privileged, hostPath, capabilities, secrets) can be set.",
    )


class Batching(ApiModel):
    """Dynamic batching per model: requests arriving close together run as one batch."""

    max_batch_size: int = Field(default=8, ge=1, le=1024, description="Largest batch run at once.")
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Upper bound, ms, on holding a busy model's next batch for more requests; a request to an idle"
        " model never waits. 0 never holds: batches form from what queued while the model ran.",
    )
    max_queue_size: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Requests waiting per model before the server answers 503 with Retry-After.",
    )


if TYPE_CHECKING:
    MemoryBudget = str
else:
    MemoryBudget = bounded_quantity("64Mi", "1Ti")


class ServerSpec(ApiModel):
    """Model server tuning."""

    image: str = Field(
        default=DEFAULT_SERVER_IMAGE,
        min_length=1,
        max_length=512,
        pattern=IMAGE_PATTERN,
        description="Model server image: registry/path[:tag][@sha256:digest].",
    )
    port: int = Field(default=8080, ge=1024, le=65535, description="HTTP port the server listens on.")
    memory_budget: MemoryBudget = Field(
        default="2Gi",
        description="Memory for loaded models, 64Mi to 1Ti; least recently used models are evicted beyond it.",
    )
    worker_threads: int = Field(
        default=2, ge=1, le=256, description="Torch intra-op threads; match the pod's CPU request."
    )
    batching: Batching = Field(
        default_factory=Batching, json_schema_extra={"default": {}}, description="Dynamic batching."
    )
    preload: bool = Field(default=False, description="Load every model at start instead of on first request.")
    precision: Precision | None = Field(
        default=None,
        description="Artifact the models are built as: `fp32` (frozen, optimized for inference), `int8-dynamic` "
        "(int8 Linear layers; x86 with VNNI or arm64) or `bf16` (only CPUs with native bf16: AVX512-BF16/AMX, "
        "Graviton3). Unset: `int8-dynamic` on x86 and graviton, `fp32` on inferentia and gpu. Chosen when the "
        "store is built (`modelpack run` builds the models a file:// store lacks at this precision; "
        "`modelpack models build --precision` for other stores), after a gate against fp32; each model's "
        "config.json records it with the measured accuracy, and the server shows what it records. Set here, "
        "servers refuse a model built otherwise, naming the command that rebuilds it.",
    )

    def resolved_precision(self, compute: ComputeType) -> Precision:
        """The precision set here, or the compute type's default (DEFAULT_PRECISION)."""
        return self.precision or DEFAULT_PRECISION[compute]


_MODELS_CEL = "(has(self.models.names) ? size(self.models.names) : (has(self.models.count) ? self.models.count : 0))"


class ModelPackSpec(ApiModel):
    """What a user declares: models, density, compute."""

    store: ModelStore = Field(description="Where the models come from.")
    models: ModelSelection = Field(description="Which models the pack serves.")
    models_per_server: int = Field(
        default=16, ge=1, le=10_000, description="Packing density: distinct models each server holds."
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Pods per server (each holds the same models); not with `autoscaling`."
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="Let a HorizontalPodAutoscaler per server set its pods from load."
    )
    compute: Compute = Field(description="Hardware and scheduling.")
    server: ServerSpec = Field(
        default_factory=ServerSpec, json_schema_extra={"default": {}}, description="Model server tuning."
    )

    rules = (
        Rule(
            cel=f"{_MODELS_CEL} <= self.modelsPerServer * {MAX_SERVERS}",
            message=f"models / modelsPerServer: a pack has at most {MAX_SERVERS} servers; raise "
            "spec.modelsPerServer or split the pack",
            check=lambda m: m.models.size() <= m.models_per_server * MAX_SERVERS,
        ),
        Rule(
            cel=f"({_MODELS_CEL} + self.modelsPerServer - 1) / self.modelsPerServer * self.replicas <= {MAX_PODS}",
            message=f"servers x spec.replicas: a pack has at most {MAX_PODS} server pods",
            check=lambda m: -(-m.models.size() // m.models_per_server) * m.replicas <= MAX_PODS,
        ),
        Rule(
            cel=f"!has(self.autoscaling) || ({_MODELS_CEL} + self.modelsPerServer - 1) / self.modelsPerServer"
            f" * self.autoscaling.maxReplicas <= {MAX_PODS}",
            message=f"servers x spec.autoscaling.maxReplicas: a pack has at most {MAX_PODS} server pods",
            check=lambda m: (
                m.autoscaling is None
                or -(-m.models.size() // m.models_per_server) * m.autoscaling.max_replicas <= MAX_PODS
            ),
        ),
    )

    def servers(self) -> int:
        """How many servers the pack has (ceil(models / modelsPerServer)), without placing anything."""
        return -(-self.models.size() // self.models_per_server)


ModelPackPhase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]


class ModelPackStatus(StatusModel):
    """What the operator observed; kept true on every reconcile."""

    phase: ModelPackPhase | None = Field(default=None, description="Pending, Progressing, Ready, Degraded or Failed.")
    observed_generation: int | None = Field(default=None, description="Generation this status describes.")
    servers: int | None = Field(default=None, description="Server groups (Deployments) in the pack.")
    ready_servers: int | None = Field(default=None, description="Servers with every replica available.")
    models: int | None = Field(default=None, description="Models placed.")
    ready_models: int | None = Field(default=None, description="Models on ready servers.")
    route_table: str | None = Field(
        default=None,
        description="ConfigMap holding model -> Service URL (routes.json) for the pack, or its first shard.",
    )
    route_table_shards: int | None = Field(
        default=None,
        description="ConfigMaps the route table spans, about one per 12,000 models: routeTable, then "
        "routeTable-1, routeTable-2, ...; each holds whole servers.",
    )
    routes: dict[str, str] | None = Field(
        default=None, description="model -> Service URL, only for packs of at most 64 models."
    )
    conditions: list[Condition] | None = Field(default=None, description="Ready, Progressing, Degraded.")


class ModelPack(ApiModel):
    """A fleet of distinct models packed onto servers."""

    api_version: Literal["modelpack.dev/v1alpha1"] = Field(default="modelpack.dev/v1alpha1", alias="apiVersion")
    kind: Literal["ModelPack"] = "ModelPack"
    metadata: ObjectMeta
    spec: ModelPackSpec
    status: ModelPackStatus | None = None

    rules = (
        Rule(
            cel=f"size(self.metadata.name) <= {PACK_NAME_MAX} && self.metadata.name.matches('{PACK_NAME_PATTERN}')",
            message=f"metadata.name: a ModelPack name is at most {PACK_NAME_MAX} lowercase letters, digits and '-', "
            "starting with a letter (it begins the names of the pack's Services)",
            check=lambda m: (
                len(m.metadata.name) <= PACK_NAME_MAX and bool(re.match(PACK_NAME_PATTERN, m.metadata.name))
            ),
        ),
    )
