"""`ledger ingest`'s pipeline without its decisions: the floor a faster decision path meets.

    .venv/bin/python -m tests.benchmarks.floor_bench [RECORDS]

Takes the journal `ledger ingest` decided from an inbox and times, on the same inbox and
that journal, every step of the ingest but deciding: each inbox record decoded against the
contract and digested (`decode_digested`), each journal event sealed onto the
hash chain from its Struct (`seal_event`), and the sealed records appended to a fresh SQLite
store in batches of 1,000 with their inputs seen (`LedgerStore.append`). Its rate, as a share
of the raw SQLite recorder's in the same run, bounds what any decision code could bring
`ledger ingest` to with these steps as they are (docs/performance.md). Prints figures;
asserts nothing about time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from eventsourcing.persistence import Tracking

from ledger import journal_events as je
from ledger.inbox import decode_digested
from ledger.journal import GENESIS_HASH, JournalEntry
from ledger.limits import journal_read_batch_events_max
from ledger.policy import load_policy
from ledger.rejections import Refusal
from ledger.store import LedgerStore
from tests.benchmarks.ingest_bench import ingest_rate, write_inbox
from tests.benchmarks.store_bench import bench_recorder

append_batch_events = 1_000  # as the raw recorder's batches
default_records = 100_000
floor_row_name = "`ledger ingest` without deciding: decode, digest, seal, append"


@dataclass(frozen=True)
class Floor:
    events: int
    events_per_s: float  # float-ok: a benchmark rate, never money
    decode_us_per_record: float  # float-ok: a benchmark figure
    seal_us_per_event: float  # float-ok: a benchmark figure
    append_us_per_event: float  # float-ok: a benchmark figure


def decision_free_rate(inbox: Path, decided_store: str, workdir: Path) -> Floor:
    """The floor of `ledger ingest` of `inbox`, whose journal is in `decided_store`."""
    lines = inbox.read_bytes().splitlines()
    events = [_unsealed(record) for record in _journal_records(decided_store)]
    policy = load_policy(None)
    with LedgerStore.open(f"sqlite:///{workdir / 'floor.db'}") as store:
        began = time.perf_counter()
        for line in lines:
            try:
                decode_digested(line, policy)
            except Refusal:
                continue
        decoded = time.perf_counter()
        sealed = _sealed(events)
        appended_from = time.perf_counter()
        for first in range(0, len(sealed), append_batch_events):
            batch = sealed[first : first + append_batch_events]
            store.append(batch, [], Tracking("floor", first + 1))
        ended = time.perf_counter()
    return Floor(
        events=len(events),
        events_per_s=len(events) / (ended - began),
        decode_us_per_record=(decoded - began) / len(lines) * 1e6,
        seal_us_per_event=(appended_from - decoded) / len(events) * 1e6,
        append_us_per_event=(ended - appended_from) / len(events) * 1e6,
    )


def _journal_records(url: str) -> list[bytes]:
    records: list[bytes] = []
    with LedgerStore.open(url, read_only=True) as store:
        while page := store.read_journal_records(len(records), journal_read_batch_events_max):
            records.extend(page)
    return records


def _unsealed(record: bytes) -> je.JournalEventType:
    """The event as a decision hands it to the desk: its seq and hashes not yet set."""
    event = je.journal_decoder.decode(record)
    return msgspec.structs.replace(event, seq=0, prev_hash="", hash="")


def _sealed(events: list[je.JournalEventType]) -> list[JournalEntry]:
    entries, prev_hash = [], GENESIS_HASH
    for seq, event in enumerate(events, start=1):
        sealed = je.seal_event(event, seq, prev_hash)
        prev_hash = sealed.event.hash
        entries.append(JournalEntry(seq, str(type(event).__struct_config__.tag), sealed.record))
    return entries


def main(records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-floor-bench-") as scratch:
        workdir = Path(scratch)
        inbox = workdir / "inbox.jsonl"
        records = write_inbox(inbox, records)
        ingest, _, events = ingest_rate(inbox, workdir, records)
        floor = decision_free_rate(inbox, f"sqlite:///{workdir / 'ingest.db'}", workdir)
        raw = bench_recorder(f"sqlite:///{workdir / 'recorder.db'}", events, append_batch_events)
    print(f"| figure ({records:,} inbox records, {events:,} journal events) | value |")
    print("| --- | --- |")
    print(f"| SQLite recorder alone, batches of {append_batch_events:,} | {raw:,.0f} events/s |")
    per_s = ingest * events / records
    print(f"| `ledger ingest` | {per_s:,.0f} events/s ({per_s / raw:.3f} of raw) |")
    print(
        f"| {floor_row_name} | {floor.events_per_s:,.0f} events/s "
        f"({floor.events_per_s / raw:.3f} of raw) |"
    )
    print(f"| of which: decode and digest | {floor.decode_us_per_record:.1f} us per record |")
    print(f"| of which: seal | {floor.seal_us_per_event:.1f} us per event |")
    print(f"| of which: append | {floor.append_us_per_event:.1f} us per event |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else default_records)
