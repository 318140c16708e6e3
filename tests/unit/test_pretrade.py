"""Pre-trade checks: the ledger's verdict on a proposed record, with hand-computed figures,
and proof that a check books nothing."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from app.simulation import simulate
from ledger import journal_events as je
from ledger import pretrade
from ledger.application import InboxItem
from ledger.desk import Desk
from ledger.inbox import decode_inbox
from ledger.policy import load_policy
from ledger.pretrade import (
    CHECKABLE_TYPES,
    CheckError,
    FiguresBefore,
    Outcome,
    PreTradeCheck,
    check,
)
from ledger.rejections import Refusal
from ledger.scratch import ValuingDesk
from tests.ledger_scenario import START, Scenario

POLICY = load_policy(None)
AT = START.isoformat()


def _record(type_: str, event_id: str = "proposed-1", **fields: Any) -> bytes:
    return json.dumps({"type": type_, "event_id": event_id, "occurred_at": AT, **fields}).encode()


def _check(s: Scenario, account: str, raw: bytes) -> PreTradeCheck:
    """The check, with proof it changed neither the store nor the ledger's book."""
    seq, rejects = s.store.last_seq(), s.store.reject_count()
    accounts = copy.deepcopy(s.app.book.accounts)
    result = check(s.app.book, POLICY, account, raw, store=s.store)
    assert (s.store.last_seq(), s.store.reject_count()) == (seq, rejects)
    assert s.app.book.accounts == accounts
    assert result.journal_seq == seq
    return result


def _figure(result: PreTradeCheck, when: str, name: str) -> Decimal:
    figures = result.before if when == "before" else result.after
    assert figures is not None
    return Decimal(figures[name])


def _one_btc_with_loan(s: Scenario) -> None:
    """1 BTC at 60,000 and a 15,000 loan withdrawn: E = 45,000, IR = 42,000."""
    s.btc_loan_withdrawn()


def _usd_trader(s: Scenario, investor_class: str = "professional") -> None:
    """10,000 USD, BTC-PERP marked at 60,000."""
    s.mark("BTC-PERP", "60000")
    s.open("T1", investor_class)
    s.deposit("T1", "USD", "10000")


def _perp(side: str, quantity: str, price: str, event_id: str = "proposed-1") -> bytes:
    return _record(
        "perp_trade",
        event_id,
        account_id="T1",
        trade_id=event_id,
        market="BTC-PERP",
        side=side,
        quantity=quantity,
        price=price,
        fee="0",
    )


def test_a_withdrawal_within_the_initial_requirement_is_accepted_with_figures_after() -> None:
    s = Scenario()
    _one_btc_with_loan(s)
    raw = _record("withdrawal_requested", account_id="C1", asset="BTC", amount="0.1")
    result = _check(s, "C1", raw)
    assert result.outcome is Outcome.ACCEPTED
    assert result.refusal is None
    assert result.would_record == ("withdrawal_approved",)
    # Before: E = 60,000 - 15,000 = 45,000; IR = 0.7 x 60,000 = 42,000; available 3,000.
    assert _figure(result, "before", "equity") == Decimal("45000")
    assert _figure(result, "before", "available") == Decimal("3000")
    # After: E = 54,000 - 15,000 = 39,000; IR = 0.7 x 54,000 = 37,800; available 1,200.
    assert _figure(result, "after", "equity") == Decimal("39000")
    assert _figure(result, "after", "initial_requirement") == Decimal("37800")
    assert _figure(result, "after", "available") == Decimal("1200")


def test_the_figures_before_are_kept_until_what_they_are_computed_from_changes() -> None:
    s = Scenario()
    _one_btc_with_loan(s)
    kept = FiguresBefore()
    raw = _record("withdrawal_requested", account_id="C1", asset="BTC", amount="0.1")
    first = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    again = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    assert again.before is first.before  # the same journal seq: computed once
    # Another account's deposit and a mark of what C1 does not hold: kept.
    s.open("C2")
    s.deposit("C2", "USD", "500")
    s.mark("ETH", "3000")
    other = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    assert other.journal_seq > first.journal_seq
    assert other.before is first.before
    # A deposit of 10,000 USD: E = 60,000 + 10,000 - 15,000 = 55,000, available 13,000.
    s.deposit("C1", "USD", "10000")
    moved = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    assert _figure(moved, "before", "equity") == Decimal("55000")
    assert _figure(moved, "before", "available") == Decimal("13000")
    # BTC marked at 50,000: E = 50,000 + 10,000 - 15,000 = 45,000.
    s.mark("BTC", "50000")
    marked = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    assert _figure(marked, "before", "equity") == Decimal("45000")
    # The same mark again: a new object of equal value, so computed again, the same figures.
    s.mark("BTC", "50000")
    remarked = check(s.app.book, POLICY, "C1", raw, kept, store=s.store)
    assert remarked.before is not marked.before
    assert remarked.before == marked.before


def test_a_withdrawal_below_the_initial_requirement_is_refused_with_the_ledgers_reason() -> None:
    s = Scenario()
    _one_btc_with_loan(s)
    raw = _record("withdrawal_requested", account_id="C1", asset="BTC", amount="0.2")
    result = _check(s, "C1", raw)
    # After: E = 48,000 - 15,000 = 33,000 < IR = 0.7 x 48,000 = 33,600.
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is not None
    assert result.refusal.reason_code == "below_initial_requirement"
    assert result.would_record == ("withdrawal_rejected",)
    assert result.after is None


def test_a_loan_draw_is_checked_against_the_lending_value() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    # Lending value: 1 x 60,000 x (1 - 0.70) = 18,000.
    within = _check(s, "C1", _record("loan_draw_requested", account_id="C1", amount="18000"))
    assert within.outcome is Outcome.ACCEPTED
    assert within.would_record == ("loan_drawn",)
    # Cash 18,000 + BTC 60,000 - loan 18,000: E stays 60,000; LTV = 18,000 / 78,000.
    assert _figure(within, "after", "loan") == Decimal("18000")
    assert _figure(within, "after", "equity") == Decimal("60000")
    assert _figure(within, "after", "ltv") == Decimal("0.23076923")
    beyond = _check(s, "C1", _record("loan_draw_requested", account_id="C1", amount="18000.01"))
    assert beyond.refusal is not None
    assert beyond.refusal.reason_code == "lending_value_exceeded"


def test_a_perp_order_within_available_margin_passes_with_its_liquidation_price() -> None:
    s = Scenario()
    _usd_trader(s)
    result = _check(s, "T1", _perp("buy", "1", "60000"))
    assert result.outcome is Outcome.ACCEPTED
    # The client's trade and the house's side of it.
    assert result.would_record == ("perp_trade_booked", "perp_trade_booked")
    # E = 10,000; IM = 0.10 x 60,000 = 6,000: available 4,000.
    assert _figure(result, "after", "available") == Decimal("4000")
    assert _figure(result, "after", "maintenance_requirement") == Decimal("3000")
    # E(P) = 10,000 + (P - 60,000) = 0.05 P  =>  P = 50,000 / 0.95 = 52,631.578947368...
    assert result.after is not None
    (position,) = result.after["positions"]
    assert position["liquidation_price"] == "52631.57894737"
    assert result.before is not None
    assert result.before["positions"] == []


def test_a_perp_order_beyond_available_margin_is_refused_below_the_initial_requirement() -> None:
    s = Scenario()
    _usd_trader(s)
    result = _check(s, "T1", _perp("buy", "2", "60000"))
    # IM = 0.10 x 120,000 = 12,000 > E = 10,000: available -2,000.
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is not None
    assert result.refusal.reason_code == "below_initial_requirement"
    assert "-2000" in result.refusal.detail
    assert _figure(result, "after", "available") == Decimal("-2000")


def test_an_order_the_ledger_would_liquidate_at_once_is_refused() -> None:
    """5 BTC-PERP at 60,000 on 10,000 USD: notional 300,000, liquidation requirement (USD
    has no haircut) = MM = 0.05 x 300,000 = 15,000 > equity 10,000: the review liquidates
    at once, closing the 5 at the mark for a fee of 0.005 x 300,000 = 1,500, which leaves
    8,500 available, no position. The order is refused all the same."""
    s = Scenario()
    _usd_trader(s)
    result = _check(s, "T1", _perp("buy", "5", "60000"))
    assert result.would_record[2:] == ("liquidation_triggered", "liquidation_completed")
    assert _figure(result, "after", "available") == Decimal("8500")
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is not None
    assert result.refusal.reason_code == "below_initial_requirement"
    assert "liquidate it at once" in result.refusal.detail


def test_a_trade_that_reduces_risk_passes_even_below_the_initial_requirement() -> None:
    s = Scenario()
    _usd_trader(s)
    s.send(
        "perp_trade",
        account_id="T1",
        trade_id="t1",
        market="BTC-PERP",
        side="buy",
        quantity="1",
        price="60000",
        fee="0",
    )
    s.mark("BTC-PERP", "54500")
    # E = 10,000 - 5,500 = 4,500; IM = 5,450: available -950 (MR = 2,725: healthy).
    result = _check(s, "T1", _perp("sell", "0.1", "54500"))
    assert _figure(result, "before", "available") == Decimal("-950")
    # Realised -550: cash 9,450, 0.9 long at 60,000 (uPnL -4,950): E = 4,500; IM = 4,905.
    assert _figure(result, "after", "available") == Decimal("-405")
    assert result.outcome is Outcome.ACCEPTED


def test_a_retail_account_may_not_open_perpetual_exposure() -> None:
    s = Scenario()
    _usd_trader(s, "retail")
    result = _check(s, "T1", _perp("buy", "0.1", "60000"))
    assert result.refusal is not None
    assert result.refusal.reason_code == "not_professional_investor"
    assert result.would_record == ()


def test_a_booked_event_id_is_a_duplicate_or_a_conflict() -> None:
    s = Scenario()
    _usd_trader(s)
    booked = _record("withdrawal_requested", "w1", account_id="T1", asset="USD", amount="10")
    s.send("withdrawal_requested", event_id="w1", account_id="T1", asset="USD", amount="10")
    assert _check(s, "T1", booked).outcome is Outcome.DUPLICATE
    other = _record("withdrawal_requested", "w1", account_id="T1", asset="USD", amount="11")
    conflict = _check(s, "T1", other)
    assert conflict.refusal is not None
    assert conflict.refusal.reason_code == "event_id_conflict"


def test_records_the_inbox_refuses_are_refused_with_the_inbox_reason() -> None:
    s = Scenario()
    _usd_trader(s)
    unknown = _check(s, "X9", _record("loan_draw_requested", account_id="X9", amount="1"))
    assert unknown.refusal is not None
    assert unknown.refusal.reason_code == "unknown_account"
    assert unknown.before is None
    malformed = _check(s, "T1", b'{"type": "perp_trade", ')
    assert malformed.refusal is not None
    assert malformed.refusal.reason_code == "malformed_json"
    assert malformed.record_type is None
    number = _record("loan_draw_requested", account_id="T1", amount="1").replace(b'"1"', b"1")
    numbered = _check(s, "T1", number)
    assert numbered.refusal is not None
    assert numbered.refusal.reason_code == "number_not_string"


def test_a_check_takes_only_orders_withdrawals_and_loan_draws_for_its_own_account() -> None:
    s = Scenario()
    _usd_trader(s)
    with pytest.raises(CheckError, match="not deposit"):
        check(
            s.app.book,
            POLICY,
            "T1",
            _record("deposit", account_id="T1", asset="USD", amount="1"),
            store=s.store,
        )
    with pytest.raises(CheckError, match="not T2"):
        check(s.app.book, POLICY, "T2", _perp("buy", "1", "60000"), store=s.store)


def _with_the_house_side(monkeypatch: pytest.MonkeyPatch, s: Scenario, raw: bytes) -> PreTradeCheck:
    """The check of `raw` on a desk that books the house's side of a trade, as the ledger."""
    with monkeypatch.context() as patched:
        patched.setattr(ValuingDesk, "leaves_counterparty_out", Desk.leaves_counterparty_out)
        return check(s.app.book, POLICY, "T1", raw, store=s.store)


def test_a_check_whose_trade_liquidates_books_the_house_side_it_may_deleverage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bought at 60,000 with the mark at 50,000: 5 x -10,000 = -50,000 against 10,000 of
    equity, liquidated at once, 40,000 short with an empty insurance fund. The house, short
    5 at 60,000 from the same trade, is the profitable opposite position that takes the
    rest over: auto-deleveraged. Left without its side, the check would answer bad debt."""
    s = Scenario()
    _usd_trader(s)
    s.mark("BTC-PERP", "50000")
    raw = _perp("buy", "5", "60000")
    result = _check(s, "T1", raw)
    assert result.would_record == (
        "perp_trade_booked",
        "perp_trade_booked",
        "liquidation_triggered",
        "liquidation_completed",
        "auto_deleveraged",
    )
    full = _with_the_house_side(monkeypatch, s, raw)
    assert result.document(POLICY.version) == full.document(POLICY.version)
    liquidation = {"liquidation_triggered", "liquidation_completed", "bad_debt_recorded"}
    with monkeypatch.context() as patched:  # not decided again: the house's side is missed
        patched.setattr(pretrade, "HOUSE_BLIND", pretrade.HOUSE_BLIND | liquidation)
        missed = check(s.app.book, POLICY, "T1", raw, store=s.store)
    assert missed.would_record[-1] == "bad_debt_recorded"


def test_a_check_answers_as_with_the_house_side_for_every_checkable_input_of_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each order, withdrawal and loan draw of a simulated day, checked just before the
    writer decides it, with the house's side of a trade left out and booked: the same
    answer, figures before and after included (the first with the figures before kept
    over the day, the second computing them afresh)."""
    left_out = 0
    original = ValuingDesk.leaves_counterparty_out

    def counted(desk: ValuingDesk, kind: type[je.JournalEventType]) -> bool:
        nonlocal left_out
        left = original(desk, kind)
        left_out += left
        return left

    monkeypatch.setattr(ValuingDesk, "leaves_counterparty_out", counted)
    s = Scenario()
    checked = 0
    kept = FiguresBefore()  # kept over the whole day, as the API keeps it
    for offset, value in enumerate(simulate(7, 8, 1)):
        try:
            record = decode_inbox(value, POLICY)
        except Refusal:
            record = None
        if isinstance(record, CHECKABLE_TYPES):
            account = record.account_id
            answer = check(s.app.book, POLICY, account, value, kept, store=s.store).document("")
            with monkeypatch.context() as patched:
                patched.setattr(
                    ValuingDesk, "leaves_counterparty_out", Desk.leaves_counterparty_out
                )
                full = check(s.app.book, POLICY, account, value, store=s.store)
            assert answer == full.document("")
            checked += 1
        s.app.process([InboxItem(value, None, "inbox", 0, offset)])
    assert checked > 100
    assert left_out > 30  # the day's perpetual orders
