"""One HTTP request on the hot path: the request pre-built as bytes per target, the result classified.

Requests go through the lean keep-alive client in `client.py` (aiohttp still does the probing before a run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from modelpack.loadgen.client import Client, ConnectError, HttpError, Origin, build_request


@dataclass(frozen=True)
class Target:
    model: str
    url: URL
    body: bytes
    origin: Origin = field(init=False, repr=False, compare=False)
    request: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origin, request = build_request(self.url, self.body)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "request", request)


def new_client(pool: int, timeout_s: float) -> Client:
    """One client per worker: keep-alive connections, at most `pool` in flight, each request bounded by the timeout."""
    return Client(pool, timeout_s)


def classify_status(status: int) -> str | None:
    """None for success (2xx), else the error class."""
    if 200 <= status < 300:
        return None
    if 400 <= status < 500:
        return "http4xx"
    if status >= 500:
        return "http5xx"
    return "other"


async def send(client: Client, target: Target) -> tuple[str | None, int | None]:
    """(error class or None, HTTP status or None); the response body is read fully so the timing includes it."""
    try:
        status = await client.request(target.origin, target.request)
    except TimeoutError:
        return "timeout", None
    except ConnectError:
        return "connect", None
    except (HttpError, OSError):
        return "other", None
    return classify_status(status), status
