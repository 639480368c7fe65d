"""Find the models of a pack that is already running, through each server's V2 repository index."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from modelpack.local.servers import is_ready


class DiscoveryError(RuntimeError):
    """An endpoint that is not a reachable model server; the message names the URL."""


def normalise_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise DiscoveryError(f"--endpoint {url!r}: expected an http:// or https:// URL, e.g. http://127.0.0.1:8080")
    return url


def repository_index(url: str, timeout: float = 10.0) -> list[str]:
    """Model names the server at ``url`` serves (loaded or not)."""
    try:
        with urllib.request.urlopen(f"{url}/v2/repository/index", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise DiscoveryError(f"--endpoint {url}: GET /v2/repository/index answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DiscoveryError(f"--endpoint {url}: cannot connect ({reason}); is a model server running there?") from None
    except json.JSONDecodeError:
        raise DiscoveryError(f"--endpoint {url}: /v2/repository/index did not return JSON") from None
    if isinstance(body, dict):
        body = body.get("models", [])
    if not isinstance(body, list):
        raise DiscoveryError(f"--endpoint {url}: /v2/repository/index returned {type(body).__name__}, not a list")
    names = [str(entry["name"]) for entry in body if isinstance(entry, dict) and "name" in entry]
    if not names:
        raise DiscoveryError(f"--endpoint {url}: the server lists no models")
    return names


def discover(urls: list[str]) -> dict[str, str]:
    """model -> server URL over every endpoint; a model listed twice goes to the first endpoint."""
    routes: dict[str, str] = {}
    for raw in urls:
        url = normalise_url(raw)
        if not is_ready(url, timeout=5.0):
            # Distinguish "not there" from "not ready" with the index call's message.
            repository_index(url)
            raise DiscoveryError(f"--endpoint {url}: the server is up but /v2/health/ready is not 200")
        for name in repository_index(url):
            routes.setdefault(name, url)
    return routes
