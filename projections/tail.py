"""The accounts' history of the journal's latest events, kept in memory by an `as_of` reader.

The history stored with the views (projections/history.py) answers a client's or the
house's read at any seq from its start up to the views' position. The events decided since
the last `ledger report` lie past it, and it leaves the other platform accounts out. A
reader (an API `as_of` worker) answers those from a `HistoryTail`: the history, in a
scratch in-memory database, of a reader's book followed from a start position. The book
at the start is the nearest snapshot at or before it and the journal up to it
(`snapshots.book_at`); every account's state (the platform's included) and every mark
there are written first (`HistoryRecorder.record_whole`), then what each event changes.
`history.book_at` reads it as it reads the stored history, and the answers are the
replay's, byte for byte.

A tail begins where the stored views stand, or `tail_events_max` events before the
journal's end when they stand further behind or there are none (`start_for`), and holds at
most `tail_events_max` events past its start.
"""

from __future__ import annotations

from ledger import snapshots
from ledger.book import Book
from ledger.invariants import require
from ledger.limits import journal_read_batch_events_max
from ledger.store import LedgerStore
from projections import history
from projections.database import DEFAULT_PROJECTION, Position, ViewDatabase
from projections.history import HistoryRecorder, RecordingBook

# Events a reader's tail holds past its start (about 3.6 history rows an event with the
# platform's accounts, in memory); a read elsewhere replays from the nearest snapshot, at
# most 10,000 events.
tail_events_max = 100_000


def start_for(views_seq: int | None, last_seq: int) -> int:
    """Where a tail begins on a journal ending at `last_seq`: where the stored views stand
    (`views_seq`; None without views keeping a history), or `tail_events_max` events before
    the journal's end when they stand further behind; never before seq 1."""
    return max(views_seq or 0, last_seq - tail_events_max, 1)


def reachable(start: int, seq: int) -> bool:
    """Whether a tail from `start` holds `seq` (followed or not yet)."""
    return start <= seq <= start + tail_events_max


def furthest(start: int, last_seq: int) -> int:
    """How far a tail from `start` follows a journal ending at `last_seq`."""
    return min(last_seq, start + tail_events_max)


class HistoryTail:
    """The history of the journal from `start` on, every account's, in memory."""

    def __init__(self, book: RecordingBook, start: int) -> None:
        self.book = book
        self.start = start
        self.recorder = HistoryRecorder(book)
        self.database = ViewDatabase.in_memory(keeps_history=True)
        self._recorded_at = ""  # of the last event followed

    @classmethod
    def begin(cls, store: LedgerStore, start: int) -> HistoryTail | None:
        """A tail from journal seq `start` (>= 1, at most the journal's end); None when
        the nearest snapshot of this code lies more than `tail_events_max` events before
        it (after an upgrade, until the writer takes one): the book would be a replay of
        more events than the tail holds, at a worker's start."""
        require(1 <= start <= store.last_seq(), "a tail begins within the journal")
        found = store.snapshot_at_or_before(snapshots.CODE_DIGEST, start)
        if start - (0 if found is None else found[0]) > tail_events_max:
            return None
        reader = snapshots.book_at(store, start)
        tail = cls(RecordingBook.adopting(reader, records_platform=True), start)
        tail.recorder.record_whole()
        tail._commit(begins=True)
        return tail

    @property
    def last_seq(self) -> int:
        """Where the tail has followed the journal to."""
        return self.book.last_seq

    def reaches(self, seq: int) -> bool:
        return reachable(self.start, seq)

    def follow(self, store: LedgerStore, seq: int) -> None:
        """When `seq` (which the tail `reaches`) is past the tail, follow the journal up to
        its end, within the bound: the next reads find their seq followed already."""
        book, recorder = self.book, self.recorder
        if seq > book.last_seq:
            end = furthest(self.start, store.last_seq())
            for event in snapshots.events_after(store, book, book.last_seq, end):
                book.apply(event)
                recorder.record(event)
                # Written a page at a time: the rows noted wait in lists until then.
                if event.seq % journal_read_batch_events_max == 0 or event.seq == end:
                    self._recorded_at = event.recorded_at
                    self._commit(begins=False)
        require(history.covers(self.database, seq), "a tail misses seq %s", seq)

    def _commit(self, *, begins: bool) -> None:
        """The history rows noted since the last commit, and the tail's new position."""
        starts = [(DEFAULT_PROJECTION, self.start)] if begins else []
        after = Position(self.book.last_seq, self.book.last_hash, self._recorded_at)
        self.database.commit_batch(self.recorder.writes(*starts), self.database.position(), after)

    def book_at(self, store: LedgerStore, account_id: str, seq: int) -> Book:
        """`history.book_at` right after `seq`, which the tail `reaches`, followed first."""
        self.follow(store, seq)
        return history.book_at(self.database, account_id, seq)

    def close(self) -> None:
        self.database.close()
