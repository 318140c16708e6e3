"""`ledger ingest` of a large simulated inbox, beside what decoding and storage alone allow.

Prints figures; asserts nothing about time. Run: `python -m tests.benchmarks.ingest_bench [N]`.
Figures: records/s and peak RSS of `ledger ingest` (a child process, SQLite), the rate at
which msgspec merely decodes the same lines, the rate at which the store's recorder alone
accepts as many events in batches of 1,000, and the ratios between them.
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from app.simulation import simulate
from ledger.inbox import decode_inbox
from ledger.policy import load_policy
from ledger.rejections import Refusal
from tests.benchmarks.store_bench import bench_recorder

default_records = 1_000_000
recorder_batch_events = 1_000


def write_inbox(path: Path, records: int) -> int:
    """A seeded simulated inbox of about `records` lines (3,000 accounts over 10 days)."""
    written = 0
    with path.open("wb") as out:
        for record in itertools.islice(simulate(2026, 3_000, 10), records):
            out.write(record + b"\n")
            written += 1
    return written


def decode_rates(path: Path) -> tuple[float, float]:
    """(msgspec JSON decode, full inbox contract decode) in records/s."""
    lines = path.read_bytes().splitlines()
    decoder = msgspec.json.Decoder()
    started = time.perf_counter()
    for line in lines:
        try:
            decoder.decode(line)
        except msgspec.DecodeError:
            continue
    raw = len(lines) / (time.perf_counter() - started)
    policy = load_policy(None)
    started = time.perf_counter()
    for line in lines:
        try:
            decode_inbox(line, policy)
        except Refusal:
            continue
    contract = len(lines) / (time.perf_counter() - started)
    return raw, contract


def ingest_rate(path: Path, workdir: Path, records: int) -> tuple[float, float, int]:
    """(records/s, peak RSS in MiB, journal events) of `ledger ingest` in a child process."""
    store = f"sqlite:///{workdir / 'ingest.db'}"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app", "--store", store, "ingest", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    events = int(done.stderr.rsplit("journal seq ", 1)[1].split()[0])
    return records / elapsed, peak_mib, events


def main(records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-ingest-bench-") as scratch:
        workdir = Path(scratch)
        inbox = workdir / "inbox.jsonl"
        records = write_inbox(inbox, records)
        raw_decode, contract_decode = decode_rates(inbox)
        ingest, peak_mib, events = ingest_rate(inbox, workdir, records)
        recorder = bench_recorder(
            f"sqlite:///{workdir / 'recorder.db'}", events, recorder_batch_events
        )
    limit = min(raw_decode, recorder * records / events)
    print(f"| figure ({records:,} inbox records, {events:,} journal events) | value |")
    print("| --- | --- |")
    print(f"| msgspec JSON decode | {raw_decode:,.0f} records/s |")
    print(f"| inbox contract decode (decode_inbox) | {contract_decode:,.0f} records/s |")
    print(
        f"| SQLite recorder alone, batches of {recorder_batch_events} | {recorder:,.0f} events/s |"
    )
    print(f"| `ledger ingest` (SQLite) | {ingest:,.0f} records/s |")
    print(f"| `ledger ingest` peak RSS | {peak_mib:,.0f} MiB |")
    print(f"| ingest / msgspec decode | {ingest / raw_decode:.3f} |")
    print(
        f"| ingest / recorder (per inbox record) | {ingest / (recorder * records / events):.3f} |"
    )
    print(f"| ingest / lower of the two | {ingest / limit:.3f} |")


if __name__ == "__main__":
    main(
        int(sys.argv[1])
        if len(sys.argv) > 1
        else int(os.environ.get("BENCH_RECORDS", default_records))
    )
