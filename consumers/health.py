"""`GET /health`: a tiny HTTP/1.1 endpoint on asyncio streams (no framework).

Answers `{"status", "journal_seq", "published_seq", "inbox_lag"}` as JSON: status `ok`
(200), or `degraded` (503) while the store or the broker is unreachable. Anything else
than `GET /health` gets 404; a request larger than its bound is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("consumers.health")

health_port_default = 8081
health_request_bytes_max = 8_192  # a probe's request line and headers fit easily
health_read_timeout_s = 5.0  # a client that sends nothing for this long is dropped
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def _response(status: int, document: dict[str, Any]) -> bytes:
    body = json.dumps(document, sort_keys=True).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_request_line(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > health_request_bytes_max:
        raise ValueError("request too large")
    return head.split(b"\r\n", 1)[0].decode("ascii", errors="replace")


async def start_health_server(
    host: str, port: int, snapshot: Callable[[], dict[str, Any]]
) -> asyncio.Server:
    """Serve `GET /health` on `host:port`; `snapshot()` gives the document (with `status`)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(health_read_timeout_s):
                request_line = await _read_request_line(reader)
            method, path, *_ = [*request_line.split(" "), "", ""]
            if method == "GET" and path.split("?", 1)[0] == "/health":
                document = snapshot()
                status = 200 if document.get("status") == "ok" else 503
                writer.write(_response(status, document))
            else:
                writer.write(_response(404, {"error": "only GET /health is served"}))
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError as error:
            log.debug("health_client_gone error=%s", type(error).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=health_request_bytes_max)
    log.info("health_listening host=%s port=%d", host, port)
    return server
