"""A lean HTTP/1.1 keep-alive client for the hot path, on asyncio Protocols.

Each target's request (head and body) is built once as bytes; sending it is one ``transport.write``. The answer
is parsed just enough to time it and keep the connection usable: the status line, ``Content-Length``,
``Transfer-Encoding: chunked`` (with trailers), bodies that end when the server closes, interim 1xx answers,
``Connection: close`` and HTTP/1.0. The body is read to its end and discarded. Nothing is pipelined: a
connection carries one request at a time, and is closed, never reused, after any error, timeout or
cancellation, or when the server sent more than one answer. Connections open (or being opened) never
outnumber the limit, over all origins together.

A kept-alive connection the server closes while idle (uvicorn after 5 s) may still be taken for a request
before its close is seen: when such a reused connection closes before a single byte of the answer arrived,
the request is sent once more on a fresh connection, within the same deadline, and counts as one request.
Nothing else is retried: not a timeout, an answer (of any status), a partial answer, or a fresh connection.

Failures surface as exceptions that map onto the load generator's error classes (see ``sender.send``):
:class:`TimeoutError` when no full answer arrived within the timeout (connecting and waiting for a free
connection included), :class:`ConnectError` when no connection could be opened (refused, unknown host, TLS
handshake), and :class:`HttpError` when the connection broke mid-answer or the answer was not valid HTTP/1.x.

Measured here (docs/perf/loadgen.md §2): about 18 µs of CPU per request against nginx, where aiohttp, which does
far more per request (header multidicts, cookies, redirects, tracing), took about 92 µs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

from yarl import URL

MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024
USER_AGENT = "modelpack-loadgen"
_HEX = re.compile(rb"[0-9A-Fa-f]+")

# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class HttpError(Exception):
    """The connection broke mid-answer or the answer was not HTTP/1.x."""


class _ClosedBeforeAnswer(HttpError):
    """The connection closed before a single byte of the answer arrived."""


class ConnectError(Exception):
    """No connection could be opened."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def build_request(url: URL, body: bytes, content_type: str = "application/json") -> tuple[Origin, bytes]:
    """The origin to connect to and the complete ``POST`` request for `url` with `body`, as bytes."""
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValueError(f"not an http(s) URL: {url}")
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.raw_host
    host_header = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None and url.explicit_port != (443 if url.scheme == "https" else 80):
        host_header += f":{url.explicit_port}"
    head = (
        f"POST {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept: */*\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    if ":" in host:  # an IPv6 literal; a zone ID is percent-encoded in the URL (fe80::1%25eth0), not for connecting
        host = host.replace("%25", "%", 1)
    return Origin(url.scheme, host, port), head.encode("ascii") + body


def _cut(buf: bytearray, separator: bytes, limit: int, what: str) -> bytes | None:
    """What precedes `separator`, removed from `buf` with it; None until the separator has arrived."""
    end = buf.find(separator)
    if end < 0:
        if len(buf) > limit:
            raise HttpError(f"{what} too long")
        return None
    part = bytes(buf[:end])
    del buf[: end + len(separator)]
    return part


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One keep-alive connection: write a request, parse its answer, resolve the waiter with the status."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.reusable = True
        self.answered = False  # a byte of the current request's answer has arrived
        self.state = _HEAD
        self.remaining = 0
        self.status = 0

    # ---- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client._opened(self)

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.abort()  # an answer nobody asked for: the connection is out of step
            return
        self.answered = True
        self.buf += data
        try:
            done = self._parse()
        except HttpError as err:
            self.abort()
            waiter.set_exception(err)
            return
        if done:
            self.state = _HEAD
            waiter.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        by_us = self.closed  # abort() was called: not a close by the server
        self.closed = True
        self.reusable = False
        self.client._lost(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.state == _UNTIL_CLOSE and exc is None:
            waiter.set_result(self.status)
        else:
            reason = f": {exc}" if exc is not None else ""
            if not self.answered and not by_us:
                waiter.set_exception(_ClosedBeforeAnswer(f"connection closed before the answer began{reason}"))
            else:
                waiter.set_exception(HttpError(f"connection closed before the answer was complete{reason}"))

    # ---- requests -----------------------------------------------------------------------------------------
    def abort(self) -> None:
        self.reusable = False
        if not self.closed and self.transport is not None:
            self.closed = True
            self.client._lost(self)
            self.transport.abort()

    async def exchange(self, request: bytes, deadline: float) -> int:
        """Send `request` and return the answer's status once its body has been read; TimeoutError at `deadline`."""
        assert self.transport is not None
        loop = self.client.loop
        waiter: asyncio.Future[int] = loop.create_future()
        self.waiter = waiter
        self.answered = False
        self.transport.write(request)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None

    # ---- parsing ------------------------------------------------------------------------------------------
    def _parse(self) -> bool:
        """Consume what the buffer holds; True once the whole answer has been read."""
        buf = self.buf
        while True:
            state = self.state
            if state == _HEAD:
                head = _cut(buf, b"\r\n\r\n", MAX_HEAD_BYTES, "answer head")
                if head is None:
                    return False
                self._head(head)
            elif state in (_LENGTH, _CHUNK_DATA):
                n = len(buf)
                if n < self.remaining:
                    self.remaining -= n
                    buf.clear()
                    return False
                del buf[: self.remaining]
                self.remaining = 0
                self.state = _DONE if state == _LENGTH else _CHUNK_END
            elif state in (_CHUNK_SIZE, _TRAILER):
                line = _cut(buf, b"\r\n", MAX_LINE_BYTES, "chunk line")
                if line is None:
                    return False
                if state == _TRAILER:
                    if not line:
                        self.state = _DONE
                    continue
                size = line.split(b";", 1)[0].strip()
                if not _HEX.fullmatch(size):
                    raise HttpError(f"invalid chunk size {size[:20]!r}")
                self.remaining = int(size, 16)
                self.state = _CHUNK_DATA if self.remaining else _TRAILER
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise HttpError("chunk not followed by CRLF")
                del buf[:2]
                self.state = _CHUNK_SIZE
            elif state == _UNTIL_CLOSE:
                buf.clear()
                return False
            else:  # _DONE
                if buf:  # bytes beyond the answer: never reuse this connection
                    self.reusable = False
                    buf.clear()
                return True

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if version == b"HTTP/1.1":
            keep_alive = True
        elif version == b"HTTP/1.0":
            keep_alive = False
        else:
            raise HttpError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
        code = rest[:3]
        if len(code) != 3 or not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise HttpError(f"invalid status line: {lines[0][:40]!r}")
        status = int(code)
        length: int | None = None
        transfer: bytes | None = None
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[-1:] in (b" ", b"\t") or line[:1] in (b" ", b"\t"):
                raise HttpError(f"invalid header line: {line[:40]!r}")
            name = name.lower()
            if name == b"content-length":
                text = value.strip()
                if not text.isdigit() or (length is not None and int(text) != length):
                    raise HttpError(f"invalid Content-Length: {text[:20]!r}")
                length = int(text)
            elif name == b"transfer-encoding":
                transfer = value if transfer is None else transfer + b"," + value
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens and version == b"HTTP/1.0":
                    keep_alive = True
        if status < 200:
            if status == 101:
                raise HttpError("unexpected 101 Switching Protocols")
            return  # interim answer (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        if not keep_alive:
            self.reusable = False
        if status in (204, 304):
            self.state = _DONE
        elif transfer is not None:
            if transfer.lower().rsplit(b",", 1)[-1].strip() == b"chunked":
                self.state = _CHUNK_SIZE
            else:  # a transfer coding other than chunked last: the body ends when the server closes
                self.state = _UNTIL_CLOSE
                self.reusable = False
        elif length is not None:
            self.remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            self.state = _UNTIL_CLOSE
            self.reusable = False


class Client:
    """Keep-alive connections per origin; at most `limit` requests in flight and `limit` connections open."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = max(1, limit)
        self.timeout = timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._busy = 0
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closing = False
        self._ssl: ssl.SSLContext | None = None

    @property
    def open_connections(self) -> int:
        return len(self._all)

    def _opened(self, conn: _Connection) -> None:
        self._all.add(conn)

    def _lost(self, conn: _Connection) -> None:
        self._all.discard(conn)

    async def request(self, origin: Origin, request: bytes) -> int:
        """Send one pre-built request to `origin`; the answer's HTTP status once its whole body has been read."""
        deadline = self.loop.time() + self.timeout
        if self._busy >= self.limit:
            await self._wait_free(deadline)
        self._busy += 1
        ok = False
        conn: _Connection | None = None
        try:
            conn = self._take_idle(origin)
            if conn is None:
                conn = await self._connect(origin, deadline)
                status = await conn.exchange(request, deadline)
            else:
                try:
                    status = await conn.exchange(request, deadline)
                except _ClosedBeforeAnswer:
                    # A kept-alive connection the server had already closed (idle timeout) when the request
                    # went out: not an answer from the server. Once more, on a fresh connection.
                    if self._closing:
                        raise
                    conn = None
                    conn = await self._connect(origin, deadline)
                    status = await conn.exchange(request, deadline)
            ok = True
            return status
        finally:
            self._busy -= 1
            if conn is not None:
                if ok and conn.reusable and not conn.closed and not self._closing:
                    self._idle.setdefault(origin, []).append(conn)
                else:
                    conn.abort()
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # most recently used first: keeps few connections warm
            if not conn.closed:
                assert conn.transport is not None
                if not conn.transport.is_closing():  # the server's close seen, connection_lost not yet run
                    return conn
                conn.abort()
        return None

    async def _wait_free(self, deadline: float) -> None:
        async with asyncio.timeout_at(deadline):
            while self._busy >= self.limit:
                waiter: asyncio.Future[None] = self.loop.create_future()
                self._waiters.append(waiter)
                await waiter

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        if len(self._all) + self._connecting >= self.limit:  # connections being opened count too
            self._close_one_idle()
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        self._connecting += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:  # the request's deadline (an OSError too, so caught first): a timeout, as documented
            raise
        except OSError as err:  # refused, unreachable, unknown host (gaierror), TLS handshake (SSLError)
            raise ConnectError(f"cannot connect to {origin.host}:{origin.port}: {err}") from err
        finally:
            self._connecting -= 1
        return conn

    def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            while idle:
                conn = idle.pop(0)  # the least recently used
                if not conn.closed:
                    conn.abort()
                    return

    async def close(self) -> None:
        """Close every connection (requests still in flight fail) and let the transports finish closing."""
        self._closing = True
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()
        await asyncio.sleep(0)
