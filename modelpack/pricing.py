"""Instance price tables: what a node costs per hour, with where the figure came from.

One YAML shape serves three places so a price never has to be re-typed: the default table shipped as
package data (``modelpack/data/pricing.yaml``), a file given to ``modelpack plan --prices``, and the
operator's pricing ConfigMap (key ``prices.yaml``, rendered from the Helm value ``pricing``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from modelpack import userfiles
from modelpack.api.base import ApiModel
from modelpack.api.loading import format_validation_error

ComputeType = Literal["graviton", "x86", "inferentia", "gpu"]
CONFIGMAP_KEY = "prices.yaml"
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


class PriceError(ValueError):
    """A price table that cannot be read, or a node whose price it does not know."""


class InstancePrice(ApiModel):
    """One instance type: its on-demand price and the capacity that price buys."""

    hourly: float = Field(gt=0, description="On-demand price per hour, in the table's currency.")
    vcpu: int = Field(ge=1, description="vCPUs of the instance.")
    memory_gib: float = Field(gt=0, description="Memory of the instance, GiB.")
    accelerators: int = Field(default=0, ge=0, description="Neuron devices or GPUs.")
    accelerator_resource: str | None = Field(
        default=None, description="Extended resource the device plugin advertises, e.g. aws.amazon.com/neuron."
    )

    @model_validator(mode="after")
    def _accelerator_named(self) -> InstancePrice:
        if self.accelerators and not self.accelerator_resource:
            raise ValueError("acceleratorResource is required when accelerators is set")
        return self


class PriceTable(ApiModel):
    """Hourly prices of instance types in one region, with their source and date."""

    currency: str = Field(default="USD", min_length=1)
    region: str = Field(min_length=1)
    source: str = Field(min_length=1, description="Where the prices come from.")
    last_checked: str = Field(min_length=1, description="When someone last compared them with the source.")
    verified: bool = Field(default=False, description="True once the figures were checked against the source.")
    note: str | None = None
    families: dict[str, ComputeType] = Field(default_factory=dict, description="family -> compute type.")
    instances: dict[str, InstancePrice] = Field(min_length=1)

    def price_of(self, instance_type: str) -> InstancePrice:
        try:
            return self.instances[instance_type]
        except KeyError:
            raise PriceError(
                f"instance type {instance_type!r} is not in the price table ({self.region}, {self.source}); "
                "add it to the table"
            ) from None

    def family_of(self, instance_type: str) -> str:
        return instance_type.split(".", 1)[0]

    def compute_of(self, instance_type: str) -> ComputeType | None:
        return self.families.get(self.family_of(instance_type))

    def describe_source(self) -> str:
        """One line for status.cost.priceSource: source, region and date, flagged if unverified."""
        flag = "" if self.verified else ", unverified"
        return f"{self.source}; {self.region}; last checked {self.last_checked}{flag}"


def parse_price_table(doc: Any, origin: str) -> PriceTable:
    """Validate a decoded YAML document; errors name ``origin`` and the field."""
    if not isinstance(doc, dict):
        raise PriceError(f"{origin}: expected a mapping with region, source, lastChecked and instances")
    try:
        return PriceTable.model_validate(doc)
    except ValidationError as err:
        raise PriceError(f"{origin}: invalid price table:\n{format_validation_error(err)}") from None


def _parse_text(text: str, origin: str) -> PriceTable:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PriceError(f"{origin}: not valid YAML: {userfiles.yaml_problem(err)}") from None
    return parse_price_table(doc, origin)


def load_price_table(path: str | Path) -> PriceTable:
    p = Path(path)
    text = userfiles.read_text(p, PriceError)
    return _parse_text(text, str(p))


def default_price_table() -> PriceTable:
    text = resources.files("modelpack").joinpath("data/pricing.yaml").read_text()
    return _parse_text(text, "modelpack/data/pricing.yaml")


def from_configmap(configmap: dict[str, Any]) -> PriceTable:
    """The table held by a ConfigMap (as the API returns it, a dict) under ``prices.yaml``."""
    meta = configmap.get("metadata") or {}
    origin = f"ConfigMap {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    text = (configmap.get("data") or {}).get(CONFIGMAP_KEY)
    if text is None:
        raise PriceError(f"{origin}: no data key {CONFIGMAP_KEY!r}")
    return _parse_text(text, f"{origin} key {CONFIGMAP_KEY}")


def to_configmap(table: PriceTable, name: str, namespace: str) -> dict[str, Any]:
    """A ConfigMap carrying ``table`` in the shape :func:`from_configmap` reads."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "modelpack"}},
        "data": {CONFIGMAP_KEY: yaml.safe_dump(table.to_dict(), sort_keys=False)},
    }
