"""Python's cyclic garbage collector paused for one bounded batch of work.

Deciding a batch (`LedgerApplication.process`) and projecting one (`ProjectionRunner`)
allocate many small containers (figures, events, postings, rows) that reference counting
frees; the collector finds no cycle among them, yet walked every young object each 700
allocations and the whole heap (the book, the views' state) on its full passes: about a
twentieth of `ledger ingest`'s time and of a replay into every view (docs/performance.md).
Paused, it runs once per batch instead: what a batch leaves waits at most that long.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_collector_paused() -> Iterator[None]:
    """The collector off for the `with` block, on again after it (left off when it was)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
