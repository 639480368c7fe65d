"""Child object names that always fit Kubernetes' 63-character limit, even for the longest parent names."""

from __future__ import annotations

import hashlib

MAX_NAME = 63


def child_name(parent: str, suffix: str, limit: int = MAX_NAME) -> str:
    """``<parent>-<suffix>``; a parent too long to fit is cut and made unique again with a short hash."""
    name = f"{parent}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(parent.encode()).hexdigest()[:6]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{parent[:keep].rstrip('-')}-{digest}-{suffix}"
