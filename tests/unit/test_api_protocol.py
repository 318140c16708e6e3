"""`ledger api`'s connection protocol (app/api_protocol.py): a check answered as its request
is parsed gives, byte for byte but the date, what uvicorn's own protocol and the ASGI
application give, with the same access-log lines; every request it does not answer in place
(other routes, refusals, pipelined requests, bodies in parts or too large, a connection
that closes) is answered by the application as before."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.api import served_app
from app.api_protocol import CheckProtocol
from ledger.limits import inbox_record_bytes_max
from ledger.store import LedgerStore
from tests.api_security import TOKENS_BY_ROLE, api_security
from tests.unit.test_api_checks import _holder, withdrawal
from tests.unit.test_api_workers import POLICY
from tests.unit.test_projections import ingest_simulation

_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
loop_turns = 50  # enough for the application's task of every request fed at once
SHUTDOWN = b""  # in a test's chunks: the server starts shutting down there


class _Transport:
    """A connection's socket: what the protocol writes, kept."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('protocol') / 'ledger.db'}"
    ingest_simulation(url, POLICY, 5, 6, 1)
    return url


@pytest.fixture(scope="module")
def store(store_url: str) -> Iterator[LedgerStore]:
    with LedgerStore.open(store_url) as opened:
        yield opened


def _exchange(
    store: LedgerStore, protocol: type[HttpToolsProtocol], chunks: list[bytes]
) -> tuple[bytes, list[dict[str, Any]], bool, int]:
    """What a connection of `protocol` writes for `chunks` received one after the other,
    the access-log lines, whether it closed the connection, and how many requests it
    handed to the ASGI application."""
    log = io.StringIO()
    app = _Counted(served_app(store, POLICY, api_security(access_log=log)))

    async def served() -> tuple[_Transport, bool]:
        config = uvicorn.Config(
            app, http=protocol, lifespan="on", log_level="warning", proxy_headers=False
        )
        config.load()
        lifespan = LifespanOn(config)
        await lifespan.startup()
        connection = protocol(config=config, server_state=ServerState(), app_state=lifespan.state)
        transport = _Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        for chunk in chunks:
            if chunk == SHUTDOWN:
                connection.shutdown()  # what the server does to each connection on SIGTERM
                continue
            connection.data_received(chunk)
            for _ in range(loop_turns):
                await asyncio.sleep(0)
        closed = transport.closed
        connection.connection_lost(None)
        await lifespan.shutdown()
        return transport, closed

    transport, closed = asyncio.run(served())
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    for line in lines:
        del line["time"]
    return _without_dates(bytes(transport.written)), lines, closed, app.calls


def _without_dates(written: bytes) -> bytes:
    return b"\r\n".join(
        line for line in written.split(b"\r\n") if not line.lower().startswith(b"date: ")
    )


def _post(account_id: str, body: bytes, role: str = "trading", extra: bytes = b"") -> bytes:
    """A check's request, with the token of `role` (or `role` itself as the token)."""
    head = (
        f"POST /accounts/{account_id}/checks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKENS_BY_ROLE.get(role, role)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    return head + extra + b"\r\n" + body


class _Counted:
    """The application, counting the requests the protocol hands to it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += scope["type"] == "http"
        await self.app(scope, receive, send)


def _both(store: LedgerStore, chunks: list[bytes]) -> tuple[bytes, list[dict[str, Any]], int]:
    """The exchange through uvicorn's protocol and through `CheckProtocol`, asserted the
    same; and how many requests `CheckProtocol` handed to the application."""
    uvicorns = _exchange(store, HttpToolsProtocol, chunks)
    ours = _exchange(store, CheckProtocol, chunks)
    assert ours[:3] == uvicorns[:3]
    written, lines, _, handed = ours
    return written, lines, handed


def _statuses(written: bytes) -> list[int]:
    return [int(status) for status in _STATUS_LINE.findall(written)]


def test_a_check_is_answered_in_place_as_the_application_answers_it(
    store: LedgerStore,
) -> None:
    account_id = _holder(store)
    checks = [_post(account_id, withdrawal(account_id, amount)) for amount in ("0.01", "999999999")]
    written, lines, handed = _both(store, checks)
    assert _statuses(written) == [200, 200]
    assert b'"outcome":"accepted"' in written
    assert b'"outcome":"refused"' in written
    assert b"cache-control: no-store" in written
    assert [(line["role"], line["status"]) for line in lines] == [("trading", 200)] * 2
    assert handed == 0


@pytest.mark.parametrize(
    ("path_account", "token", "status"),
    [("SOMEONE-ELSE", "trading", 400), (None, "lgr_not_a_token", 401), (None, "reporting", 403)],
)
def test_a_refused_request_is_the_applications_to_answer(
    store: LedgerStore, path_account: str | None, token: str, status: int
) -> None:
    account_id = _holder(store)
    request = _post(path_account or account_id, withdrawal(account_id, "1"), token)
    written, lines, handed = _both(store, [request])
    assert _statuses(written) == [status]
    assert [line["status"] for line in lines] == [status]
    assert handed == 1


def test_pipelined_and_split_requests_are_answered_in_order(store: LedgerStore) -> None:
    account_id = _holder(store)
    check = _post(account_id, withdrawal(account_id, "0.01"))
    health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    # Two checks in one read, a probe then a check in one read, a check in two reads.
    chunks = [check + check, health + check, check[:-7], check[-7:]]
    written, lines, handed = _both(store, chunks)
    assert _statuses(written) == [200] * 5
    assert [line["path"] for line in lines][2] == "/health"
    # Handed over: the probe, and the check read behind it, which waits for its answer as
    # the server has it; the two checks of the first read (the first is answered before the
    # second is parsed) and the check read in two parts are answered in place.
    assert handed == 2


def test_a_body_over_an_inbox_records_size_goes_to_the_application(store: LedgerStore) -> None:
    account_id = _holder(store)
    record = withdrawal(account_id, "0.01")
    padded = record[:-1] + b" " * inbox_record_bytes_max + b"}"
    written, _, handed = _both(store, [_post(account_id, padded)])
    assert _statuses(written) == [200]
    assert b'"reason_code":"record_too_large"' in written
    assert handed == 1


@pytest.mark.parametrize(
    "request_of",
    [
        lambda account_id, body: _post(account_id, body, extra=b"Connection: close\r\n"),
        lambda account_id, body: _post(account_id, body).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        lambda account_id, body: _post(account_id, body, extra=b"Expect: 100-continue\r\n"),
    ],
    ids=["connection-close", "http-1.0", "expect-100-continue"],
)
def test_a_connection_not_kept_alive_goes_to_the_application(
    store: LedgerStore, request_of: Any
) -> None:
    account_id = _holder(store)
    written, _, handed = _both(store, [request_of(account_id, withdrawal(account_id, "0.01"))])
    assert 200 in _statuses(written)
    assert handed == 1


def test_a_check_read_while_the_server_shuts_down_closes_its_connection(
    store: LedgerStore,
) -> None:
    account_id = _holder(store)
    check = _post(account_id, withdrawal(account_id, "0.01"))
    written, _, handed = _both(store, [check[:-7], SHUTDOWN, check[-7:]])
    assert _statuses(written) == [200]
    assert b"connection: close" in written
    assert handed == 1
