"""Store throughput: the raw eventsourcing process recorder, and `LedgerStore.append`.

    .venv/bin/python -m tests.benchmarks.store_bench [STORE_URL ...]

Without a URL it measures a temporary SQLite file. Each batch is one transaction with a
`Tracking` row, as the ledger writes them.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from eventsourcing.persistence import ProcessRecorder, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteFactory, SQLiteProcessRecorder

from ledger.journal import GENESIS_HASH, JournalEntry, seal
from ledger.store import LedgerStore, StoreFactory, open_factory

payload_bytes = 450
batch_sizes = (1, 100, 1_000, 5_000)
events_per_run = 20_000


def bench_recorder(url: str, events: int, batch: int) -> float:
    """Events per second eventsourcing's own process recorder inserts, `batch` per
    transaction: the library as shipped, not the ledger's subclasses (PostgreSQL's sends
    the same rows by COPY)."""
    LedgerStore.open(url).close()  # creates the tables (PostgreSQL's recorder creates none)
    factory, _ = open_factory(url)
    try:
        recorder = _eventsourcing_recorder(factory)
        stream_id, tracking_name = uuid4(), f"bench:{uuid4().hex}"
        state = b"x" * payload_bytes
        started = time.perf_counter()
        for first in range(1, events + 1, batch):
            last = min(first + batch, events + 1)
            rows = [
                StoredEvent(stream_id, version, "bench", state) for version in range(first, last)
            ]
            recorder.insert_events(rows, tracking=Tracking(tracking_name, first))
        return events / (time.perf_counter() - started)
    finally:
        factory.close()


def _eventsourcing_recorder(factory: StoreFactory) -> ProcessRecorder:
    if isinstance(factory, SQLiteFactory):
        return SQLiteProcessRecorder(factory.datastore)
    return PostgresProcessRecorder(factory.datastore)


def bench_store_append(url: str, events: int, batch: int) -> float:
    """Events per second through `LedgerStore.append` (its checks included, sealing not)."""
    entries, prev_hash = [], GENESIS_HASH
    for seq in range(1, events + 1):
        body = {"type": "bench", "recorded_at": "2026-11-24T03:12:00Z", "pad": "x" * 300}
        sealed = seal(body, seq, prev_hash)
        entries.append(JournalEntry(seq, "bench", sealed.record))
        prev_hash = sealed.hash
    with LedgerStore.open(url) as store:
        first_seq = store.last_seq() + 1
        if first_seq != 1:
            msg = f"bench_store_append needs an empty journal at {store.describe()}"
            raise SystemExit(msg)
        started = time.perf_counter()
        for first in range(0, events, batch):
            store.append(entries[first : first + batch], [], Tracking("bench:0", first))
        return events / (time.perf_counter() - started)


def seal_rate(records: int) -> float:
    body = {
        "type": "deposit_credited",
        "recorded_at": "2026-11-24T03:12:00.123456Z",
        "causation_id": "dep-000000012345",
        "account_id": "ACC-00042",
        "asset": "BTC",
        "amount": "1.25000000",
        "reference": "wire-88123",
        "input_digest": "a" * 64,
        "policy_version": "demo-1",
    }
    started = time.perf_counter()
    for seq in range(1, records + 1):
        seal(body, seq, GENESIS_HASH)
    return records / (time.perf_counter() - started)


def main(urls: list[str]) -> None:
    print(f"seal: {seal_rate(200_000):,.0f} records/s (~440-byte records)")
    with tempfile.TemporaryDirectory() as folder:
        for url in urls or [f"sqlite:///{Path(folder) / 'bench.db'}"]:
            for batch in batch_sizes:
                events = min(events_per_run, batch * 2_000)
                rate = bench_recorder(url, events, batch)
                print(f"recorder {url.split('://')[0]} batch {batch:>5}: {rate:>9,.0f} events/s")
            # LedgerStore.append needs an empty journal: a fresh SQLite file or schema.
            append_url = url if urls else f"sqlite:///{Path(folder) / 'append.db'}"
            rate = bench_store_append(append_url, events_per_run, 1_000)
            print(f"LedgerStore.append {url.split('://')[0]} batch 1000: {rate:,.0f} events/s")


if __name__ == "__main__":
    main(sys.argv[1:])
