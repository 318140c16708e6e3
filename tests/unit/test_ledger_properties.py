"""Invariants of the ledger over simulated streams: conservation, zero-sum funding, determinism."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.simulation import simulate, simulate_timed
from app.venue import Venue, decide_stream_with_venue
from ledger import decisions, margin
from ledger.application import InboxItem, LedgerApplication
from ledger.book import CUSTODY, LIQUIDATION, Book
from ledger.desk import Desk
from ledger.journal_events import decode_journal_record
from ledger.limits import inbox_batch_records_max
from ledger.policy import load_policy
from ledger.store import LedgerStore
from ledger.watchlist import Watchlist
from tests.ledger_scenario import balances_by_asset

POLICY = load_policy(None)


def _items(seed: int, accounts: int, days: int) -> list[InboxItem]:
    return [
        InboxItem(value=record, key=None, topic="sim", partition=0, offset=offset)
        for offset, record in enumerate(simulate(seed, accounts, days))
    ]


def _run(items: list[InboxItem], batch: int) -> LedgerApplication:
    app = LedgerApplication(LedgerStore.open("sqlite:///:memory:"), POLICY)
    for start in range(0, len(items), batch):
        app.process(items[start : start + batch])
    return app


def _hashes(app: LedgerApplication) -> list[str]:
    return [json.loads(entry.record)["hash"] for entry in app.store.iter_journal()]


@pytest.fixture(scope="module")
def crash_run() -> tuple[list[InboxItem], LedgerApplication]:
    items = _items(seed=11, accounts=40, days=3)
    return items, _run(items, batch=500)


def test_every_asset_sums_to_zero_over_all_ledger_accounts(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    _, app = crash_run
    totals = dict(balances_by_asset(app))
    assert set(totals) >= {"USD", "BTC", "ETH"}, "nothing to sum: the run booked no balance"
    for asset, total in totals.items():
        assert total == 0, asset


def test_no_client_balance_is_ever_negative_after_any_input(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    """USD included: a debit beyond a client's cash is drawn on its margin loan at once."""
    _, app = crash_run
    clients = list(app.book.clients())
    assert len(clients) == 40
    assert any(account.balances for account in clients), "no client holds anything"
    book, cause, inputs = Book(), "", 0
    for entry in app.store.iter_journal():
        event = decode_journal_record(entry.record)
        if event.causation_id != cause:  # the previous input's events are all applied
            _assert_no_negative_client_balance(book, cause)
            cause, inputs = event.causation_id, inputs + 1
        book.apply(event)
    _assert_no_negative_client_balance(book, cause)
    assert inputs > 1000, "too few inputs to say anything"
    financed = [e for e in app.store.iter_journal() if e.type == "debit_financed"]
    assert financed, "the crash financed no debit: the property was never tested"


def _assert_no_negative_client_balance(book: Book, cause: str) -> None:
    assert not book.overdrawn, cause
    for account in book.clients():
        for asset, balance in account.balances.items():
            assert balance >= 0, (cause, account.account_id, asset, balance)


def test_the_simulated_crash_exercises_calls_and_liquidations(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    _, app = crash_run
    types = {json.loads(e.record)["type"] for e in app.store.iter_journal()}
    assert {"margin_call_issued", "liquidation_triggered", "funding_settled"} <= types


def test_funding_sums_to_zero_with_the_residue(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    _, app = crash_run
    settlements = [
        json.loads(e.record) for e in app.store.iter_journal() if e.type == "funding_settled"
    ]
    assert settlements
    for settled in settlements:
        paid = sum((Decimal(p["amount"]) for p in settled["payments"]), Decimal(0))
        assert paid == Decimal(settled["residue"])


def test_replaying_the_journal_rebuilds_the_same_book(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    _, app = crash_run
    replayed = LedgerApplication(app.store, POLICY)
    assert _book_state(replayed.book) == _book_state(app.book)


def _book_state(book: Book) -> object:
    return (
        book.last_seq,
        book.last_hash,
        {
            a.account_id: (a.balances, a.loan, a.positions, a.margin_call)
            for a in book.accounts.values()
        },
        book.marks,
    )


def test_custody_mirrors_what_entered_minus_what_left(
    crash_run: tuple[list[InboxItem], LedgerApplication],
) -> None:
    _, app = crash_run
    journal = [json.loads(e.record) for e in app.store.iter_journal()]
    entered: dict[str, Decimal] = {}
    for event in journal:
        sign = {"deposit_credited": 1, "withdrawal_approved": -1}.get(event["type"])
        if sign is not None:
            entered[event["asset"]] = entered.get(event["asset"], Decimal(0)) + sign * Decimal(
                event["amount"]
            )
    assert {"USD", "BTC"} <= {a for a, v in entered.items() if v}, "nothing entered custody"
    assert any(e["type"] == "withdrawal_approved" for e in journal), "nothing left custody"
    custody = app.book.accounts[CUSTODY].balances
    assert {a: -b for a, b in custody.items() if b} == {a: v for a, v in entered.items() if v}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10_000), batch=st.sampled_from([1, 7, 250]))
def test_same_input_same_journal_whatever_the_batch_size(seed: int, batch: int) -> None:
    items = _items(seed=seed, accounts=6, days=1)
    assert _hashes(_run(items, batch)) == _hashes(_run(items, inbox_batch_records_max))


def test_price_bands_decide_exactly_as_revaluing_every_account_on_every_mark(
    crash_run: tuple[list[InboxItem], LedgerApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    items, banded = crash_run

    def everyone(self: Watchlist, instrument: str, price: Decimal) -> list[str]:
        del instrument, price
        return sorted(self.generation)

    monkeypatch.setattr(Watchlist, "crossed", everyone)
    monkeypatch.setattr(margin, "_cannot_fall_short", lambda _account: False)
    assert _hashes(_run(items, batch=500)) == _hashes(banded)


def test_skipping_reviews_after_a_usd_posting_decides_exactly_as_reviewing_every_account(
    crash_run: tuple[list[InboxItem], LedgerApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    items, skipping = crash_run
    skipped = 0

    def counted(desk: Desk, account_ids: Iterable[str]) -> list[str]:
        nonlocal skipped
        posted = list(account_ids)
        kept = margin.after_cash_moved(desk, posted)
        skipped += len(posted) - len(kept)
        return kept

    monkeypatch.setattr(decisions, "after_cash_moved", counted)
    assert _hashes(_run(items, batch=500)) == _hashes(skipping)
    assert skipped > 100, "the scenario skipped too few reviews to show anything"
    monkeypatch.setattr(decisions, "after_cash_moved", lambda _desk, ids: list(ids))
    assert _hashes(_run(items, batch=500)) == _hashes(skipping)


def test_with_the_venue_in_the_loop_every_liquidation_is_executed_and_assets_sum_to_zero() -> None:
    app = LedgerApplication(LedgerStore.open("sqlite:///:memory:"), POLICY)
    venue = Venue(11, POLICY)
    decide_stream_with_venue(app, simulate_timed(11, 40, 3), venue, io.BytesIO(), "sim")
    book = app.book
    assert book.lots(), "the crash liquidated nothing: the property was never tested"
    assert venue.fills >= len({lot.liquidation_id for lot in book.lots()})
    assert all(lot.remaining == 0 for lot in book.lots())
    liquidation_account = book.accounts[LIQUIDATION]
    assert liquidation_account.positions == {}
    assert all(
        balance == 0 for asset, balance in liquidation_account.balances.items() if asset != "USD"
    )
    for asset, total in balances_by_asset(app):
        assert total == 0, asset
    assert app.reject_count == len(
        [r for r in app.store.read_rejects(0, 5_000) if b'"venue' not in r]
    ), "a venue fill was refused"
    replayed = LedgerApplication(app.store, POLICY)
    assert _book_state(replayed.book) == _book_state(book)
