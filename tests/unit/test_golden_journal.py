"""The journal of a fixed crash scenario, byte for byte: a review shows what changed.

Regenerate with `UPDATE_GOLDEN=1 pytest tests/unit/test_golden_journal.py` and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.application import InboxItem, LedgerApplication
from ledger.journal import verify_journal
from ledger.policy import load_policy
from ledger.store import LedgerStore

GOLDEN = Path(__file__).parent.parent / "golden"


def _journal_and_rejects() -> bytes:
    store = LedgerStore.open("sqlite:///:memory:")
    app = LedgerApplication(store, load_policy(None))
    lines = (GOLDEN / "crash_scenario.inbox.jsonl").read_bytes().splitlines()
    for offset, line in enumerate(lines):
        app.process([InboxItem(value=line, key=None, topic="golden", partition=0, offset=offset)])
    journal = [entry.record for entry in store.iter_journal()]
    assert verify_journal(journal).ok
    return b"\n".join([*journal, *store.read_rejects()]) + b"\n"


def test_the_crash_scenario_journal_is_unchanged() -> None:
    produced = _journal_and_rejects()
    golden = GOLDEN / "crash_scenario.journal.jsonl"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_bytes(produced)
    assert produced == golden.read_bytes()
