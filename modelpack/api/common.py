"""Types both kinds share: object metadata, conditions, latency summaries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelpack.api.base import ApiModel, StatusModel

GROUP = "modelpack.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS label (RFC 1123): what most object names must be."""
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""A DNS subdomain (ConfigMap, PriorityClass names)."""
PACK_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: a pack's name starts its Services' names, and a Service name must start with a letter."""
PACK_NAME_MAX = 50
"""Longest ModelPack name: ``<pack>-s<index:04d>`` (its Deployments and Services) must fit in 63 characters."""


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata modelpack reads; the rest is kept but not interpreted."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Object name (a DNS label).")
    namespace: str | None = Field(default=None, description="Namespace; `default` when omitted.")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None


class Condition(StatusModel):
    """A standard Kubernetes condition, as `kubectl describe` shows it."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word a program can match on.")
    message: str = Field(default="", description="A sentence a person can act on.")
    last_transition_time: str | None = Field(default=None, description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed from."
    )


class LatencySummary(StatusModel):
    """Latency percentiles in milliseconds, read from one exact (merged) HdrHistogram."""

    p50: float = Field(description="Median latency, ms.")
    p90: float = Field(description="90th percentile, ms.")
    p95: float = Field(description="95th percentile, ms.")
    p99: float = Field(description="99th percentile, ms.")
    p999: float = Field(description="99.9th percentile, ms.")
    max: float = Field(description="Largest latency recorded, ms.")
    mean: float = Field(description="Mean latency, ms.")
