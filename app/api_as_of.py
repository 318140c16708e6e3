"""The API's `as_of` reads, off the event loop and bounded.

An `as_of` read of a client account is a few indexed queries of the accounts' history
stored with the views (`projections.history`) when it reaches that position; past it, or
of a platform account, of the worker's history of the journal's latest events, in memory
(`projections.tail`), when that reaches it. Otherwise it rebuilds state at the position:
the book from the nearest snapshot at or before it (`ledger.snapshots`); for a report
every view, from the stored views when they stand at or before it, else from seq 1
(`projections.views.views_at`). That is work in milliseconds to seconds, so it never
runs on the event loop's thread, where it would starve `/health` (and with it the
liveness probe) and every other read:

- it runs in a pool of `as_of_workers` worker processes (their own interpreter, so their
  work never holds the event loop's GIL), started with the API, each with the store
  opened once (and the stored views at its first history read), at a lower CPU
  priority (`as_of_worker_niceness`) so the event loop wins the cores when both want them;
  at most `as_of_workers` replays run at once;
- at most `as_of_requests_in_flight_max` `as_of` requests are admitted (running or
  waiting for a worker); one more is answered 503 with `Retry-After`, never queued without
  bound.

A store in memory (tests) cannot be opened by another process: without an `AsOfSource`
the same work runs on a pool of `as_of_workers` threads sharing the open store instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import reporting, risk, snapshots
from ledger.adopted_policies import AdoptedPolicies, adopted_policies
from ledger.book import Book
from ledger.invariants import InvariantViolation, require
from ledger.limits import snapshot_interval_events
from ledger.store import LedgerStore
from projections import history
from projections import tail as history_tail
from projections.database import ViewDatabase, ViewsReadOnly
from projections.tables import TABLES_BY_VIEW
from projections.tail import HistoryTail
from projections.views import document, views_at

as_of_workers = 2  # replays at once: one per core of the machines the API runs on
as_of_requests_in_flight_max = 64  # admitted as_of requests, running or waiting
as_of_worker_niceness = 10  # added to a worker process's nice value: the event loop first
as_of_retry_after_s = 1  # the Retry-After of a 503 when the bound is reached
# Seconds the API's PostgreSQL reads (its event loop's and its workers') wait for a
# connection, each tried once: how long a request waits when the server goes down,
# against about 80 s for a writer's patient reads (ledger/store.py).
store_reach_timeout_s = 1
_HTTP_BAD_REQUEST = 400
_HTTP_NOT_FOUND = 404
_HTTP_CONFLICT = 409


@dataclass(frozen=True)
class AsOfSource:
    """What a worker process opens: the store's URL (password included: never logged) and
    the `--policy` file or folder (None: the policies the store keeps, else the
    demonstration policy)."""

    store_url: str
    policy_path: Path | None


class AsOfRefusal(Exception):
    """A user's as_of request the ledger cannot answer: an HTTP status and a sentence."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail


class AsOfBusy(Exception):
    """`as_of_requests_in_flight_max` as_of requests are in flight already."""


# The store, policy and stored views' URL (None for a store in memory) of a worker (process
# or thread), set by the pool's initializer.
_worker: dict[str, tuple[LedgerStore, AdoptedPolicies, str | None]] = {}
_OPENED = "opened"
# The stored views a worker process reads accounts' history from, opened at its first read,
# and its history of the journal's latest events (projections/tail.py), begun at its start.
_history_views: dict[str, ViewDatabase] = {}
_history_tails: dict[str, HistoryTail] = {}
_tails_refused: dict[str, int] = {}  # the start where a tail could not begin (no snapshot)
_last_replayed: dict[str, Book] = {}  # a worker process's last replayed book (`_replayed`)


def _open_in_process(source: AsOfSource, policy_digests: frozenset[str]) -> None:
    os.nice(as_of_worker_niceness)
    store = LedgerStore.open(
        source.store_url, read_only=True, reach_timeout_s=store_reach_timeout_s
    )
    policies = adopted_policies(store, files=source.policy_path)
    require(
        policy_digests <= policies.by_digest.keys(),
        "the policy files changed since the API started",
    )
    # The journal's policy_adopted seqs read now (a scan of the journal's types: about 4 s
    # of CPU for 10M events, measured at 0.35 us an event), not by the first as_of read.
    policies.at_seq(store, store.last_seq())
    _worker[_OPENED] = (store, policies, source.store_url)
    _follow_tail(store, source.store_url)


def _share_with_thread(store: LedgerStore, policies: AdoptedPolicies) -> None:
    _worker[_OPENED] = (store, policies, None)


def _opened() -> tuple[LedgerStore, AdoptedPolicies, str | None]:
    opened = _worker.get(_OPENED)
    if opened is None:
        raise InvariantViolation("an as_of worker ran before its pool opened the store")
    return opened


def _ready() -> None:
    """Nothing but a worker's start (its initializer opened the store)."""
    _opened()


def _seq(store: LedgerStore, as_of: str) -> int:
    try:
        return reporting.as_of_seq(store, as_of)
    except reporting.AsOfError as error:
        detail = str(error).replace("--as-of", "as_of")
        raise AsOfRefusal(_HTTP_BAD_REQUEST, detail) from error


def account_document(as_of: str, account_id: str, what: str) -> dict[str, Any]:
    """`GET /accounts/{id}/margin|balances?as_of=`, in a worker."""
    store, policies, stored_url = _opened()
    seq = _seq(store, as_of)
    book = _from_history(store, stored_url, account_id, seq) or _replayed(store, stored_url, seq)
    # A platform account answers too (from seq 1), as in `ledger query` and the current reads.
    if not reporting.in_ledger(book, account_id):
        detail = reporting.account_not_found(account_id, as_of, seq)
        raise AsOfRefusal(_HTTP_NOT_FOUND, detail)
    build = reporting.margin_view if what == "margin" else reporting.balances_view
    try:
        # A book from the accounts' history keeps no policy: the journal says which.
        return build(book, policies.at_seq(store, seq), account_id)
    except risk.MissingMark as missing:
        detail = f"account {account_id} cannot be valued yet: {missing}"
        raise AsOfRefusal(_HTTP_CONFLICT, detail) from missing


def _replayed(store: LedgerStore, stored_url: str | None, seq: int) -> Book:
    """The book right after `seq` where no history reaches it: a worker process's last
    replayed book moved forward when `seq` lies at most `snapshot_interval_events` past it
    (a replay from the nearest snapshot applies as many at most), else the nearest
    snapshot and the journal up to `seq` (`reporting.book_as_of`). Reads sent together
    come in ascending seqs more often than not. Worker threads (a store in memory) share
    no book: each replays."""
    last = None if stored_url is None else _last_replayed.get(stored_url)
    if last is not None and 0 <= seq - last.last_seq <= snapshot_interval_events:
        snapshots.apply_until(store, last, seq)
        return last
    book = reporting.book_as_of(store, str(seq))
    if stored_url is not None:
        _last_replayed[stored_url] = book
    return book


def _from_history(
    store: LedgerStore, stored_url: str | None, account_id: str, seq: int
) -> Book | None:
    """The book for a read right after `seq` from the accounts' history: a client's or
    the house's from the one stored with the views, up to their position; any account's
    from the worker's tail in memory, which holds the journal's latest events (a few
    indexed queries either way); None where neither reaches: a store in memory, a seq
    before the stored history or before the tail, another platform account before the
    tail."""
    if stored_url is None:
        return None
    views = _stored_history(stored_url)
    if views is not None and history.covers(views, seq, account_id):
        return history.book_at(views, account_id, seq)
    tail = _tail(store, stored_url, seq)
    return None if tail is None else tail.book_at(store, account_id, seq)


def _stored_history(stored_url: str) -> ViewDatabase | None:
    """The views stored at `stored_url` when they keep the accounts' history, opened once."""
    views = _history_views.get(stored_url)
    if views is None:
        try:
            views = ViewDatabase.open(stored_url, create=False)
        except ViewsReadOnly:
            return None  # never built here, or not readable: the tail or a replay answers
        _history_views[stored_url] = views
    return None if views.history_start() is None else views


def _tail_start(store: LedgerStore, stored_url: str) -> int:
    views = _stored_history(stored_url)
    views_seq = None if views is None else views.position().last_seq
    return history_tail.start_for(views_seq, store.last_seq())


def _follow_tail(store: LedgerStore, stored_url: str) -> None:
    """At a worker's start, its tail begun and caught up to the journal's end (within its
    bound): the catch-up (seconds for 100,000 events) is not a read's wait."""
    start = _tail_start(store, stored_url)
    tail = _tail(store, stored_url, start)
    if tail is not None:
        tail.follow(store, history_tail.furthest(start, store.last_seq()))


def _tail(store: LedgerStore, stored_url: str, seq: int) -> HistoryTail | None:
    """The worker's tail reaching `seq`: the one it keeps, or one begun again where a tail
    begins now (`tail.start_for`) when the journal or the stored views moved on and the new
    one reaches `seq`. None when no tail reaches it: before where a tail begins (a read
    there replays), an empty journal, or no snapshot near enough where it would begin (not
    tried again there)."""
    tail = _history_tails.get(stored_url)
    if tail is not None and tail.reaches(seq):
        return tail
    if store.last_seq() == 0:
        return None
    start = _tail_start(store, stored_url)
    if (
        not history_tail.reachable(start, seq)
        or (tail is not None and tail.start == start)
        or _tails_refused.get(stored_url) == start
    ):
        return None
    if tail is not None:
        tail.close()
        del _history_tails[stored_url]
    begun = HistoryTail.begin(store, start)
    if begun is None:
        _tails_refused[stored_url] = start
        return None
    _history_tails[stored_url] = begun
    return begun


def report_document(as_of: str, view: str) -> dict[str, Any]:
    """`GET /reports/{view}?as_of=`, in a worker: the views at the seq, from the stored views
    when they stand at or before it, else rebuilt from seq 1."""
    store, policies, stored_url = _opened()
    scratch = views_at(store, policies, _seq(store, as_of), stored_url=stored_url)
    try:
        return document(scratch, TABLES_BY_VIEW[view])
    finally:
        scratch.close()


class AsOfReader:
    """Runs as_of reads in a bounded pool; `await reader.run(account_document, ...)`."""

    def __init__(
        self, store: LedgerStore, policies: AdoptedPolicies, source: AsOfSource | None
    ) -> None:
        self.in_flight = 0
        self._executor: Executor
        if source is None:
            self._executor = ThreadPoolExecutor(
                as_of_workers, "as_of", _share_with_thread, (store, policies)
            )
        else:
            self._executor = ProcessPoolExecutor(
                as_of_workers,
                # spawn: a fresh interpreter, nothing inherited from the server's threads
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_open_in_process,
                initargs=(source, frozenset(policies.by_digest)),
            )
            # Every worker started now (a new interpreter, its imports, the store opened:
            # seconds on a busy machine), not by the first reads, which would wait for it.
            for started in [self._executor.submit(_ready) for _ in range(as_of_workers)]:
                started.result()

    async def run(self, read: Callable[..., dict[str, Any]], *args: str) -> dict[str, Any]:
        """The document `read(*args)` builds in a worker; `AsOfBusy` past the bound."""
        if self.in_flight >= as_of_requests_in_flight_max:
            raise AsOfBusy
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, read, *args)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        # Waits for the replays running now (at most `as_of_workers`), so no worker outlives
        # the server; the waiting ones are cancelled.
        self._executor.shutdown(wait=True, cancel_futures=True)
