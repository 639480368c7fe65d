"""Why a load run cannot start: bad settings or an unusable target, each with a message naming the culprit."""

from __future__ import annotations


class LoadgenError(ValueError):
    """Settings that cannot produce a meaningful run (rate, durations, URL); the message names the field or flag."""


class TargetError(LoadgenError):
    """The target cannot be used: unreachable, not a V2 server, or missing the requested model."""
