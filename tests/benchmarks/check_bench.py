"""Pre-trade check latency: `POST /accounts/{id}/checks` with 50 concurrent callers.

Prints figures; asserts nothing about time. Run:
`python -m tests.benchmarks.check_bench [STORE_URL]` (default: builds the demo's store,
`ledger demo`'s seed, accounts and days, in a temporary folder).

`ledger api` runs as a child process on the store; each of 50 callers sends checks one
after the other (a closed loop: a caller sends its next check when the last is answered),
each a small perpetual order of an account holding a position, and the latency of every
answer is kept: p50, p99 and the checks per second.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.commands import ingest_stream
from app.demo import DEMO_ACCOUNTS, DEMO_DAYS, DEMO_SEED
from app.simulation import simulate
from ledger import reporting
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.conftest import free_port

concurrent_callers = 50
checks_per_caller = 20
api_start_timeout_s = 60.0
api_poll_interval_s = 0.2
request_timeout_s = 30.0
send_attempts_max = 3


def demo_store(folder: Path) -> str:
    """The demo's store (same seed, accounts and days), ingested embedded."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    inbox = b"\n".join(simulate(DEMO_SEED, DEMO_ACCOUNTS, DEMO_DAYS))
    with LedgerStore.open(url) as store:
        ingest_stream(LedgerApplication(store, load_policy(None)), io.BytesIO(inbox), "demo")
    return url


def _orders(url: str) -> list[tuple[str, bytes]]:
    """One small BTC-PERP buy per account holding a position: (account, record)."""
    with LedgerStore.open(url) as store:
        book = reporting.book_as_of(store, None)
    mark = book.marks["BTC-PERP"]
    orders = []
    for account in sorted(book.clients(), key=lambda a: a.account_id):
        if account.positions and account.investor_class == "professional":
            record = {
                "type": "perp_trade",
                "event_id": f"bench-check-{account.account_id}",
                "occurred_at": "2030-01-01T00:00:00Z",
                "account_id": account.account_id,
                "trade_id": f"bench-check-{account.account_id}",
                "market": "BTC-PERP",
                "side": "buy",
                "quantity": "0.01",
                "price": str(mark),
                "fee": "0",
            }
            orders.append((account.account_id, json.dumps(record).encode()))
    return orders


def _start_api(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`ledger api` on the store, its stderr (one access-log line per request) in `log`:
    a pipe nobody reads would fill and stop the server."""
    command = [sys.executable, "-m", "app", "--store", url, "api", "--port", str(port)]
    command.append("--insecure-no-auth")  # loopback only: the figure is the check, not TLS
    with log.open("wb") as errors:
        api = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.monotonic() + api_start_timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return api
        except httpx.TransportError:
            time.sleep(api_poll_interval_s)
    api.kill()
    raise RuntimeError(f"ledger api did not answer: {log.read_text()[-2000:]}")


async def _callers(port: int, orders: list[tuple[str, bytes]]) -> tuple[list[float], float]:
    """Latencies in ms of every check, and the wall-clock seconds they took."""
    latencies: list[float] = []  # float-ok: wall-clock latencies, never money

    async def caller(client: httpx.AsyncClient, number: int) -> None:
        for turn in range(checks_per_caller):
            account_id, record = orders[(number * checks_per_caller + turn) % len(orders)]
            for _ in range(send_attempts_max):
                started = time.perf_counter()
                try:
                    response = await client.post(f"/accounts/{account_id}/checks", content=record)
                except httpx.TransportError:
                    # A kept-alive connection the server closed as it was reused: send again.
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                break

    limits = httpx.Limits(max_connections=concurrent_callers)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=request_timeout_s
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(caller(client, n) for n in range(concurrent_callers)))
        return latencies, time.perf_counter() - started


def check_latency(url: str) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, checks per second) with 50 concurrent callers."""
    orders = _orders(url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ledger-check-bench-log-") as folder:
        api = _start_api(url, port, Path(folder) / "api.log")
        return _measure(api, port, orders)


def _measure(
    api: subprocess.Popen[bytes], port: int, orders: list[tuple[str, bytes]]
) -> tuple[float, float, float]:
    try:
        latencies, elapsed_s = asyncio.run(_callers(port, orders))
    finally:
        api.terminate()
        api.wait()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return p50, p99, len(latencies) / elapsed_s


def check_row(url: str) -> tuple[str, str]:
    p50, p99, rate = check_latency(url)
    return (
        f"pre-trade check, {concurrent_callers} concurrent callers, demo store",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rate:,.0f} checks/s",
    )


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    with tempfile.TemporaryDirectory(prefix="ledger-check-bench-") as folder:
        name, figure = check_row(url or demo_store(Path(folder)))
    print(f"| {name} | {figure} |")


if __name__ == "__main__":
    main()
