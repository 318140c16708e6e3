"""The relay takes freshly recorded journal entries from memory only when they continue
exactly from its position; otherwise it reads the store."""

from __future__ import annotations

from consumers.handoff import RecentJournal, relay_read_entries_max
from ledger.journal import JournalEntry


def _entries(first: int, last: int) -> list[JournalEntry]:
    return [JournalEntry(seq=s, type="t", record=b"{}") for s in range(first, last + 1)]


def test_entries_right_after_the_position_come_from_memory() -> None:
    recent = RecentJournal()
    recent.add(_entries(1, 5))
    recent.add(_entries(6, 8))
    assert [e.seq for e in recent.after(3) or []] == [4, 5, 6, 7, 8]
    assert [e.seq for e in recent.after(0) or []] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_position_outside_what_memory_holds_reads_the_store() -> None:
    recent = RecentJournal()
    assert recent.after(0) is None
    recent.add(_entries(10, 12))
    assert recent.after(8) is None  # seq 9 was never handed over: the store has it
    assert recent.after(12) is None  # nothing newer yet


def test_a_gap_forgets_what_came_before_it() -> None:
    recent = RecentJournal()
    recent.add(_entries(1, 3))
    recent.add(_entries(7, 8))  # another writer booked 4..6: never serve across the gap
    assert recent.after(2) is None
    assert [e.seq for e in recent.after(6) or []] == [7, 8]


def test_one_read_hands_over_a_bounded_batch() -> None:
    recent = RecentJournal()
    recent.add(_entries(1, relay_read_entries_max + 10))
    batch = recent.after(0) or []
    assert len(batch) == relay_read_entries_max
    assert batch[-1].seq == relay_read_entries_max
