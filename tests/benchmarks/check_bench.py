"""Pre-trade check latency: `POST /accounts/{id}/checks` with 50 concurrent callers.

Prints figures; asserts nothing about time. Run:
`python -m tests.benchmarks.check_bench [STORE_URL]` (default: builds the demo's store,
`ledger demo`'s seed, accounts and days, in a temporary folder).

`ledger api --workers 2` runs as a child process on the store, every worker listening
and caught up before the first call; each of 50 callers sends checks one after the other
(a closed loop: a caller sends its next check when the last is answered) on its own
kept-alive connection, each a small perpetual order of an account holding a position, and
the latency of every answer is kept: p50, p99 and the checks per second, printed beside the
target (p99 under 20 ms), with the server processes' CPU time per answer (which a busy
machine stretches far less than the latency) and the callers' own (they share the cores),
the same callers' figures on `/health` (the cheapest route: the ceiling of the server's
HTTP stack on this machine), the same checks on one server process (`--workers 1`), and
what the same checks cost in process, one after the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

from app.demo import default_demo_store
from ledger import pretrade, reporting
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_process import running_api

concurrent_callers = 50
checks_per_caller = 40  # 2,000 answers a run: the p99 is the 20th slowest
api_workers = 2  # server processes: one per core of the project's machine
check_p99_target_ms = 20
in_process_rounds = 4


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


def _request(account_id: str, record: bytes) -> bytes:
    """The HTTP/1.1 request of one check, keeping the connection alive."""
    head = (
        f"POST /accounts/{account_id}/checks HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(record)}\r\n\r\n"
    )
    return head.encode() + record


HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One response's body; refuses any status but 200."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    if status != b"200":
        raise RuntimeError(f"the API answered {status.decode()}: {body[:500]!r}")
    return body


async def _callers(port: int, requests: list[bytes]) -> tuple[list[float], float]:
    """Latencies in ms of every request, and the wall-clock seconds they took.

    Each caller keeps one connection and writes prepared request bytes: a general HTTP
    client spends more CPU per request than the check itself, and on a shared machine its
    cost would be counted in the server's latency."""
    latencies: list[float] = []  # float-ok: wall-clock latencies, never money

    async def caller(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for turn in range(checks_per_caller):
                request = requests[(number * checks_per_caller + turn) % len(requests)]
                started = time.perf_counter()
                writer.write(request)
                await _answer(reader)
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(concurrent_callers)))
    return latencies, time.perf_counter() - started


@dataclass(frozen=True)
class Latency:
    p50_ms: float  # float-ok: wall-clock figures, never money
    p99_ms: float
    per_s: float
    server_cpu_ms: float  # the API's processes' CPU time per answer
    callers_cpu_ms: float  # the callers' own CPU time per answer (this process)


def check_latency(url: str, workers: int) -> tuple[Latency, Latency]:
    """The checks' latency with 50 concurrent callers on `ledger api --workers N`, and the
    same callers' on `/health` (the server's ceiling: the cheapest route, through the same
    HTTP stack)."""
    checks = [_request(account_id, record) for account_id, record in _orders(url)]
    with (
        tempfile.TemporaryDirectory(prefix="ledger-check-bench-log-") as folder,
        running_api(url, Path(folder) / "api.log", workers) as api,
    ):
        pids = _process_tree(api.process.pid)
        return _measure(api.port, checks, pids), _measure(api.port, [HEALTH_REQUEST], pids)


def _measure(port: int, requests: list[bytes], pids: list[int]) -> Latency:
    cpu_before_s, callers_before_s = _cpu_s(pids), time.process_time()
    # The server's event loop for the callers too: asyncio's own spent a fifth more CPU on
    # them, taken from the cores the server shares.
    latencies, elapsed_s = uvloop.run(_callers(port, requests))
    server_cpu_ms = (_cpu_s(pids) - cpu_before_s) * 1000 / len(latencies)
    # The callers share the machine's cores with the server: what they cost is not the
    # server's to spend.
    callers_cpu_ms = (time.process_time() - callers_before_s) * 1000 / len(latencies)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return Latency(p50, p99, len(latencies) / elapsed_s, server_cpu_ms, callers_cpu_ms)


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux's /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(grandchild for child in children for grandchild in _process_tree(int(child)))]


def _cpu_s(pids: list[int]) -> float:
    """The CPU seconds (user and system) the processes have used: a machine shared with
    other work stretches the latency, far less what one answer costs."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def in_process_ms(url: str, orders: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(p50 ms, p99 ms) of the check alone, in this process, one after the other, on the
    same orders: what a check costs the server, without HTTP or waiting for its turn."""
    policy = load_policy(None)
    kept = pretrade.FiguresBefore()
    latencies = []
    with LedgerStore.open(url) as store:
        book = reporting.book_as_of(store, None)
        for account_id, record in orders * in_process_rounds:
            started = time.perf_counter()
            pretrade.check(book, policy, account_id, record, kept, store=store)
            latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]


def check_row(url: str) -> tuple[str, str, str]:
    """(measure, target, figure) of the check's latency over HTTP with `api_workers` server
    processes, one process's beside it, and the check alone in process.

    The callers form a closed loop: the server processes answer them in turn, so a caller
    waits about `concurrent_callers / rate` for its answer whatever a check costs."""
    load_before = os.getloadavg()[0]
    checks, health = check_latency(url, api_workers)
    one_process, _ = check_latency(url, 1)
    alone_p50, alone_p99 = in_process_ms(url, _orders(url))
    return (
        f"pre-trade check over HTTP, {concurrent_callers} concurrent callers, demo store, "
        f"ledger api --workers {api_workers}",
        f"p99 < {check_p99_target_ms} ms",
        f"{_figures(checks, 'checks')}; the same callers on /health: {_figures(health, 'answers')}"
        f"; one process (--workers 1): {_figures(one_process, 'checks')}; "
        f"the check alone in process p50 {alone_p50:.2f} ms, p99 {alone_p99:.2f} ms; "
        # The machine's other work stretches every latency above: say how busy it was.
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"{os.cpu_count()} cores",
    )


def _figures(latency: Latency, what: str) -> str:
    rate = latency.per_s
    return (
        f"p99 {latency.p99_ms:.1f} ms, p50 {latency.p50_ms:.1f} ms, {rate:,.0f} {what}/s "
        f"(closed loop: {concurrent_callers} / rate = {concurrent_callers / rate * 1000:.0f} ms)"
        f", server CPU {latency.server_cpu_ms:.2f} ms per answer, the callers' own "
        f"{latency.callers_cpu_ms:.2f} ms"
    )


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    with tempfile.TemporaryDirectory(prefix="ledger-check-bench-") as folder:
        name, target, figure = check_row(url or default_demo_store(Path(folder)))
    print(f"| measure | target | this run |\n| --- | --- | --- |\n| {name} | {target} | {figure} |")


if __name__ == "__main__":
    main()
