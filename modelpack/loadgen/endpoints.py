"""Targets: (model, base URL) pairs, checked up front so a typo fails before any load is sent."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from modelpack.api.loadtest import TargetModels
from modelpack.loadgen.errors import LoadgenError


def normalize_url(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash; anything else is refused with the reason."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise LoadgenError(f"invalid URL {url!r}: expected http://host:port or https://host:port")
    if not parts.hostname:
        raise LoadgenError(f"invalid URL {url!r}: no host name")
    try:
        _ = parts.port
    except ValueError:
        raise LoadgenError(f"invalid URL {url!r}: the port must be a number from 0 to 65535") from None
    if parts.query or parts.fragment:
        raise LoadgenError(f"invalid URL {url!r}: give the server's base URL without ?query or #fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Endpoint:
    """One model at one server; requests go to ``{url}/v2/models/{model}/infer``."""

    model: str
    url: str

    def __post_init__(self) -> None:
        if not self.model or "/" in self.model:
            raise LoadgenError(f"invalid model name {self.model!r}: it must be non-empty and contain no '/'")
        object.__setattr__(self, "url", normalize_url(self.url))

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/v2/models/{quote(self.model, safe='')}"

    @property
    def infer_url(self) -> str:
        return f"{self.metadata_url}/infer"


def select_models(models: TargetModels, available: Sequence[str]) -> list[str]:
    """Apply a LoadTest's ``target.models`` to the names a pack (or server) offers, in a stable order."""
    names = sorted(set(available))
    if models.selection == "list":
        assert models.names is not None
        missing = [n for n in models.names if n not in set(names)]
        if missing:
            raise LoadgenError(f"target.models.names: not served: {', '.join(missing)}")
        return list(dict.fromkeys(models.names))
    if models.selection == "sample":
        assert models.sample_size is not None
        if models.sample_size > len(names):
            raise LoadgenError(f"target.models.sampleSize ({models.sample_size}) is more than the {len(names)} models")
        return sorted(random.Random(models.seed).sample(names, models.sample_size))
    return names
