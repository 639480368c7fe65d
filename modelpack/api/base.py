"""Shared pieces of the API types: camelCase models, durations, quantities, cross-field rules.

Cross-field rules are declared once as :class:`Rule` (a CEL expression for the API server and a
Python predicate for the local runtime and CLI) so both runtimes refuse the same objects with the
same message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
RESOURCE_QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
"""A container resource quantity: like QUANTITY_PATTERN plus millis (``100m`` of CPU)."""
QUALIFIED_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
"""A Kubernetes qualified name (label key, resource name): an optional DNS-subdomain prefix and a name."""
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``90s``, ``1m30s`` or ``250ms``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with ms, s, m or h, e.g. 30s or 1m30s")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def parse_resource_quantity(text: str) -> float:
    """A container resource quantity as a number (``100m`` is 0.1), for comparing requests with limits."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?", text)
    if not match:
        raise ValueError(f"invalid quantity {text!r}: use a number with an optional unit, e.g. 500m, 2 or 4Gi")
    unit = match.group(2) or ""
    scale = 0.001 if unit == "m" else {**_QUANTITY_UNITS, "Pi": 2**50, "P": 10**15}[unit]
    return float(match.group(1)) * scale


def _bounded(kind: str, pattern: str, parse: Callable[[str], float], cel_of: str, minimum: str, maximum: str) -> Any:
    """A string type holding a ``kind`` between two bounds, checked by the API server (CEL ``cel_of(...)`` compared
    with the bounds) and by pydantic (``parse``) with one message."""
    lo, hi = parse(minimum), parse(maximum)
    message = f"must be a {kind} from {minimum} to {maximum}"
    if cel_of == "duration":
        cel = f"duration(self) >= duration('{minimum}') && duration(self) <= duration('{maximum}')"
    else:
        cel = (
            f"{cel_of}(self).compareTo({cel_of}('{minimum}')) >= 0 && "
            f"{cel_of}(self).compareTo({cel_of}('{maximum}')) <= 0"
        )

    def check(value: str) -> str:
        if not lo <= parse(value) <= hi:
            raise ValueError(message)
        return value

    schema: JsonDict = {"x-kubernetes-validations": [{"rule": cel, "message": message}]}
    return Annotated[str, Field(pattern=pattern, max_length=32, json_schema_extra=schema), AfterValidator(check)]


def bounded_duration(minimum: str, maximum: str) -> Any:
    """A duration type bounded to [minimum, maximum] (CEL's duration() reads the same Go-style spelling)."""
    return _bounded("duration", DURATION_PATTERN, parse_duration, "duration", minimum, maximum)


def bounded_quantity(minimum: str, maximum: str) -> Any:
    """A byte quantity type bounded to [minimum, maximum] (CEL's Kubernetes quantity library on the API server)."""
    return _bounded("quantity", QUANTITY_PATTERN, parse_quantity, "quantity", minimum, maximum)


H = TypeVar("H", bound=Hashable)


def _unique(items: Sequence[H] | None) -> Sequence[H] | None:
    if items is None:
        return None
    seen: set[H] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"Duplicate value: {item!r} (the list is a set)")
        seen.add(item)
    return items


Unique = AfterValidator(_unique)
"""Refuses duplicates; pair with ``json_schema_extra=SET`` so the API server does the same."""
SET: JsonDict = {"x-kubernetes-list-type": "set"}


def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity such as ``512Mi`` or ``2G``."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", text)
    if not match:
        raise ValueError(f"invalid quantity {text!r}: use a number with an optional unit, e.g. 512Mi or 2Gi")
    return int(float(match.group(1)) * _QUANTITY_UNITS[match.group(2) or ""])


@dataclass(frozen=True)
class Rule:
    """A cross-field validation rule, enforced by the API server (CEL) and by pydantic (check)."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused, rules enforced."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The object as the API server would store it: camelCase, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    """Status types accept fields they do not know: an older operator must not choke on newer status."""

    model_config = ConfigDict(extra="ignore")
