"""Shared pieces of the API types: camelCase models, durations, quantities, cross-field rules.

Cross-field rules are declared once as :class:`Rule` (a CEL expression for the API server and a
Python predicate for the local runtime and CLI) so both runtimes refuse the same objects with the
same message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"

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
    immutable_message: ClassVar[str | None] = None
    """When set, the API server refuses any change to this object once created (a CEL transition rule)."""

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
