"""Ask V2 servers what they serve before any load: model metadata and the repository index.

Every failure becomes a :class:`TargetError` naming the URL and what went wrong, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from modelpack.loadgen.endpoints import Endpoint, normalize_url
from modelpack.loadgen.errors import TargetError

PROBE_TIMEOUT_S = 10.0


def new_session(pool: int) -> aiohttp.ClientSession:
    """A pooled session for probing: keep-alive connections up to `pool`, never per host limits."""
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(connector=connector)


async def _json(session: aiohttp.ClientSession, method: str, url: str, base: str, what: str) -> tuple[int, Any]:
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as resp:
            body = await resp.read()
            status = resp.status
    except aiohttp.ClientConnectorError as err:
        raise TargetError(f"cannot reach {base}: {err.os_error.strerror or err}") from None
    except TimeoutError:
        raise TargetError(f"{base} did not answer {what} within {PROBE_TIMEOUT_S:g}s") from None
    except aiohttp.ClientError as err:
        raise TargetError(f"cannot talk to {base}: {err}") from None
    if status >= 300:
        return status, None
    try:
        return status, json.loads(body)
    except ValueError:
        raise TargetError(f"{base} answered {what} with something that is not JSON: is it a V2 model server?") from None


async def fetch_metadata(session: aiohttp.ClientSession, endpoint: Endpoint) -> dict[str, Any]:
    """``GET {url}/v2/models/{model}``; a 404 means the server does not have that model."""
    what = f"GET /v2/models/{endpoint.model}"
    status, data = await _json(session, "GET", endpoint.metadata_url, endpoint.url, what)
    if status == 404:
        raise TargetError(f"model {endpoint.model!r} is not served at {endpoint.url} ({what} answered 404)")
    if status >= 300 or not isinstance(data, dict):
        raise TargetError(f"{endpoint.url} answered {what} with HTTP {status}: is it a V2 model server?")
    return data


async def list_models(session: aiohttp.ClientSession, url: str) -> list[str]:
    """Names in the server's repository index (``POST /v2/repository/index``) it can serve: loaded, loading or
    loadable on demand (a lazily loading server lists most of its models UNAVAILABLE), not FAILED."""
    base = normalize_url(url)
    what = "POST /v2/repository/index"
    status, data = await _json(session, "POST", f"{base}/v2/repository/index", base, what)
    if status >= 300 or not isinstance(data, list):
        raise TargetError(f"{base} answered {what} with HTTP {status}: it has no repository index; name models")
    names = [
        str(item["name"])
        for item in data
        if isinstance(item, dict) and "name" in item and str(item.get("state", "")).upper() != "FAILED"
    ]
    if not names:
        raise TargetError(f"{base} lists no servable models in its repository index")
    return sorted(dict.fromkeys(names))


async def discover(urls: list[str]) -> dict[str, list[str]]:
    """Repository index of each server (for `--models-from-server`)."""
    async with aiohttp.ClientSession() as session:
        return {normalize_url(u): await list_models(session, u) for u in urls}
