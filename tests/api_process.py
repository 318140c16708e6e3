"""`ledger api` in its own process, as deployed (no authentication, loopback only), for the
tests and benchmarks that call it from outside."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

api_start_s = 120.0  # building the views of a large store comes first
api_poll_s = 0.05
api_stop_s = 30.0
tcp_listen_state = "0A"  # /proc/net/tcp's code for a listening socket


@dataclass(frozen=True)
class RunningApi:
    base: str  # http://127.0.0.1:PORT
    port: int
    process: subprocess.Popen[bytes]  # the supervisor when there are several workers


@contextmanager
def running_api(store_url: str, log_path: Path, workers: int = 1) -> Iterator[RunningApi]:
    """A running `ledger api --workers N` on `store_url`, every worker listening; its stderr
    goes to `log_path`."""
    port = free_port()
    command = [sys.executable, "-m", "app", "--store", store_url, "api", "--insecure-no-auth"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stderr=log, cwd=log_path.parent)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + api_start_s
            while listening_sockets(port) < workers or not _answers(f"{base}/health"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ledger api did not start: {log_path.read_text()[-3000:]}")
                time.sleep(api_poll_s)  # waiting on another process: nothing to await
            yield RunningApi(base, port, server)
        finally:
            server.terminate()
            server.wait(timeout=api_stop_s)


@contextmanager
def ledger_api(store_url: str, log_path: Path) -> Iterator[str]:
    """The base URL of a running `ledger api` on `store_url`; its stderr goes to `log_path`."""
    with running_api(store_url, log_path) as api:
        yield api.base


def listening_sockets(port: int) -> int:
    """How many sockets listen on the TCP port of 127.0.0.1 (Linux's /proc/net/tcp)."""
    suffix = f":{port:04X}"
    rows = (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
    return sum(1 for row in rows if row[1].endswith(suffix) and row[3] == tcp_listen_state)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False
