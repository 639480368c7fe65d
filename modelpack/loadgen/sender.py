"""One HTTP request on the hot path: pre-encoded body, pre-parsed URL, result classified into an error class."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    model: str
    url: URL
    body: bytes


def new_session(pool: int, timeout_s: float) -> aiohttp.ClientSession:
    """One pooled session per worker: keep-alive connections up to `pool`, never per host limits."""
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector, headers=JSON_HEADERS, timeout=aiohttp.ClientTimeout(total=timeout_s)
    )


def classify_status(status: int) -> str | None:
    """None for success (2xx), else the error class."""
    if 200 <= status < 300:
        return None
    if 400 <= status < 500:
        return "http4xx"
    if status >= 500:
        return "http5xx"
    return "other"


async def send(session: aiohttp.ClientSession, target: Target) -> tuple[str | None, int | None]:
    """(error class or None, HTTP status or None); the response body is read fully so the timing includes it.

    The session carries the JSON content type and the per-request timeout (see `new_session`), so nothing is
    merged per request.
    """
    try:
        async with session.post(target.url, data=target.body) as resp:
            await resp.read()
            return classify_status(resp.status), resp.status
    except TimeoutError:
        return "timeout", None
    except aiohttp.ClientConnectorError:
        return "connect", None
    except (aiohttp.ClientError, OSError):
        return "other", None
