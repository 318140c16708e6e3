"""The handoff from the ingest to the journal relay inside one `ledger run` process."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Sequence

from ledger.journal import JournalEntry

relay_recent_entries_max = 20_000  # journal entries kept in memory for the relay
relay_read_entries_max = 2_000  # what one relay read hands over at most


class RecentJournal:
    """The journal entries this process recorded last, so the relay publishes them without
    reading them back from the store. Only entries the store has committed are added, and
    only a run that continues right after the relay's position is served: anything else
    (a restart, a relay behind by more than the bound) is read from the store."""

    def __init__(self) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=relay_recent_entries_max)
        self._lock = threading.Lock()  # added on the event loop, read in a worker thread

    def add(self, entries: Sequence[JournalEntry]) -> None:
        with self._lock:
            if self._entries and entries and entries[0].seq != self._entries[-1].seq + 1:
                self._entries.clear()
            self._entries.extend(entries)

    def after(self, seq: int) -> list[JournalEntry] | None:
        with self._lock:
            if not self._entries or not self._entries[0].seq <= seq + 1 <= self._entries[-1].seq:
                return None
            start = seq + 1 - self._entries[0].seq
            return list(itertools.islice(self._entries, start, start + relay_read_entries_max))
