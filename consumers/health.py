"""`GET /health` and `GET /metrics`: a tiny HTTP/1.1 endpoint on asyncio streams (no
framework).

`/health` answers `{"status", "journal_seq", "published_seq", "inbox_lag"}` as JSON: status
`ok` (200), or `degraded` (503) while the store or the broker is unreachable. `/metrics`
answers Prometheus text (consumers/metrics.py). Anything else gets 404; a request larger
than its bound is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from consumers.metrics import METRICS_CONTENT_TYPE

log = logging.getLogger("consumers.health")

health_port_default = 8081
health_request_bytes_max = 8_192  # a probe's request line and headers fit easily
health_read_timeout_s = 5.0  # a client that sends nothing for this long is dropped
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def _response(status: int, document: dict[str, Any]) -> bytes:
    return _http(status, "application/json", json.dumps(document, sort_keys=True))


def _http(status: int, content_type: str, text: str) -> bytes:
    body = text.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
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
    host: str, port: int, snapshot: Callable[[], dict[str, Any]], metrics: Callable[[], str]
) -> asyncio.Server:
    """Serve `GET /health` and `GET /metrics` on `host:port`: `snapshot()` gives the health
    document (with `status`), `metrics()` the Prometheus text."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(health_read_timeout_s):
                request_line = await _read_request_line(reader)
            method, path, *_ = [*request_line.split(" "), "", ""]
            route = path.split("?", 1)[0] if method == "GET" else ""
            if route == "/health":
                document = snapshot()
                status = 200 if document.get("status") == "ok" else 503
                writer.write(_response(status, document))
            elif route == "/metrics":
                writer.write(_http(200, METRICS_CONTENT_TYPE, metrics()))
            else:
                writer.write(_response(404, {"error": "only GET /health and /metrics"}))
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
