"""Find the models of a pack that is already running (``modelpack run --endpoint``), through each server's V2
repository index as the load generator reads it (:func:`modelpack.loadgen.probe.discover`)."""

from __future__ import annotations

import asyncio

from modelpack.loadgen.errors import LoadgenError


class DiscoveryError(RuntimeError):
    """An endpoint that is not a reachable model server; the message names the URL."""


def discover(urls: list[str]) -> dict[str, str]:
    """model -> server URL over every endpoint's ready models; a model listed twice goes to the first endpoint."""
    from modelpack.loadgen.probe import discover as read_indexes

    try:
        indexes = asyncio.run(read_indexes(urls))
    except LoadgenError as err:
        raise DiscoveryError(f"--endpoint: {err}") from None
    routes: dict[str, str] = {}
    for url, names in indexes.items():
        for name in names:
            routes.setdefault(name, url)
    return routes
