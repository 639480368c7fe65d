"""The ModelPack kind: a fleet of distinct models and how densely to pack them onto which compute."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelpack.api.base import QUANTITY_PATTERN, ApiModel, Rule, StatusModel
from modelpack.api.common import Condition, ObjectMeta

ComputeType = Literal["graviton", "x86", "inferentia", "gpu"]
STORE_URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?|file:///.*)$"
)
DEFAULT_SERVER_IMAGE = "ghcr.io/modelpack/model-server:0.1.0"


class ModelStore(ApiModel):
    """Where the models' artifacts live."""

    uri: str = Field(
        pattern=STORE_URI_PATTERN,
        description=(
            "Model store: `s3://bucket/prefix` (read through boto3 into a local cache), "
            "`pvc://claim/path` (a PersistentVolumeClaim mounted read-only) or `file:///path` "
            "(a directory baked into the image or, for `modelpack run`, on this machine)."
        ),
        examples=["s3://my-models/bert", "pvc://models/fleet", "file:///models"],
    )
    region: str | None = Field(default=None, description="AWS region of an s3:// store.")


class ModelSelection(ApiModel):
    """Which models the pack serves: an explicit list, or a count expanded from a name pattern."""

    names: list[str] | None = Field(
        default=None, min_length=1, description="Explicit model names (folders in the store)."
    )
    count: int | None = Field(
        default=None, ge=1, le=1_000_000, description="How many models to take from `namePattern`."
    )
    name_pattern: str = Field(
        default="model-{index:05d}",
        pattern=r"^[A-Za-z0-9._\-]*\{index(:0?[0-9]+d)?\}[A-Za-z0-9._\-]*$",
        description="Python format pattern for fleet names; `{index}` runs from `startIndex`.",
    )
    start_index: int = Field(default=0, ge=0, description="First index substituted into `namePattern`.")

    rules = (
        Rule(
            cel="has(self.names) != has(self.count)",
            message="set exactly one of models.names or models.count",
            check=lambda m: (m.names is not None) != (m.count is not None),
        ),
    )

    def expand(self) -> list[str]:
        """Every model name, in the order placement assigns them to servers."""
        if self.names is not None:
            return list(self.names)
        assert self.count is not None
        return [self.name_pattern.format(index=i) for i in range(self.start_index, self.start_index + self.count)]


class Toleration(ApiModel):
    """A Kubernetes toleration, passed through to the server pods."""

    model_config = ApiModel.model_config | {"alias_generator": None}

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class Resources(ApiModel):
    """Container resources; quantities as Kubernetes writes them."""

    requests: dict[str, str] | None = Field(default=None, description="e.g. {cpu: '2', memory: 4Gi}.")
    limits: dict[str, str] | None = Field(default=None, description="e.g. {memory: 6Gi}.")


class Compute(ApiModel):
    """What hardware the servers run on, plus pass-through scheduling for what the defaults do not cover."""

    type: ComputeType = Field(
        description="`graviton` (arm64), `x86` (amd64), `inferentia` (AWS Neuron) or `gpu` (NVIDIA)."
    )
    instance_types: list[str] | None = Field(
        default=None,
        description="Restrict to these instance types (node.kubernetes.io/instance-type), e.g. [c7g.4xlarge].",
    )
    accelerators_per_server: int = Field(
        default=1, ge=1, le=16, description="Neuron devices or GPUs each server requests (inferentia, gpu)."
    )
    node_selector: dict[str, str] | None = Field(default=None, description="Extra node labels, applied last.")
    tolerations: list[Toleration] | None = Field(default=None, description="Extra tolerations, appended.")
    resources: Resources | None = Field(
        default=None, description="Container resources; overrides the ones sized from the server spec."
    )
    pod_template: dict[str, Any] | None = Field(
        default=None,
        description="A partial PodTemplateSpec merged over the generated one (strategic: dicts merge, lists replace).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
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


class ServerSpec(ApiModel):
    """Model server tuning."""

    image: str = Field(default=DEFAULT_SERVER_IMAGE, min_length=1, description="Model server image.")
    port: int = Field(default=8080, ge=1024, le=65535, description="HTTP port the server listens on.")
    memory_budget: str = Field(
        default="2Gi",
        pattern=QUANTITY_PATTERN,
        description="Memory for loaded models; least recently used models are evicted beyond it.",
    )
    worker_threads: int = Field(
        default=2, ge=1, le=256, description="Torch intra-op threads; match the pod's CPU request."
    )
    batching: Batching = Field(
        default_factory=Batching, json_schema_extra={"default": {}}, description="Dynamic batching."
    )
    preload: bool = Field(default=False, description="Load every model at start instead of on first request.")


class ModelPackSpec(ApiModel):
    """What a user declares: models, density, compute."""

    store: ModelStore = Field(description="Where the models come from.")
    models: ModelSelection = Field(description="Which models the pack serves.")
    models_per_server: int = Field(
        default=16, ge=1, le=10_000, description="Packing density: distinct models each server holds."
    )
    replicas: int = Field(default=1, ge=0, le=1000, description="Pods per server (each holds the same models).")
    compute: Compute = Field(description="Hardware and scheduling.")
    server: ServerSpec = Field(
        default_factory=ServerSpec, json_schema_extra={"default": {}}, description="Model server tuning."
    )


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
