"""`LedgerApplication.process` alone, in process: no Kafka, no relays, no interpreter start.

    .venv/bin/python -m tests.benchmarks.process_bench RECORDS [STORE_URL ...]

Decides `hand_written_stream(42, 500, RECORDS)` (the stream of `run_bench`) on an empty
store, in batches of `inbox_batch_records_max` with their inbox position, as `ledger run`
does, and prints the records per second of wall time, the process's CPU, the time spent in
`LedgerStore.append` (wall and the thread's CPU), and the SHA-256 of the journal and of the
rejects recorded, which a change to the write path must leave as they were. Without a URL
it measures a temporary SQLite file; a PostgreSQL URL needs an empty schema
(`?schema=<new name>`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.application import InboxItem, LedgerApplication
from ledger.limits import inbox_batch_records_max
from ledger.policy import load_policy
from ledger.store import LedgerStore, Tracking
from tests.benchmarks.run_bench import bench_stream_accounts, bench_stream_seed
from tests.integration.test_pipeline_support import hand_written_stream

INBOX = "bench.inbox"


class _TimedStore(LedgerStore):
    """A `LedgerStore` that adds up the wall and CPU time of its appends."""

    append_wall_s = 0.0  # float-ok: seconds
    append_cpu_s = 0.0  # float-ok: seconds

    def append(self, *args: Any, **kwargs: Any) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            super().append(*args, **kwargs)
        finally:
            self.append_wall_s += time.perf_counter() - wall
            self.append_cpu_s += time.thread_time() - cpu


@dataclass(frozen=True)
class ProcessRate:
    records_per_s: float  # float-ok: a benchmark rate
    cpu_s: float  # float-ok: seconds
    append_wall_s: float  # float-ok: seconds
    append_cpu_s: float  # float-ok: seconds
    journal_events: int
    rejects: int
    journal_sha256: str
    rejects_sha256: str


def process_rate(url: str, records: list[bytes]) -> ProcessRate:
    """Decide `records` through `LedgerApplication.process` on the empty store at `url`."""
    items = [InboxItem(value, None, INBOX, 0, offset) for offset, value in enumerate(records)]
    with _TimedStore.open(url) as store:
        application = LedgerApplication(store, load_policy())
        wall, cpu = time.perf_counter(), time.process_time()
        for first in range(0, len(items), inbox_batch_records_max):
            batch = items[first : first + inbox_batch_records_max]
            application.process(batch, Tracking(f"{INBOX}:0", first + len(batch) - 1))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        journal, rejects = hashlib.sha256(), hashlib.sha256()
        for entry in store.iter_journal():
            journal.update(entry.record)
        read = 0
        while page := store.read_rejects(read):
            for record in page:
                rejects.update(record)
            read += len(page)
        return ProcessRate(
            records_per_s=len(records) / wall,
            cpu_s=cpu,
            append_wall_s=store.append_wall_s,
            append_cpu_s=store.append_cpu_s,
            journal_events=store.last_seq(),
            rejects=read,
            journal_sha256=journal.hexdigest(),
            rejects_sha256=rejects.hexdigest(),
        )


def main(count: int, urls: list[str]) -> None:
    records = hand_written_stream(bench_stream_seed, bench_stream_accounts, count)[:count]
    with tempfile.TemporaryDirectory() as folder:
        for url in urls or [f"sqlite:///{Path(folder) / 'process.db'}"]:
            rate = process_rate(url, records)
            print(
                f"{url.split(':')[0]}: {count:,} records, {rate.records_per_s:,.0f} records/s, "
                f"CPU {rate.cpu_s:.2f} s, append {rate.append_wall_s:.2f} s wall "
                f"{rate.append_cpu_s:.2f} s CPU; {rate.journal_events:,} journal events "
                f"sha256 {rate.journal_sha256[:16]}, {rate.rejects:,} rejects sha256 "
                f"{rate.rejects_sha256[:16]}; load {os.getloadavg()[0]:.1f}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
