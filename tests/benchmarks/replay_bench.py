"""Benchmark: replay N journal events into every view, against the raw decode rate.

`replay_benchmark(events)` simulates an inbox stream into a SQLite store file until its
journal holds at least `events` events, then measures (1) decoding the journal records
with msgspec alone, from memory, and (2) the replay as the product runs it: the journal
read from the store a page at a time, decoded and projected into every view in a scratch
in-memory database (`ProjectionRunner.follow`, as `ledger report` catches its views up and
`ledger report --as-of` and the API's `as_of` reports build theirs; a reader with a store
keeps no trades register, the store's table has the trades a bust names). It also times
(3) the same records projected with no store behind them (`apply_records`, as `audit
replay` rebuilds from the journal's records alone: its book keeps every trade a reversal
may name). All are CPU time
of this process: on a shared machine wall time measures the scheduler, and the phases, a
second apart, did not see the same load (the same code measured 0.20 and 0.30 of decode
in two runs at load 5).
Run `python -m tests.benchmarks.replay_bench [EVENTS [ACCOUNTS]]`.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from app.simulation import simulate
from ledger import journal_events as je
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import InboxItem, LedgerApplication
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
    records_replay_to_decode_ratio: float  # float-ok: a benchmark ratio, no store behind
    peak_rss_mib: float  # float-ok: memory, not money
    # The machine's other work moves the ratio by a fifth either way at a load of 4 to 9
    # on 2 cores (docs/performance.md): say how busy it was, before and after.
    load_before: float  # float-ok: the 1-minute load average
    load_after: float  # float-ok: the 1-minute load average

    def describe(self) -> str:
        return (
            f"projection replay: {self.events:,} events, {self.accounts} accounts; "
            f"decode {self.decode_events_per_s:,.0f} events/s; "
            f"replay from the store into every view {self.replay_events_per_s:,.0f} events/s "
            f"({self.replay_to_decode_ratio:.3f} of decode); exported records, no store: "
            f"{self.records_replay_to_decode_ratio:.3f} of decode; "
            f"peak RSS {self.peak_rss_mib:,.0f} MiB; load average {self.load_before:.1f} "
            f"before, {self.load_after:.1f} after, {os.cpu_count()} cores"
        )


def _journal(events: int, accounts: int, folder: Path) -> LedgerStore:
    """A store file whose simulated journal holds at least `events` events (more days
    until it does)."""
    policy = load_policy(None)
    days = 3
    while True:
        path = folder / f"replay-{days}.db"
        store = LedgerStore.open(f"sqlite:///{path}")
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
            return store
        store.close()
        path.unlink()
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
    policy = load_policy(None)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ledger-replay-") as folder:
        store = _journal(events, accounts, Path(folder))
        try:
            records = [entry.record for entry in islice(store.iter_journal(), events)]
            decode_s = min(_decode_cpu_s(records) for _ in range(decode_rounds))
            with ViewDatabase.open("sqlite:///:memory:") as database:
                runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
                started = time.process_time()
                runner.follow(store, until_seq=events)
                replay_s = time.process_time() - started
        finally:
            store.close()
    with ViewDatabase.open("sqlite:///:memory:") as database:
        runner = ProjectionRunner(
            database, AdoptedPolicies.of(policy), from_store=False
        )  # records, as exported
        started = time.process_time()
        for start in range(0, len(records), projection_batch_events_max):
            runner.apply_records(records[start : start + projection_batch_events_max])
        records_replay_s = time.process_time() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    figures = ReplayFigures(
        events=len(records),
        accounts=accounts,
        decode_events_per_s=len(records) / decode_s,
        replay_events_per_s=len(records) / replay_s,
        replay_to_decode_ratio=decode_s / replay_s,
        records_replay_to_decode_ratio=decode_s / records_replay_s,
        peak_rss_mib=peak_kib / 1024,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    print(figures.describe())
    return figures


if __name__ == "__main__":
    replay_benchmark(
        int(sys.argv[1]) if len(sys.argv) > 1 else default_events,
        int(sys.argv[2]) if len(sys.argv) > 2 else default_accounts,
    )
