"""``spec.autoscaling`` of a ModelPack: load, not the spec, decides how many pods each server runs."""

from __future__ import annotations

from pydantic import Field

from modelpack.api.base import ApiModel, Rule

MAX_REPLICAS = 1000


class Autoscaling(ApiModel):
    """One HorizontalPodAutoscaler per server Deployment, between the bounds, on one target. The operator then
    leaves each Deployment's replica count to its HPA (spec.replicas is not applied)."""

    min_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS, description="Fewest pods per server.")
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS, description="Most pods per server.")
    target_cpu_utilization: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Target average CPU use of a server's pods, percent of their CPU request (needs metrics-server).",
    )
    target_in_flight: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="Target average requests in flight per pod (the server's modelpack_requests_in_flight gauge, "
        "which a custom-metrics adapter such as prometheus-adapter must serve to the HPA).",
    )

    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="autoscaling.minReplicas cannot exceed autoscaling.maxReplicas",
            check=lambda m: m.min_replicas <= m.max_replicas,
        ),
        Rule(
            cel="has(self.targetCpuUtilization) != has(self.targetInFlight)",
            message="autoscaling: set exactly one of targetCpuUtilization or targetInFlight",
            check=lambda m: (m.target_cpu_utilization is None) != (m.target_in_flight is None),
        ),
    )
