"""`ledger api` closes a connection whose request does not arrive whole in time.

Before, uvicorn held a connection that sent nothing, or half its headers, for as long as the
client liked (both still open after 90 s), and no token is asked for before the headers are
complete: one client could hold every file descriptor of the server. The server here is
uvicorn with `ledger api`'s protocol, its deadline shortened for the test."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import uvicorn
from litestar.types import Receive, Scope, Send

from app.api_connections import DeadlineHttpProtocol

_DEADLINE_S = 0.5
_WAIT_S = 5.0  # far past the deadline: a test that fails waits this long, no more


class _ShortDeadline(DeadlineHttpProtocol):
    arrival_timeout_s = _DEADLINE_S


async def _answer(_scope: Scope, receive: Receive, send: Send) -> None:
    more_body = True
    while more_body:
        message = await receive()
        more_body = bool(message.get("more_body", False))
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok", "more_body": False})


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _answer, http=_ShortDeadline, lifespan="off", log_level="warning", timeout_keep_alive=5
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield listening.getsockname()[1]
    server.should_exit = True
    await serving


async def _closed_after(port: int, sent: bytes) -> float:
    """Seconds until the server closes a connection that sent `sent` and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(sent)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), _WAIT_S) == b""
    writer.close()
    return time.monotonic() - started


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"GET /health HTTP/1.1\r\nHost: ledger\r\n",
        b'POST /accounts/C1/checks HTTP/1.1\r\nHost: ledger\r\nContent-Length: 10\r\n\r\n{"type',
    ],
    ids=["nothing", "half the headers", "half the body"],
)
async def test_a_request_that_does_not_arrive_whole_in_time_is_closed(
    port: int, sent: bytes
) -> None:
    assert _DEADLINE_S * 0.9 <= await _closed_after(port, sent) < _WAIT_S


@pytest.mark.asyncio
async def test_the_deadline_is_each_requests_not_the_connections(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: ledger\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _WAIT_S)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(2), _WAIT_S) == b"ok"
        await asyncio.sleep(_DEADLINE_S * 2)  # idle past the deadline, within the keep-alive
    writer.close()
