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


def classify_status(status: int) -> str | None:
    """None for success (2xx), else the error class."""
    if 200 <= status < 300:
        return None
    if 400 <= status < 500:
        return "http4xx"
    if status >= 500:
        return "http5xx"
    return "other"


async def send(
    session: aiohttp.ClientSession, target: Target, timeout: aiohttp.ClientTimeout
) -> tuple[str | None, int | None]:
    """(error class or None, HTTP status or None); the response body is read fully so the timing includes it."""
    try:
        async with session.post(target.url, data=target.body, headers=JSON_HEADERS, timeout=timeout) as resp:
            await resp.read()
            return classify_status(resp.status), resp.status
    except TimeoutError:
        return "timeout", None
    except aiohttp.ClientConnectorError:
        return "connect", None
    except (aiohttp.ClientError, OSError):
        return "other", None
