"""A deadline for every request to arrive whole on `ledger api`'s connections.

uvicorn waits for a request without end: a connection that sends nothing after its TLS
handshake, or sends its headers or its body a few bytes at a time, stays open as long as
the client likes, and no token is asked for before the headers are complete. One client
opening connections so could hold every file descriptor of the server and shut everyone
else out (measured before: an idle connection and one with half its headers were both
still open after 90 s). Here each request must arrive, headers and body, within
`request_arrival_timeout_s` of its first byte (of the connection, for its first request);
a connection that misses it is closed. Between requests uvicorn's own keep-alive timeout
closes an idle connection.

The protocol is uvicorn's own HTTP protocol over the C parser, with the deadline set and
cleared in its parser's public callbacks (the start and end of a message) and its
`asyncio.Protocol` methods; nothing else of it is changed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Ample for a person's or a program's request on any network (a check's body is a few
# hundred bytes), short enough that a connection held open on purpose is soon closed.
request_arrival_timeout_s = 10.0


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, closing a connection whose request does not arrive whole
    within `arrival_timeout_s`."""

    arrival_timeout_s = request_arrival_timeout_s
    _arrival: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_request()  # the next request on a kept-alive connection

    def on_message_complete(self) -> None:
        self._arrived()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arrived()
        super().connection_lost(exc)

    def _await_request(self) -> None:
        if self._arrival is None:
            loop = asyncio.get_running_loop()
            self._arrival = loop.call_later(self.arrival_timeout_s, self._too_slow)

    def _arrived(self) -> None:
        if self._arrival is not None:
            self._arrival.cancel()
            self._arrival = None

    def _too_slow(self) -> None:
        self._arrival = None
        self.transport.close()
