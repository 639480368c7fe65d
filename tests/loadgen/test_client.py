"""The lean HTTP/1.1 client against a scripted raw-socket server: framing, keep-alive, and error classes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from yarl import URL

from modelpack.loadgen.client import Client, HttpError, build_request
from modelpack.loadgen.sender import Target, send

Start = Callable[..., Awaitable["Scripted"]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

# One answer: the pieces to write (with a short pause between them), then whether to close the connection.
Answer = tuple[list[bytes], bool]


@dataclass
class Scripted:
    """Reads each request (head plus Content-Length body) and answers with the next scripted answer."""

    answers: list[Answer]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
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
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[list[Answer]], Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(answers: list[Answer]) -> Scripted:
        script = Scripted(answers)
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        servers.append(server)
        script.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v2/models/m/infer"
        return script

    yield start
    for server in servers:
        server.close()


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
    await asyncio.sleep(0.1)
    assert client.open_connections == 0
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
    await asyncio.sleep(0.1)
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
