"""Peak RSS while replaying a store's journal, and how it grows with the events replayed.

Replays the journal of a store (the `make bench` store, or any: `python -m
tests.benchmarks.memory_bench sqlite:///PATH`) two ways, each in a fresh child process so
that one's memory is not the other's: into a reader's book from seq 1 (`Book.apply`, what
`ledger query` or `audit replay` does without a snapshot) and into every view (a scratch
in-memory view database, what `ledger report` does on its first run). RSS is read from
/proc every `sample_events` events; the figures are the peak, and the growth per million
events over the second half of the journal (after the book holds every account): flat
means about 0. A store of 10M events takes hours to build on a 2-core machine, so the 10M
figure is that growth carried forward from the measured end, and says so. Asserts nothing.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import msgspec

from ledger import snapshots
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import Book
from ledger.limits import journal_read_batch_events_max
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner

sample_events = 25_000  # RSS is read every this many events
large_events = 10_000_000  # the scale, which the growth is carried forward to
_PAGE_KIB = resource.getpagesize() // 1024
_MIB_KIB = 1024


class MemoryFigures(msgspec.Struct, frozen=True):
    events: int
    peak_rss_mib: float  # float-ok: memory, not money
    growth_mib_per_million: float  # float-ok: over the journal's second half
    at_large_mib: float  # float-ok: the end carried forward to `large_events`


def _rss_mib() -> float:  # float-ok: memory
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE_KIB / _MIB_KIB


def _peak_rss_mib() -> float:  # float-ok: memory
    """This address space's high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux
    keeps that across fork and exec, so a child started by a large `make bench` process
    reported the parent's peak as its own."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / _MIB_KIB


def _figures(samples: list[tuple[int, float]]) -> MemoryFigures:
    events, end_mib = samples[-1]
    half = [sample for sample in samples if sample[0] >= events // 2]
    if len(half) < 2:  # a journal shorter than two samples: its whole span
        half = samples
    (first_events, first_mib) = half[0]
    span = max(events - first_events, 1)
    growth = (end_mib - first_mib) / span * 1_000_000
    peak = _peak_rss_mib()
    carried = end_mib + growth * (large_events - events) / 1_000_000
    return MemoryFigures(events, peak, growth, carried)


def replay_book(store_url: str) -> MemoryFigures:
    """`Book.apply` of every journal event from seq 1 into a reader's book (as `ledger query`
    and the audit replay build theirs: no registers kept), RSS sampled on the way."""
    book, samples = Book(keeps_originals=False), [(0, _rss_mib())]
    with LedgerStore.open(store_url, read_only=True) as store:
        for event in snapshots.events_after(store, book, 0, store.last_seq()):
            book.apply(event)
            if event.seq % sample_events == 0:
                samples.append((event.seq, _rss_mib()))
        samples.append((book.last_seq, _rss_mib()))
    return _figures(samples)


def replay_views(store_url: str) -> MemoryFigures:
    """Every view built from seq 1 in a scratch in-memory database, RSS sampled on the way."""
    samples = [(0, _rss_mib())]
    with (
        LedgerStore.open(store_url, read_only=True) as store,
        ViewDatabase.open("sqlite:///:memory:") as database,
    ):
        runner = ProjectionRunner(database, AdoptedPolicies.of(load_policy(None)))
        last = store.last_seq()
        while runner.last_seq < last:
            until = min(runner.last_seq + sample_events, last)
            runner.follow(store, until_seq=until, batch_events=journal_read_batch_events_max)
            samples.append((runner.last_seq, _rss_mib()))
    return _figures(samples)


_REPLAYS = {"book": replay_book, "views": replay_views}


def measure(store_url: str, replay: str) -> MemoryFigures:
    """One replay in a child process (its own peak RSS)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.memory_bench", store_url, replay],
        capture_output=True,
        check=True,
    )
    return msgspec.json.decode(done.stdout.splitlines()[-1], type=MemoryFigures)


def memory_row(store_url: str) -> tuple[str, str, str]:
    """(measure, target, figure): the issue's peak-RSS row, from both replays."""
    parts = []
    for replay in _REPLAYS:
        got = measure(store_url, replay)
        parts.append(
            f"{replay}: peak {got.peak_rss_mib:,.0f} MiB at {got.events:,} events, "
            f"+{got.growth_mib_per_million:,.0f} MiB per 1M events over the second half, "
            f"so about {got.at_large_mib:,.0f} MiB at 10M"
        )
    return ("peak RSS replaying 10M events (carried forward)", "< 1 GB, flat", "; ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) == 3:  # the child: one replay, its figures as JSON on the last line
        print(msgspec.json.encode(_REPLAYS[sys.argv[2]](sys.argv[1])).decode())
    else:
        print(memory_row(sys.argv[1]))
