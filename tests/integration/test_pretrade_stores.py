"""A pre-trade check asks the store whether its event id was booked: on a SQLite file on the
store's own read connection (tests/unit/test_api_checks.py), on PostgreSQL through the
store adapter: the same verdicts for a record another connection booked since."""

from __future__ import annotations

import io

import pytest

from app.commands import ingest_stream
from app.simulation import simulate
from ledger import pretrade, reporting
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.unit.test_api_checks import withdrawal

POLICY = load_policy(None)


@pytest.mark.integration
def test_a_booked_event_id_is_a_duplicate_or_a_conflict_on_postgresql(
    pg_schema_url: str,
) -> None:
    with LedgerStore.open(pg_schema_url) as writer:
        inbox = io.BytesIO(b"\n".join(simulate(5, 6, 1)))
        ingest_stream(LedgerApplication(writer, POLICY), inbox, "test")
        before = reporting.book_as_of(writer, None)
        account_id = sorted(
            a.account_id for a in before.clients() if a.balance("USD") > 0 and a.margin_call is None
        )[0]
        booked = withdrawal(account_id, "0.01")
        with LedgerStore.open(pg_schema_url, read_only=True) as store:
            assert store.commit_marker() is None  # PostgreSQL: no read connection of its own
            first = pretrade.check(before, POLICY, account_id, booked, store=store)
            assert first.outcome == "accepted"
            ingest_stream(LedgerApplication(writer, POLICY), io.BytesIO(booked), "test")
            book = reporting.book_as_of(store, None)
            again = pretrade.check(book, POLICY, account_id, booked, store=store)
            assert (again.outcome, again.refusal) == ("duplicate", None)
            other = withdrawal(account_id, "0.02")
            conflict = pretrade.check(book, POLICY, account_id, other, store=store)
            assert conflict.refusal is not None
            assert conflict.refusal.reason_code == "event_id_conflict"
            earlier = pretrade.check(before, POLICY, account_id, booked, store=store)
            assert earlier.outcome == "accepted"
