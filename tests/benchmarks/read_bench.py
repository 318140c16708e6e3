"""Restart, query, report and API `as_of` figures on a store `ledger ingest` built.

Each is a child process timed from its start, as a person or an orchestrator sees it, and
set beside `ledger --help` (the interpreter and the CLI's imports) timed the same way in the
same run. Asserts nothing. Run: `python -m tests.benchmarks.read_bench sqlite:///PATH`.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import HOUSE
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections import resume
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner
from projections.tail import tail_events_max
from tests.api_process import ledger_api

command_runs = 3  # each command is timed this many times; the median is kept
as_of_requests = 50
api_request_timeout_s = 600.0
health_poll_s = 0.05  # /health is asked this often while the as_of reads are in flight
_RESTART = (
    "import sys; from ledger.application import LedgerApplication; "
    "from ledger.policy import load_policy; from ledger.store import LedgerStore; "
    "LedgerApplication(LedgerStore.open(sys.argv[1]), load_policy(None))"
)


@dataclass(frozen=True, slots=True)
class Reads:
    """One burst of `as_of_requests` account reads, all sent at once."""

    p50_ms: float  # float-ok: milliseconds
    p99_ms: float  # float-ok: milliseconds
    health_p99_ms: float  # float-ok: milliseconds, /health while the reads are in flight

    def describe(self) -> str:
        return (
            f"p50 {self.p50_ms:,.0f} ms, p99 {self.p99_ms:,.0f} ms; "
            f"/health p99 {self.health_p99_ms:,.0f} ms"
        )


@dataclass(frozen=True, slots=True)
class PastViewsReads:
    """`as_of` reads at seqs past the stored views (the workers' tail): of a client, then
    of the house account (both from the tail there)."""

    views_seq: int  # where the stored views stand
    client: Reads
    platform: Reads


@dataclass(frozen=True, slots=True)
class ReadFigures:
    events: int
    help_s: float  # float-ok: seconds, never money
    restart_s: float  # float-ok: seconds
    query_s: float  # float-ok: seconds
    report_first_s: float  # float-ok: seconds
    report_s: float  # float-ok: seconds
    report_as_of_s: float  # float-ok: seconds, as of the journal's middle, before the views
    as_of_p50_ms: float  # float-ok: milliseconds
    as_of_p99_ms: float  # float-ok: milliseconds
    health_p99_ms: float  # float-ok: milliseconds, /health while the as_of reads are in flight
    house: Reads  # the same reads of the house account (its stored history)
    # The same reads past the stored views (None: a store that is not a SQLite file).
    past: PastViewsReads | None

    def target_rows(self) -> list[tuple[str, str, str]]:
        """(measure, target, figure) for the read rows of the speed targets."""
        help_s = self.help_s
        return [
            (
                f"restart after {self.events:,} journal events (start to ready)",
                "< 3 s after 1.35M events",
                f"{self.restart_s:.2f} s",
            ),
            (
                "`ledger query margin ID` / `report VIEW`, views maintained",
                "< 3x `ledger --help`",
                f"{self.query_s / help_s:.1f}x / {self.report_s / help_s:.1f}x "
                f"({self.query_s:.2f} s / {self.report_s:.2f} s; --help {help_s:.2f} s; "
                f"the report's first run, building the views: {self.report_first_s:.1f} s)",
            ),
            (
                f"`report VIEW --as-of {self.events // 2:,}` (before the stored views)",
                "(none; from a kept state, at most 50,000 events)",
                f"{self.report_as_of_s / help_s:.1f}x ({self.report_as_of_s:.2f} s)",
            ),
            (
                f"API `as_of` account reads, {as_of_requests} in flight; /health meanwhile",
                "p99 < 250 ms; /health < 100 ms",
                f"p50 {self.as_of_p50_ms:,.0f} ms, p99 {self.as_of_p99_ms:,.0f} ms; "
                f"/health p99 {self.health_p99_ms:,.0f} ms",
            ),
            (f"`{HOUSE}`'s reads", "p99 < 250 ms; /health < 100 ms", self.house.describe()),
            *self._past_rows(),
        ]

    def _past_rows(self) -> list[tuple[str, str, str]]:
        past = self.past
        if past is None:
            return []
        return [
            (
                f"the same reads past the stored views (at seq {past.views_seq:,})",
                "p99 < 250 ms; /health < 100 ms",
                past.client.describe(),
            ),
            (
                f"`{HOUSE}`'s reads past the stored views",
                "p99 < 250 ms; /health < 100 ms",
                past.platform.describe(),
            ),
        ]


def _median_s(command: list[str]) -> float:
    timings = []
    for _ in range(command_runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _once_s(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - started


def read_figures(store_url: str, workdir: Path) -> ReadFigures:
    with LedgerStore.open(store_url) as store:
        events = store.last_seq()
        client = sorted(a.account_id for a in reporting.book_as_of(store, None).clients())[0]
    ledger = [sys.executable, "-m", "app", "--store", store_url]
    report = [*ledger, "report", "margin-clients", "--format", "csv"]
    past = _past_views_reads(store_url, client, events, workdir)
    first = _once_s(report)  # builds the views and saves their state
    reads, house = _as_of_ms(store_url, [client, HOUSE], events // 2, events, workdir)
    return ReadFigures(
        events=events,
        help_s=_median_s([sys.executable, "-m", "app", "--help"]),
        restart_s=_median_s([sys.executable, "-c", _RESTART, store_url]),
        query_s=_median_s([*ledger, "query", "margin", client]),
        report_first_s=first,
        report_s=_median_s(report),
        report_as_of_s=_median_s([*report, "--as-of", str(events // 2)]),
        as_of_p50_ms=reads.p50_ms,
        as_of_p99_ms=reads.p99_ms,
        health_p99_ms=reads.health_p99_ms,
        house=house,
        past=past,
    )


def _past_views_reads(
    store_url: str, client: str, events: int, workdir: Path
) -> PastViewsReads | None:
    """The as_of reads on a copy of the store whose views stand before the seqs read (as
    after events decided since the last `ledger report`), within a tail's bound."""
    if not store_url.startswith("sqlite:///"):
        return None
    copy = workdir / "past-views.db"
    shutil.copyfile(store_url.removeprefix("sqlite:///"), copy)
    copy_url = f"sqlite:///{copy}"
    views_seq = max(events // 2, events - tail_events_max)
    with LedgerStore.open(copy_url) as store, ViewDatabase.open(copy_url) as views:
        runner = ProjectionRunner(views, AdoptedPolicies.of(load_policy(None)))
        runner.follow(store, until_seq=views_seq)
        resume.save(views, runner.state, runner.name)
    client_reads, platform_reads = _as_of_ms(copy_url, [client, HOUSE], views_seq, events, workdir)
    copy.unlink()
    return PastViewsReads(views_seq, client_reads, platform_reads)


def _as_of_ms(
    store_url: str, accounts: list[str], after_seq: int, last_seq: int, workdir: Path
) -> list[Reads]:
    """For each of `accounts` in turn, on one `ledger api`: p50 and p99 of
    `as_of_requests` reads of its margin at seqs spread after `after_seq` up to `last_seq`
    (in the journal's second half: the account exists there), all sent at once; and the p99
    of `/health`, asked every `health_poll_s` while they are in flight."""
    with ledger_api(store_url, workdir / "api-bench.log") as base:
        span = last_seq - after_seq
        seqs = [after_seq + span * (n + 1) // as_of_requests for n in range(as_of_requests)]
        return [
            Reads(*asyncio.run(_fire(base, f"/accounts/{account}/margin", seqs)))
            for account in accounts
        ]


async def _fire(base: str, path: str, seqs: list[int]) -> tuple[float, float, float]:
    limits = httpx.Limits(max_connections=len(seqs))
    async with httpx.AsyncClient(
        base_url=base, timeout=api_request_timeout_s, limits=limits
    ) as client:

        async def one(seq: int) -> float:
            started = time.perf_counter()
            response = await client.get(path, params={"as_of": str(seq)})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        async def health(done: asyncio.Event) -> list[float]:
            delays: list[float] = []
            while not done.is_set():
                started = time.perf_counter()
                (await client.get("/health")).raise_for_status()
                delays.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(health_poll_s)
            return delays

        done = asyncio.Event()
        polling = asyncio.create_task(health(done))
        try:
            delays = sorted(await asyncio.gather(*(one(seq) for seq in seqs)))
        finally:
            done.set()
        health_delays = sorted(await polling)
    return statistics.median(delays), _p99(delays), _p99(health_delays)


def _p99(delays: list[float]) -> float:  # float-ok: milliseconds
    return delays[max(0, int(len(delays) * 0.99) - 1)]


if __name__ == "__main__":
    print(read_figures(sys.argv[1], Path.cwd()))
