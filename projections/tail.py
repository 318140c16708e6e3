"""The accounts' history past the stored views, kept in memory by an `as_of` reader.

The history stored with the views (projections/history.py) answers a client's read at any
seq from its start up to the views' position. The events decided since the last `ledger
report` lie past it. A reader (an API `as_of` worker) answers those from a `HistoryTail`:
a scratch in-memory copy of the stored views (their rows, position and saved projection
state) that keeps the history of what it catches up from the store's journal. The copy
begins with every client's state and every mark at the stored views' position
(`HistoryRecorder.record_whole`), so it covers each seq from there to where it has followed,
with the rows the stored history would hold there: `history.book_at` reads it the same way,
and the answers are the replay's, byte for byte.

A tail begins only where the stored views' saved state resumes (else its first catch-up
would replay from seq 1, slower than the snapshot and tail a read replays otherwise), and
holds at most `tail_events_max` events past its start.
"""

from __future__ import annotations

from ledger.book import Book
from ledger.invariants import require
from ledger.policy import Policy
from ledger.store import LedgerStore
from projections import history
from projections.runner import ProjectionRunner
from projections.views import stored_copy

# Events past the stored views a reader's tail holds (about 1.25 history rows an event, in
# memory); a read further on replays from the nearest snapshot, at most 10,000 events.
tail_events_max = 100_000


def reachable(start: int, seq: int) -> bool:
    """Whether a tail from the stored views at `start` holds `seq` (followed or not yet);
    at `start` itself the stored history answers."""
    return start < seq <= start + tail_events_max


def furthest(start: int, last_seq: int) -> int:
    """How far a tail from `start` follows a journal ending at `last_seq`."""
    return min(last_seq, start + tail_events_max)


class HistoryTail:
    """The history of the journal from the stored views' position on, in memory."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner
        self.start = runner.last_seq  # where the stored views stood when copied

    @classmethod
    def begin(cls, stored_url: str, policy: Policy) -> HistoryTail | None:
        """A tail from the views stored at `stored_url` as they stand, or None when their
        saved state does not resume there (views of older code, another policy)."""
        runner = ProjectionRunner(stored_copy(stored_url, keeps_history=True), policy)
        if runner.state.last_seq != runner.last_seq:
            runner.database.close()
            return None
        return cls(runner)

    def reaches(self, seq: int) -> bool:
        return reachable(self.start, seq)

    def follow(self, store: LedgerStore, seq: int) -> None:
        """When `seq` (which the tail `reaches`) is past the tail, follow the journal up to
        its end, within the bound: the next reads find their seq followed already."""
        if seq > self.runner.last_seq:
            self.runner.follow(store, until_seq=furthest(self.start, store.last_seq()))
        require(history.covers(self.runner.database, seq), "a tail misses seq %s", seq)

    def book_at(self, store: LedgerStore, account_id: str, seq: int) -> Book:
        """`history.book_at` right after `seq`, which the tail `reaches`, followed first."""
        self.follow(store, seq)
        return history.book_at(self.runner.database, account_id, seq)

    def close(self) -> None:
        self.runner.database.close()
