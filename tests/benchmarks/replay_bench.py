"""Benchmark: replay N journal events into every view, against the raw decode rate.

`replay_benchmark(events)` simulates an inbox stream until its journal holds at least
`events` events, then measures (1) decoding the journal records with msgspec alone and
(2) projecting them into every view in a scratch SQLite database, batch by batch as
`ledger report` does. Both are CPU time of this process: on a shared machine wall time
measures the scheduler, and the two phases, a second apart, did not see the same load
(the same code measured 0.20 and 0.30 of decode in two runs at load 5).
Run `python -m tests.benchmarks.replay_bench [EVENTS [ACCOUNTS]]`.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

from app.simulation import simulate
from ledger import journal_events as je
from ledger.application import InboxItem, LedgerApplication
from ledger.journal import JournalEntry
from ledger.limits import inbox_batch_records_max
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner, projection_batch_events_max

default_events = 100_000
default_accounts = 200
# The decode is timed this many times and its fastest round kept (the replay once): a
# conservative ratio, the decode's best against the replay's one run.
decode_rounds = 3


@dataclass(frozen=True, slots=True)
class ReplayFigures:
    events: int
    accounts: int
    decode_events_per_s: float  # float-ok: a benchmark rate, never money
    replay_events_per_s: float  # float-ok: a benchmark rate
    replay_to_decode_ratio: float  # float-ok: a benchmark ratio
    peak_rss_mib: float  # float-ok: memory, not money

    def describe(self) -> str:
        return (
            f"projection replay: {self.events:,} events, {self.accounts} accounts; "
            f"decode {self.decode_events_per_s:,.0f} events/s; "
            f"replay into every view {self.replay_events_per_s:,.0f} events/s "
            f"({self.replay_to_decode_ratio:.3f} of decode); peak RSS {self.peak_rss_mib:,.0f} MiB"
        )


def _journal(events: int, accounts: int) -> tuple[LedgerStore, list[JournalEntry]]:
    """A simulated journal of at least `events` events (more days until it is)."""
    policy = load_policy(None)
    store = LedgerStore.open("sqlite:///:memory:")
    days = 3
    while True:
        app = LedgerApplication(store, policy)
        batch: list[InboxItem] = []
        for offset, record in enumerate(simulate(1, accounts, days)):
            batch.append(InboxItem(record, None, "bench", 0, offset))
            if len(batch) == inbox_batch_records_max:
                app.process(batch)
                batch = []
        if batch:
            app.process(batch)
        if store.last_seq() >= events:
            return store, list(store.iter_journal())[:events]
        store.close()
        store = LedgerStore.open("sqlite:///:memory:")
        days += 3


def _decode_cpu_s(records: list[bytes]) -> float:  # float-ok: seconds, not money
    decode = je.journal_decoder.decode  # msgspec alone, as the runner calls it
    started = time.process_time()
    for record in records:
        decode(record)
    return time.process_time() - started


def replay_benchmark(
    events: int = default_events, accounts: int = default_accounts
) -> ReplayFigures:
    """Measure and return the figures (and print them)."""
    store, entries = _journal(events, accounts)
    policy = load_policy(None)
    records = [entry.record for entry in entries]
    decode_s = min(_decode_cpu_s(records) for _ in range(decode_rounds))
    with ViewDatabase.open("sqlite:///:memory:") as database:
        runner = ProjectionRunner(database, policy, from_store=False)  # records, as exported
        started = time.process_time()
        for start in range(0, len(records), projection_batch_events_max):
            runner.apply_records(records[start : start + projection_batch_events_max])
        replay_s = time.process_time() - started
    store.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    figures = ReplayFigures(
        events=len(records),
        accounts=accounts,
        decode_events_per_s=len(records) / decode_s,
        replay_events_per_s=len(records) / replay_s,
        replay_to_decode_ratio=decode_s / replay_s,
        peak_rss_mib=peak_kib / 1024,
    )
    print(figures.describe())
    return figures


if __name__ == "__main__":
    replay_benchmark(
        int(sys.argv[1]) if len(sys.argv) > 1 else default_events,
        int(sys.argv[2]) if len(sys.argv) > 2 else default_accounts,
    )
