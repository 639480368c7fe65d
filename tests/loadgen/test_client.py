"""The lean HTTP/1.1 client against a scripted raw-socket server: framing, keep-alive, and error classes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop
from yarl import URL

from modelpack.loadgen.client import Client, HttpError, build_request
from modelpack.loadgen.sender import Target, send

Start = Callable[..., Awaitable["Scripted"]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

# One answer: the pieces to write (with a short pause between them), then whether to close the connection.
Answer = tuple[list[bytes], bool]


@dataclass
class Gauge:
    """Connections open now, and the most ever open at once (over one or several servers)."""

    open: int = 0
    peak: int = 0


@dataclass
class Scripted:
    """Reads each request (head plus Content-Length body) and answers with the next scripted answer."""

    answers: list[Answer]
    connections: int = 0
    gauge: Gauge = field(default_factory=Gauge)
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.gauge.open += 1
        self.gauge.peak = max(self.gauge.peak, self.gauge.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                pieces, close = self.answers.pop(0) if self.answers else ([], False)
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.005)
                if close:
                    break
                if not pieces:
                    await asyncio.sleep(3600)  # never answer
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.gauge.open -= 1
            writer.close()


async def _serve(
    answers: list[Answer], servers: list[asyncio.Server], gauge: Gauge | None = None, host: str = "127.0.0.1"
) -> Scripted:
    script = Scripted(answers, gauge=gauge or Gauge())
    server = await asyncio.start_server(script.handle, host, 0)
    servers.append(server)
    url_host = f"[{host}]" if ":" in host else host
    script.url = f"http://{url_host}:{server.sockets[0].getsockname()[1]}/v2/models/m/infer"
    return script


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[list[Answer]], Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(answers: list[Answer], gauge: Gauge | None = None) -> Scripted:
        return await _serve(answers, servers, gauge)

    yield start
    for server in servers:
        server.close()


# The product runs on uvloop (modelpack.loadgen.eventloop); where the loops' transports may differ, both are tested.
LOOPS = pytest.mark.parametrize("run_on", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
RunOn = Callable[[Coroutine[Any, Any, None]], None]


def _unanswered_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full: a connect to it hangs (the SYN goes unanswered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    return listener, fillers


@contextlib.contextmanager
def _closing(socks: list[socket.socket]) -> Iterator[None]:
    try:
        yield
    finally:
        for s in socks:
            s.close()


def _sockets_to(port: int) -> int:
    """How many of this process's TCP sockets are connected or connecting to `port` (client sockets)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if int(cols[2].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                count += 1
    return count


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll the event loop until ``condition`` holds (1 s at most): the state awaited, never a fixed sleep."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


def _target(url: str) -> Target:
    return Target("m", URL(url), b'{"inputs":[]}')


async def _setup(
    scripted: Start, answers: list[Answer], limit: int = 4, timeout: float = 5.0
) -> tuple[Scripted, Client, Target]:
    server = await scripted(answers)
    return server, Client(limit, timeout), _target(server.url)


def test_request_bytes_are_built_once_per_target() -> None:
    origin, request = build_request(URL("http://example.com:8080/v2/models/a%20b/infer?x=1"), b"{}")
    assert (origin.host, origin.port) == ("example.com", 8080)
    assert request.startswith(b"POST /v2/models/a%20b/infer?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n")
    assert request.endswith(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    _, default_port = build_request(URL("https://example.com/x"), b"")
    assert b"\r\nHost: example.com\r\n" in default_port


@pytest.mark.parametrize(
    ("url", "host", "port", "header"),
    [
        ("http://[::1]:8080/x", "::1", 8080, b"[::1]:8080"),
        ("http://[::1]/x", "::1", 80, b"[::1]"),
        ("https://[2001:db8::1]:443/x", "2001:db8::1", 443, b"[2001:db8::1]"),
        ("https://[2001:db8::1]:8443/x", "2001:db8::1", 8443, b"[2001:db8::1]:8443"),
        ("http://[fe80::1%25eth0]:8080/x", "fe80::1%eth0", 8080, b"[fe80::1%25eth0]:8080"),  # zone ID (RFC 6874)
        ("http://Example.COM:80/x", "example.com", 80, b"example.com"),
        ("https://example.com:80/x", "example.com", 80, b"example.com:80"),
        ("http://b\u00fccher.example:8081/x", "xn--bcher-kva.example", 8081, b"xn--bcher-kva.example:8081"),
    ],
)
def test_host_header_and_origin_for_ipv6_literals_and_ports(url: str, host: str, port: int, header: bytes) -> None:
    origin, request = build_request(URL(url), b"")
    assert (origin.host, origin.port) == (host, port)
    assert b"\r\nHost: " + header + b"\r\n" in request


async def test_request_to_an_ipv6_literal(scripted: Start) -> None:
    servers: list[asyncio.Server] = []
    try:
        server = await _serve([([OK], False)], servers, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    client = Client(1, 5.0)
    assert await send(client, _target(server.url)) == (None, 200)
    assert b"\r\nHost: [::1]:%d\r\n" % URL(server.url).port in server.requests[0]
    await client.close()
    servers[0].close()


async def test_content_length_split_and_keep_alive(scripted: Start) -> None:
    body = b'{"outputs": [1, 2, 3]}'
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    server, client, target = await _setup(
        scripted, [([head[:10], head[10:] + body[:5], body[5:]], False), ([OK], False), ([OK], False)]
    )
    assert [await send(client, target) for _ in range(3)] == [(None, 200)] * 3
    assert server.connections == 1 and client.open_connections == 1
    assert server.requests[0].endswith(b'{"inputs":[]}')
    await client.close()


async def test_chunked_body_with_extensions_and_trailers_byte_by_byte(scripted: Start) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server, client, target = await _setup(
        scripted, [([answer[i : i + 1] for i in range(len(answer))], False), ([OK], False)], limit=4, timeout=10.0
    )
    assert await send(client, target) == (None, 200)
    assert await send(client, target) == (None, 200)
    assert server.connections == 1
    await client.close()


async def test_large_bodies_in_many_pieces(scripted: Start) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    chunked = b"".join(b"%X;n=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Sum: 1\r\n\r\n"
    server, client, target = await _setup(
        scripted,
        [
            ([b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), *pieces], False),
            (
                [
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    *(chunked[i : i + 50000] for i in range(0, len(chunked), 50000)),
                ],
                False,
            ),
            ([OK], False),
        ],
    )
    assert [await send(client, target) for _ in range(3)] == [(None, 200)] * 3
    assert server.connections == 1
    await client.close()


async def test_answer_longer_than_its_content_length_ends_the_connection(scripted: Start) -> None:
    longer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n"
    server, client, target = await _setup(scripted, [([longer], False), ([OK], False)])
    assert [await send(client, target) for _ in range(2)] == [(None, 200)] * 2
    assert server.connections == 2  # never reused: its next answer would be out of step
    await client.close()


@LOOPS
def test_early_answer_to_a_large_body_is_its_status(run_on: RunOn) -> None:
    """A 413 sent, and the connection closed, before the request body was read: the 413 is the result."""
    too_large = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(too_large)
        await writer.drain()
        writer.close()  # unread body: the kernel resets the connection

    async def scenario() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = Client(2, 5.0)
        target = Target("m", URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"), b"x" * (8 << 20))
        assert [await send(client, target) for _ in range(3)] == [("http4xx", 413)] * 3
        await client.close()
        server.close()

    run_on(scenario())


async def test_interim_no_body_close_and_read_until_close(scripted: Start) -> None:
    server, client, target = await _setup(
        scripted,
        [
            ([b"HTTP/1.1 100 Continue\r\n\r\n" + OK], False),
            ([b"HTTP/1.1 204 No Content\r\n\r\n"], False),
            ([b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"], True),
            ([b"HTTP/1.0 200 OK\r\n\r\n", b"body until close"], True),
            ([OK], False),
        ],
    )
    results = [await send(client, target) for _ in range(5)]
    assert results == [(None, 200), (None, 204), ("http5xx", 503), (None, 200), (None, 200)]
    assert server.connections == 3  # a new connection after each answer that ended it
    await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        [b"ICY 200 OK\r\n\r\n"],
        [b"HTTP/1.1 2000 OK\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"],  # then the server closes
        [],  # closes without a byte
    ],
)
async def test_broken_answers_are_other_errors(scripted: Start, answer: list[bytes]) -> None:
    server, client, target = await _setup(scripted, [(answer, True), ([OK], False)])
    assert await send(client, target) == ("other", None)
    assert await send(client, target) == (None, 200)  # never on the broken connection
    assert server.connections == 2
    await client.close()


async def test_timeout_and_refused_connection_have_their_classes(scripted: Start) -> None:
    server, client, target = await _setup(scripted, [([], False), ([OK], False)], timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await send(client, target) == ("timeout", None)
    assert 0.25 < loop.time() - start < 2.0
    assert await send(client, target) == (None, 200)
    assert server.connections == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await send(client, _target(f"http://127.0.0.1:{port}/x")) == ("connect", None)
    await client.close()


async def test_idle_connection_closed_by_the_server_is_not_reused(scripted: Start) -> None:
    _server, client, target = await _setup(scripted, [([OK], True), ([OK], False)])
    assert await send(client, target) == (None, 200)  # Content-Length answer, then the server closes
    await _until(lambda: client.open_connections == 0, "the client saw the server close its idle connection")
    assert await send(client, target) == (None, 200)
    await client.close()


async def test_limit_bounds_requests_in_flight(scripted: Start) -> None:
    server, client, target = await _setup(scripted, [([OK], False)] * 4, limit=1)
    assert await asyncio.gather(*(send(client, target) for _ in range(4))) == [(None, 200)] * 4
    assert server.connections == 1
    await client.close()


async def test_cancelled_request_closes_its_connection(scripted: Start) -> None:
    server, client, target = await _setup(scripted, [([], False), ([OK], False)])
    task = asyncio.create_task(send(client, target))
    await _until(lambda: len(server.requests) == 1, "the request reached the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await send(client, target) == (None, 200)
    assert server.connections == 2
    await client.close()


async def test_client_raises_http_error_for_a_broken_answer(scripted: Start) -> None:
    _server, client, target = await _setup(scripted, [([b"garbage\r\n\r\n"], True)])
    with pytest.raises(HttpError, match="status line"):
        await client.request(target.origin, target.request)
    await client.close()


# ---- stale keep-alive connections ---------------------------------------------------------------------------


@LOOPS
def test_keep_alive_connection_the_server_closed_is_retried_once_on_a_fresh_one(run_on: RunOn) -> None:
    """uvicorn closes a connection idle for 5 s; a request sent as it does must not fail (nor count twice)."""

    async def scenario() -> None:
        servers: list[asyncio.Server] = []
        # Each answer, then the server closes the connection 5 ms later (Scripted pauses after each piece): the
        # next request goes out at once, on a connection the server is closing or has closed.
        server = await _serve([([OK], True)] * 6, servers)
        client, target = Client(4, 5.0), _target(server.url)
        assert [await send(client, target) for _ in range(3)] == [(None, 200)] * 3
        for _ in range(3):  # and the same after an idle pause shorter than the server's close
            await asyncio.sleep(0.002)
            assert await send(client, target) == (None, 200)
        assert server.connections == 6 and len(server.requests) == 6  # each answered once
        await client.close()
        servers[0].close()

    run_on(scenario())


async def test_reused_connection_closed_before_any_answer_byte_is_retried(scripted: Start) -> None:
    # The server reads the second request on the kept-alive connection and closes it without a byte.
    server, client, target = await _setup(scripted, [([OK], False), ([], True), ([OK], False)])
    assert [await send(client, target) for _ in range(2)] == [(None, 200)] * 2
    assert server.connections == 2 and len(server.requests) == 3
    await client.close()


@pytest.mark.parametrize(
    ("second", "timeout", "result"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"], 5.0, ("other", None)),  # then closes
        ([b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"], 5.0, ("http5xx", 503)),
        ([b"HTTP/1.1 100 Continue\r\n\r\n"], 5.0, ("other", None)),  # an interim answer, then closes
        ([], 0.3, ("timeout", None)),  # never answers
    ],
)
async def test_answers_on_a_reused_connection_are_never_retried(
    scripted: Start, second: list[bytes], timeout: float, result: tuple[str | None, int | None]
) -> None:
    server, client, target = await _setup(
        scripted, [([OK], False), (second, bool(second)), ([OK], False)], timeout=timeout
    )
    assert await send(client, target) == (None, 200)
    assert await send(client, target) == result
    assert len(server.requests) == 2  # sent once
    await client.close()


async def test_a_fresh_connection_closed_before_any_answer_byte_is_not_retried(scripted: Start) -> None:
    server, client, target = await _setup(scripted, [([], True), ([OK], False)])
    assert await send(client, target) == ("other", None)
    assert len(server.requests) == 1
    await client.close()


# ---- timeouts, pool bound, cancellation ---------------------------------------------------------------------


@LOOPS
def test_timeout_while_connecting_is_a_timeout_not_a_connect_error(run_on: RunOn) -> None:
    async def scenario() -> None:
        listener, fillers = _unanswered_listener()
        with _closing([listener, *fillers]):
            client = Client(4, 0.3)
            port = listener.getsockname()[1]
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await send(client, _target(f"http://127.0.0.1:{port}/x")) == ("timeout", None)
            assert 0.25 < loop.time() - start < 2.0
            await client.close()

    run_on(scenario())


async def test_connections_across_origins_never_exceed_the_limit(scripted: Start) -> None:
    slow = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    both = Gauge()
    a = await scripted([([OK], False)] * 2, both)
    b = await scripted([([slow, b"{}"], False)] * 2, both)  # answers over ~10 ms: both requests in flight at once
    client = Client(2, 5.0)
    target_a, target_b = _target(a.url), _target(b.url)
    assert await asyncio.gather(send(client, target_a), send(client, target_a)) == [(None, 200)] * 2
    await _until(lambda: both.open == 2, "both connections kept alive, idle")
    first = asyncio.create_task(send(client, target_b))
    await asyncio.sleep(0)  # the first is still connecting when the second needs a connection
    second = asyncio.create_task(send(client, target_b))
    while len(b.requests) < 2:  # both in flight
        await asyncio.sleep(0.001)
    assert _sockets_to(target_a.origin.port) + _sockets_to(target_b.origin.port) == 2
    assert await asyncio.gather(first, second) == [(None, 200)] * 2
    assert client.open_connections == 2
    await client.close()


@LOOPS
def test_cancelled_requests_and_close_leave_no_socket_or_task(run_on: RunOn) -> None:
    """The end of a run or Ctrl-C: the engine cancels what is in flight, then the client is closed."""

    async def scenario() -> None:
        servers: list[asyncio.Server] = []
        server = await _serve([([], False)] * 6, servers)  # reads each request, never answers
        listener, fillers = _unanswered_listener()
        with _closing([listener, *fillers]):
            client = Client(8, 30.0)
            answering, hanging = _target(server.url), _target(f"http://127.0.0.1:{listener.getsockname()[1]}/x")
            fill = _sockets_to(hanging.origin.port)  # the sockets that filled the accept queue
            tasks = [asyncio.create_task(send(client, answering)) for _ in range(6)]
            tasks += [asyncio.create_task(send(client, hanging)) for _ in range(2)]
            while len(server.requests) < 6:
                await asyncio.sleep(0.001)
            assert _sockets_to(answering.origin.port) == 6 and _sockets_to(hanging.origin.port) == fill + 2
            for task in tasks:
                task.cancel()
            await client.close()
            assert _sockets_to(answering.origin.port) == 0 and _sockets_to(hanging.origin.port) == fill
            assert client.open_connections == 0
            assert all(task.done() for task in tasks)
        servers[0].close()

    run_on(scenario())
