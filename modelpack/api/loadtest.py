"""The LoadTest kind: load generated against a ModelPack, results written back as status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from modelpack.api.base import SET, ApiModel, Rule, StatusModel, Unique, bounded_duration, parse_duration
from modelpack.api.common import PACK_NAME_MAX, PACK_NAME_PATTERN, Condition, LatencySummary, ObjectMeta
from modelpack.api.modelpack import MAX_MODELS, ModelName

LoadMode = Literal["constant-rate", "concurrency", "sweep"]
Spread = Literal["uniform", "zipf", "round-robin"]
MAX_RATE = 1_000_000.0
"""Requests per second one LoadTest may ask for (all workers together)."""
MAX_SWEEP_STEPS = 1000
if TYPE_CHECKING:  # durations are strings such as "30s" to the type checker; the bounds are checked at runtime
    RunDuration = str
    WarmupDuration = str
    RequestTimeout = str
    StepDuration = str
else:
    RunDuration = bounded_duration("1s", "24h")
    WarmupDuration = bounded_duration("0s", "1h")
    RequestTimeout = bounded_duration("10ms", "10m")
    StepDuration = bounded_duration("1s", "1h")


class TargetModels(ApiModel):
    """Which of the pack's models receive requests."""

    selection: Literal["all", "list", "sample"] = Field(
        default="all", description="`all` models of the pack, a `list` of names, or a random `sample`."
    )
    names: Annotated[list[ModelName], Unique] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MODELS,
        description="Model names for `list` (unique, each one of the pack's).",
        json_schema_extra=SET,
    )
    sample_size: int | None = Field(
        default=None, ge=1, le=MAX_MODELS, description="How many models `sample` draws (at most the pack's models)."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the sample and of the request spread.")

    rules = (
        Rule(
            cel="self.selection != 'list' || has(self.names)",
            message="target.models.names is required when selection is list",
            check=lambda m: m.selection != "list" or m.names is not None,
        ),
        Rule(
            cel="self.selection != 'sample' || has(self.sampleSize)",
            message="target.models.sampleSize is required when selection is sample",
            check=lambda m: m.selection != "sample" or m.sample_size is not None,
        ),
        Rule(
            cel="self.selection == 'list' || !has(self.names)",
            message="target.models.names goes with selection list",
            check=lambda m: m.selection == "list" or m.names is None,
        ),
        Rule(
            cel="self.selection == 'sample' || !has(self.sampleSize)",
            message="target.models.sampleSize goes with selection sample",
            check=lambda m: m.selection == "sample" or m.sample_size is None,
        ),
    )


class Target(ApiModel):
    """The ModelPack under test and how requests spread over its models."""

    model_pack: str = Field(
        pattern=PACK_NAME_PATTERN, max_length=PACK_NAME_MAX, description="Name of a ModelPack in this namespace."
    )
    models: TargetModels = Field(
        default_factory=TargetModels, json_schema_extra={"default": {}}, description="Which models receive requests."
    )
    spread: Spread = Field(default="uniform", description="`uniform`, `zipf` (a few hot models) or `round-robin`.")
    zipf_exponent: float = Field(default=1.1, gt=0, le=5, description="Skew of the zipf spread.")


class Stage(ApiModel):
    """One step of a staged load: hold a rate (or concurrency) for a while, ramping from the previous one."""

    duration: RunDuration = Field(description="How long the stage lasts, 1s to 24h, e.g. 30s.")
    rate: float | None = Field(
        default=None, gt=0, le=MAX_RATE, description="Target requests per second at the end of the stage."
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=100_000, description="Requests in flight (concurrency mode)."
    )


class Sweep(ApiModel):
    """Raise the rate step by step until the SLO breaks (the perf_analyzer question)."""

    start_rate: float = Field(default=10, gt=0, le=MAX_RATE, description="First step's requests per second.")
    step_rate: float = Field(default=10, gt=0, le=MAX_RATE, description="Added at each step.")
    max_rate: float = Field(default=10_000, gt=0, le=MAX_RATE, description="Never exceed this rate.")
    step_duration: StepDuration = Field(default="10s", description="Measured time per step, 1s to 1h.")

    rules = (
        Rule(
            cel="self.startRate <= self.maxRate",
            message="load.sweep.startRate cannot exceed load.sweep.maxRate",
            check=lambda m: m.start_rate <= m.max_rate,
        ),
        Rule(
            cel=f"(self.maxRate - self.startRate) / self.stepRate < {MAX_SWEEP_STEPS}.0",
            message=f"load.sweep: (maxRate - startRate) / stepRate makes more than {MAX_SWEEP_STEPS} steps; "
            "raise stepRate",
            check=lambda m: (m.max_rate - m.start_rate) / m.step_rate < MAX_SWEEP_STEPS,
        ),
    )


class Load(ApiModel):
    """The load pattern."""

    mode: LoadMode = Field(
        default="constant-rate",
        description=(
            "`constant-rate` (open loop), `concurrency` (closed loop) or `sweep` (find the max rate within SLO)."
        ),
    )
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE, description="Requests per second (constant-rate).")
    arrival: Literal["uniform", "poisson"] = Field(
        default="uniform", description="Send times: evenly spaced or Poisson."
    )
    concurrency: int | None = Field(default=None, ge=1, le=100_000, description="Requests in flight (concurrency).")
    stages: list[Stage] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Optional ramp instead of rate/concurrency (constant-rate and concurrency modes).",
    )
    sweep: Sweep | None = Field(default=None, description="Sweep settings (mode sweep).")
    duration: RunDuration = Field(default="30s", description="Measured duration after warm-up, 1s to 24h.")
    warmup: WarmupDuration = Field(default="5s", description="Load sent first and left out of results, 0s to 1h.")
    timeout: RequestTimeout = Field(default="10s", description="Per-request timeout, 10ms to 10m.")
    max_in_flight: int = Field(default=1000, ge=1, le=100_000, description="Bound on outstanding requests per worker.")

    rules = (
        Rule(
            cel="self.mode != 'constant-rate' || has(self.rate) || has(self.stages)",
            message="load.rate (or load.stages) is required in constant-rate mode",
            check=lambda m: m.mode != "constant-rate" or m.rate is not None or m.stages is not None,
        ),
        Rule(
            cel="self.mode != 'concurrency' || !has(self.rate)",
            message="load.rate cannot be set in concurrency mode: use load.concurrency",
            check=lambda m: m.mode != "concurrency" or m.rate is None,
        ),
        Rule(
            cel="self.mode != 'concurrency' || has(self.concurrency) || has(self.stages)",
            message="load.concurrency (or load.stages) is required in concurrency mode",
            check=lambda m: m.mode != "concurrency" or m.concurrency is not None or m.stages is not None,
        ),
        Rule(
            cel="self.mode == 'concurrency' || !has(self.concurrency)",
            message="load.concurrency is only valid in concurrency mode",
            check=lambda m: m.mode == "concurrency" or m.concurrency is None,
        ),
        Rule(
            cel="self.mode == 'sweep' || !has(self.sweep)",
            message="load.sweep is only valid in sweep mode",
            check=lambda m: m.mode == "sweep" or m.sweep is None,
        ),
        Rule(
            cel="!has(self.stages) || (self.mode == 'constant-rate' ? (!has(self.rate) && "
            "self.stages.all(s, has(s.rate) && !has(s.concurrency))) : self.mode == 'concurrency' ? "
            "(!has(self.concurrency) && self.stages.all(s, has(s.concurrency) && !has(s.rate))) : false)",
            message="load.stages replace load.rate / load.concurrency: in constant-rate mode every stage sets rate, "
            "in concurrency mode every stage sets concurrency, and sweep mode has no stages",
            check=lambda m: (
                m.stages is None
                or (
                    m.rate is None and all(s.rate is not None and s.concurrency is None for s in m.stages)
                    if m.mode == "constant-rate"
                    else m.concurrency is None and all(s.concurrency is not None and s.rate is None for s in m.stages)
                    if m.mode == "concurrency"
                    else False
                )
            ),
        ),
    )

    def duration_seconds(self) -> float:
        return parse_duration(self.duration)

    def warmup_seconds(self) -> float:
        return parse_duration(self.warmup)

    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class Payload(ApiModel):
    """What each request carries."""

    mode: Literal["generated", "given"] = Field(
        default="generated", description="`generated` from each model's declared inputs, or `given` below."
    )
    batch_size: int = Field(default=1, ge=1, le=1024, description="Rows per request (generated).")
    text: str | None = Field(
        default=None, max_length=65_536, description="Text for BYTES inputs of text models (generated)."
    )
    request: dict[str, Any] | None = Field(
        default=None,
        description="A full Open Inference Protocol V2 request body sent as is (given).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    rules = (
        Rule(
            cel="self.mode != 'given' || has(self.request)",
            message="payload.request is required when payload.mode is given",
            check=lambda m: m.mode != "given" or m.request is not None,
        ),
    )


class Slo(ApiModel):
    """Service level objective; every bound set must hold for the SLO to be met."""

    p50_latency_ms: float | None = Field(default=None, gt=0, le=3_600_000, description="Median latency bound, ms.")
    p90_latency_ms: float | None = Field(default=None, gt=0, le=3_600_000, description="p90 latency bound, ms.")
    p99_latency_ms: float | None = Field(default=None, gt=0, le=3_600_000, description="p99 latency bound, ms.")
    max_error_rate: float | None = Field(default=None, ge=0, le=1, description="Errors / requests bound, 0..1.")
    min_throughput: float | None = Field(
        default=None, ge=0, le=MAX_RATE, description="Successful requests per second, at least."
    )


class LoadTestSpec(ApiModel):
    """What a user runs. A change (a new ``metadata.generation``, e.g. an Argo CD sync of an edit in Git) starts a
    new run: a run still going is stopped, and ``status.history`` keeps the last runs' results, each with the
    generation it ran."""

    target: Target = Field(description="The ModelPack under test.")
    load: Load = Field(description="Load pattern.")
    workers: int = Field(default=1, ge=1, le=1000, description="Load-generating pods sharing the rate.")
    payload: Payload = Field(default_factory=Payload, json_schema_extra={"default": {}}, description="Request bodies.")
    slo: Slo | None = Field(default=None, description="Objective evaluated into the SLOMet condition.")
    ttl_seconds_after_finished: int = Field(
        default=600,
        ge=0,
        le=2_592_000,
        description="Delete the finished Job after this long (at most 30 days); the LoadTest and its results stay.",
    )

    rules = (
        Rule(
            cel="self.load.mode != 'sweep' || has(self.slo)",
            message="slo is required in sweep mode: the sweep stops when the SLO breaks",
            check=lambda m: m.load.mode != "sweep" or m.slo is not None,
        ),
    )


class ErrorsByClass(StatusModel):
    """Failed requests by cause."""

    timeout: int = Field(default=0, description="No response within load.timeout.")
    connect: int = Field(default=0, description="Connection refused, reset or DNS failure.")
    http4xx: int = Field(default=0, alias="http4xx", description="Answered 4xx (bad request, unknown model).")
    http5xx: int = Field(default=0, alias="http5xx", description="Answered 5xx (e.g. 503 queue full).")
    other: int = Field(default=0, description="Any other failure.")
    dropped: int = Field(
        default=0,
        description="Sends the load generator could not make (its in-flight bound stayed full to the end of the "
        "window): a shortfall of the client, not an answer of the server; add workers or raise load.maxInFlight.",
    )


class ModelResult(StatusModel):
    """One model's share of the results."""

    model: str
    requests: int
    errors: int
    latency_ms: LatencySummary


class Results(StatusModel):
    """Merged results of every worker: exact percentiles from one merged HdrHistogram."""

    requests: int = Field(description="Requests sent in the measured window.")
    successes: int = Field(description="Requests answered 2xx.")
    errors: int = Field(description="Requests that failed.")
    errors_by_class: ErrorsByClass = Field(default_factory=ErrorsByClass, description="Failures by cause.")
    errors_by_status: dict[str, int] = Field(default_factory=dict, description="HTTP status -> count of non-2xx.")
    requested_rate: float | None = Field(default=None, description="Requests per second asked for (open loop).")
    achieved_rate: float = Field(description="Requests per second actually sent.")
    throughput: float = Field(description="Successful requests per second.")
    duration_seconds: float = Field(description="Measured window length.")
    late_sends: int = Field(default=0, description="Sends more than 1 ms behind schedule.")
    schedule_delay_p99_ms: float = Field(default=0.0, description="p99 of send time minus scheduled time, ms.")
    latency_ms: LatencySummary | None = Field(
        default=None, description="From scheduled send to response (coordinated-omission free)."
    )
    service_time_ms: LatencySummary | None = Field(default=None, description="From actual send to response.")
    per_model: list[ModelResult] | None = Field(default=None, description="Slowest models first (bounded).")
    histogram: str | None = Field(default=None, description="Encoded HdrHistogram of latency (µs), for exact merging.")
    service_histogram: str | None = Field(default=None, description="Encoded HdrHistogram of service time (µs).")


class SweepStep(StatusModel):
    """One rate step of a sweep."""

    rate: float
    slo_met: bool
    throughput: float
    p50_ms: float
    p99_ms: float
    error_rate: float


class SweepResult(StatusModel):
    """The answer to 'how much can it take within the SLO'."""

    max_rate_meeting_slo: float | None = Field(default=None, description="Highest rate whose step met the SLO.")
    steps: list[SweepStep] = Field(default_factory=list)


class SloVerdict(StatusModel):
    """Whether the SLO held, and what broke it."""

    met: bool
    violations: list[str] = Field(default_factory=list, description="Each bound that failed, with measured value.")


class Cost(StatusModel):
    """What the measured throughput costs on the nodes the pack occupies."""

    hourly_cost: float = Field(description="Share of node prices the pack's pods occupy, per hour.")
    cost_per_million_requests: float | None = Field(default=None, description="hourly_cost / (throughput*3600) * 1e6.")
    currency: str = "USD"
    price_source: str | None = None
    per_million: str | None = Field(
        default=None, description="cost_per_million_requests with its currency, e.g. '0.0213 USD' (printer column)."
    )

    @model_validator(mode="after")
    def _display(self) -> Cost:
        if self.cost_per_million_requests is not None:
            self.per_million = f"{self.cost_per_million_requests:.4g} {self.currency}"
        return self


LoadTestPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
RunPhase = Literal["Succeeded", "Failed", "Superseded"]
HISTORY_MAX = 5
"""Runs kept in ``status.history``: enough to compare an edit with the last few, small enough for any status."""


class RunRecord(StatusModel):
    """One run of a LoadTest (one ``metadata.generation``) in a line: what ``kubectl get`` showed when it ended."""

    generation: int | None = Field(default=None, description="The metadata.generation (spec) the run ran.")
    phase: RunPhase = Field(description="Succeeded, Failed, or Superseded (the spec changed while it ran).")
    reason: str = Field(default="", description="Reason of its Complete condition, e.g. SLOMissed.")
    start_time: str | None = Field(default=None, description="When its workers started sending (RFC 3339).")
    completion_time: str | None = Field(default=None, description="When it was judged or stopped (RFC 3339).")
    requests: int | None = Field(default=None, description="Requests sent in the measured window.")
    throughput: float | None = Field(default=None, description="Successful requests per second.")
    p50_ms: float | None = Field(default=None, description="Median latency, ms.")
    p99_ms: float | None = Field(default=None, description="p99 latency, ms.")
    errors: int | None = Field(default=None, description="Requests that failed.")
    slo_verdict: Literal["Met", "Missed", "None"] | None = Field(default=None, description="Met, Missed or None.")


class LoadTestStatus(StatusModel):
    """Where the run is and what it measured."""

    phase: LoadTestPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    observed_generation: int | None = None
    start_time: str | None = Field(default=None, description="When workers started sending (RFC 3339).")
    completion_time: str | None = Field(default=None, description="When results were merged (RFC 3339).")
    workers_succeeded: int | None = None
    workers_failed: int | None = None
    results: Results | None = None
    sweep: SweepResult | None = None
    slo: SloVerdict | None = None
    slo_verdict: Literal["Met", "Missed", "None"] | None = Field(
        default=None, description="Met, Missed, or None when no SLO is set (for printer columns)."
    )
    cost: Cost | None = None
    conditions: list[Condition] | None = Field(default=None, description="Complete, SLOMet.")
    history: list[RunRecord] | None = Field(
        default=None,
        max_length=HISTORY_MAX,
        description=f"The last {HISTORY_MAX} runs that ended (one per spec generation), newest first; the fields "
        "above are the newest run's.",
    )


class LoadTest(ApiModel):
    """A load test run against a ModelPack."""

    api_version: Literal["modelpack.dev/v1alpha1"] = Field(default="modelpack.dev/v1alpha1", alias="apiVersion")
    kind: Literal["LoadTest"] = "LoadTest"
    metadata: ObjectMeta
    spec: LoadTestSpec
    status: LoadTestStatus | None = None
