"""Ports for local servers: the pack's own port first (8080, 8081, ...), any free one when that is taken."""

from __future__ import annotations

import socket
from collections.abc import Iterable


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind ``host:port`` now (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str, avoid: Iterable[int] = ()) -> int:
    """A port the kernel says is free, other than ``avoid``."""
    taken = set(avoid)
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
    raise OSError(f"no free port on {host}")


def choose_port(host: str, preferred: int, avoid: Iterable[int] = ()) -> int:
    """``preferred`` when it is free and not already handed out, else another free port."""
    taken = set(avoid)
    if preferred not in taken and 0 < preferred < 65536 and port_is_free(host, preferred):
        return preferred
    return any_free_port(host, taken)
