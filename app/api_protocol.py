"""`ledger api`'s HTTP/1.1 connections: a pre-trade check answered as its request is parsed.

A check is the one route a caller waits on before an order, and under 50 concurrent callers
its latency is the queue of answers in front of it: every microsecond of CPU an answer costs
is paid by every caller waiting. Through the ASGI server each request also costs a task
scheduled on the loop and run, the ASGI messages of the answer, a check of each header
against the protocol's rules and two writes to the socket (docs/performance.md).

`CheckProtocol` is uvicorn's connection protocol with one difference. uvicorn's code makes
each request's scope and its request and response cycle at the end of its headers, as
always; when the request is one `CheckFront.takes` (`POST /accounts/{id}/checks`, no query
string, HTTP/1.1 kept alive, no `Expect`, nothing else of the connection being answered),
the cycle's task is held back while the body comes in, the answer is decided and encoded by
`CheckFront.answer` (the same authorisation, document, headers and access-log line as the
ASGI application's) when the body is complete, and written with the server's default
headers in one write. Any other request, a body longer than an inbox record may be, and a
check the front does not answer (a 401, 403, 400 or a fault: `CheckFront.answer` gives
None) go to the ASGI application as before: the held task is started with the body
collected. A check arriving behind a request still being answered on its connection, or
while the socket's send buffer is full, goes the ASGI way too (its order and its flow
control are the server's).

This extends uvicorn's `HttpToolsProtocol` through its attributes and `_start_asgi_task`:
pyproject.toml bounds uvicorn's version, and tests/unit/test_api_protocol.py compares every
kind of request answered through it with uvicorn's own protocol, byte for byte.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.status_codes import HTTP_200_OK
from litestar.types import Scope
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from app.api_checks import CheckFront
from ledger.limits import inbox_record_bytes_max


class CheckProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with checks answered in place (the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        front = self.app
        while not isinstance(front, CheckFront):  # uvicorn's own wrappers, if any
            front = front.app
        self.front = front
        self.deferring = False  # while the headers of a request that may be a check end
        self.deferred: tuple[RequestResponseCycle, ASGI3Application] | None = None
        self.check_account: str | None = None  # of the check being collected, if any

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.deferring = (
            (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not self.expect_100_continue
        )
        # uvicorn fills in the request's scope and makes its cycle; its task waits here.
        super().on_headers_complete()
        self.deferring = False
        if self.deferred is not None:
            self.check_account = self.front.takes(self._scope())
            if self.check_account is None:
                self._hand_over()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if self.deferring:
            self.deferred = (cycle, app)
        else:
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self.check_account is not None and len(self.cycle.body) > inbox_record_bytes_max:
            self._hand_over()  # the framework's body limit and answer

    def on_message_complete(self) -> None:
        super().on_message_complete()
        account_id = self.check_account
        if account_id is None:
            return
        cycle = self.cycle
        # A server shutting down has asked the request to close its connection after it:
        # the ASGI way says so in the answer's headers and closes it.
        answer = (
            self.front.answer(self._scope(), account_id, bytes(cycle.body))
            if cycle.keep_alive
            else None
        )
        if answer is None:
            self._hand_over()
            return
        self.check_account, self.deferred = None, None
        cycle.response_started = cycle.response_complete = True
        content = [STATUS_LINE[HTTP_200_OK]]
        for name, value in self.server_state.default_headers + answer.headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"\r\n", answer.body]
        self.transport.write(b"".join(content))
        self.on_response_complete()

    def _scope(self) -> Scope:
        """The request's ASGI scope, as the application's types name it."""
        return cast("Scope", self.scope)

    def _hand_over(self) -> None:
        """Start the request's ASGI task, as uvicorn would have at its headers."""
        deferred = self.deferred
        self.check_account, self.deferred = None, None
        if deferred is not None:
            super()._start_asgi_task(*deferred)
