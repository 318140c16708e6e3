"""The same inbox gives the same journal, byte for byte, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.simulation import simulate
from ledger.application import InboxItem, LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore

pytestmark = pytest.mark.integration


def _ingest(url: str, items: list[InboxItem]) -> tuple[list[bytes], list[bytes]]:
    store = LedgerStore.open(url)
    try:
        app = LedgerApplication(store, load_policy(None))
        for start in range(0, len(items), 1_000):
            app.process(items[start : start + 1_000])
        journal = [entry.record for entry in store.iter_journal()]
        return journal, list(store.read_rejects(0, 5_000))
    finally:
        store.close()


def test_sqlite_and_postgresql_record_identical_journals(
    pg_schema_url: str, tmp_path: Path
) -> None:
    items = [
        InboxItem(value=record, key=None, topic="sim", partition=0, offset=offset)
        for offset, record in enumerate(simulate(5, 12, 2))
    ]
    on_sqlite = _ingest(f"sqlite:///{tmp_path / 'ledger.db'}", items)
    on_postgres = _ingest(pg_schema_url, items)
    assert len(on_sqlite[0]) > 1_000
    assert on_sqlite[1]
    assert on_sqlite == on_postgres


def test_a_restarted_ledger_on_postgresql_continues_the_same_chain(pg_schema_url: str) -> None:
    items = [
        InboxItem(value=record, key=None, topic="sim", partition=0, offset=offset)
        for offset, record in enumerate(simulate(6, 8, 1))
    ]
    half = len(items) // 2
    first, _ = _ingest(pg_schema_url, items[:half])
    resumed, _ = _ingest(pg_schema_url, items[half:])
    whole, _ = _ingest("sqlite:///:memory:", items)
    assert first
    assert resumed[: len(first)] == first
    assert resumed == whole
