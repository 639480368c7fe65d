"""Writing a status: only the fields the operator computed, through the status subresource.

Conditions themselves (transition times that move only on a change) are the core's :mod:`modelpack.conditions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelpack.api.common import API_VERSION

if TYPE_CHECKING:
    from modelpack_operator.kube import Kube


def write_status(kube: Kube, kind: str, meta: Mapping[str, Any], status: dict[str, Any]) -> None:
    """Apply ``status`` to the object's status subresource (only the fields the operator computed)."""
    kube.apply(
        {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": status,
        },
        subresource="status",
    )
