"""`ledger audit explain` of the decisions that record no risk figures (a funding, a
repayment, a request refused before any figure was computed): each is checked against the
account as the journal booked it, so a journal altered under them says inconsistent.
Figures worked out by hand."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from app.cli import main
from ledger import journal_events as je
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import Book, Position
from ledger.policy import load_policy
from projections.explain import Explanation, FillDeficit, explain, explain_event
from tests.ledger_scenario import Scenario
from tests.unit.test_auto_deleveraging import _crash
from tests.unit.test_liquidation_fills import _liquidated_long, _perp

POLICY = load_policy(None)


def _explained(scenario: Scenario, seq: int) -> Explanation:
    (found,) = explain(scenario.store, str(seq), AdoptedPolicies.of(POLICY))
    return found


def _alter_journal(path: Path, seq: int, old: str, new: str) -> None:
    """The store's record at `seq` rewritten outside the ledger: `old` replaced by `new`."""
    with sqlite3.connect(path) as connection:
        changed = connection.execute(
            "UPDATE stored_events SET state = replace(state, ?, ?) "
            "WHERE originator_version = ? AND topic != 'policy_document'",
            (old.encode(), new.encode(), seq),
        ).rowcount
    assert changed == 1


def _seq_of(scenario: Scenario, type_: str) -> int:
    (event,) = scenario.events(type_)
    seq = event["seq"]
    assert isinstance(seq, int)
    return seq


def _funding(url: str = "sqlite:///:memory:") -> Scenario:
    """C1 long 0.1 BTC-PERP at 60,000 (the house short 0.1 against it); funding at 0.0001 on
    the mark of 60,000: C1 pays 0.1 x 60,000 x 0.0001 = 0.60, the house receives 0.60."""
    s = Scenario(url)
    s.perp_long()
    s.at(8)
    s.mark("BTC-PERP", "60000")
    s.send("funding_rate", market="BTC-PERP", rate="0.0001", funding_time="2026-11-24T08:00:00Z")
    return s


def test_a_funding_is_checked_against_every_position_the_journal_holds_in_its_market() -> None:
    s = _funding()
    seq = _seq_of(s, "funding_settled")
    explanation = _explained(s, seq)
    assert explanation.consistent, explanation.differences
    assert "  C1 pays: recorded 0.60 = recomputed ✓" in explanation.lines
    assert "  platform:house pays: recorded -0.60 = recomputed ✓" in explanation.lines
    assert "  mark BTC-PERP: recorded 60000 = journal ✓" in explanation.lines
    assert "  C1's BTC-PERP position paid on: recorded 0.1 = journal ✓" in explanation.lines
    assert "  rate within the bound: recorded True = recomputed ✓" in explanation.lines

    # A book where C1 held 0.2 and the market's mark was another.
    book = Book()
    for entry in s.store.iter_journal():
        event = je.decode_journal_record(entry.record)
        if event.seq == seq:
            funding = event
            break
        book.apply(event)
    position = book.accounts["C1"].positions["BTC-PERP"]
    book.accounts["C1"].positions["BTC-PERP"] = Position(
        size=Decimal("0.2"), entry_price=position.entry_price
    )
    book.marks["BTC-PERP"] += 1
    assert isinstance(funding, je.FundingSettled)
    differences = explain_event(funding, POLICY, book_before=book).differences
    assert differences == [
        "mark BTC-PERP: recorded 60000, journal 60001",
        "C1's BTC-PERP position paid on: recorded 0.1, journal 0.2",
    ]


def test_a_funding_that_left_an_open_position_unpaid_is_inconsistent(tmp_path: Path) -> None:
    """The house's short removed from the funding record in the store: the payments still
    recompute from what is recorded, but the journal holds a position nobody paid on."""
    path = tmp_path / "ledger.db"
    s = _funding(f"sqlite:///{path}")
    seq = _seq_of(s, "funding_settled")
    house = ',{"account_id":"platform:house","amount":"-0.60","size":"-0.1"}'
    _alter_journal(path, seq, house, "")
    _alter_journal(path, seq, '"residue":"0.00"', '"residue":"0.60"')
    assert main(["--store", f"sqlite:///{path}", "audit", "explain", str(seq)]) == 1
    explanation = _explained(s, seq)
    assert explanation.differences == [
        "platform:house's BTC-PERP position paid on: recorded null, journal -0.1"
    ]


def test_a_withdrawal_refused_for_the_balance_is_checked_against_the_balance_booked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """C1 deposited 100 USD and asked for 150: refused, 100 < 150. The deposit altered to
    200 in the store: the refusal is no longer what the journal says."""
    path = tmp_path / "ledger.db"
    s = Scenario(f"sqlite:///{path}")
    s.open("C1")
    s.deposit("C1", "USD", "100")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="150")
    seq = _seq_of(s, "withdrawal_rejected")
    explanation = _explained(s, seq)
    assert (explanation.consistent, explanation.checks) == (True, 1)
    assert (
        "rule: a withdrawal needs the balance: C1 holds 100.00 USD in the journal before "
        f"seq {seq}, and asked for 150.00"
    ) in explanation.lines
    _alter_journal(path, _seq_of(s, "deposit_credited"), '"100.00"', '"200.00"')
    assert main(["--store", f"sqlite:///{path}", "audit", "explain", str(seq)]) == 1
    out = capsys.readouterr().out
    assert "  the balance below the amount asked: recorded True ≠ journal False ✗" in out


def test_requests_refused_for_an_open_call_are_checked_against_the_call_the_journal_had() -> None:
    """C1 holds 1 BTC at 60,000 and 10,000 USD with a credit limit of 15,000, and buys 0.5
    BTC at 60,000 (fee 30): 20,030 drawn on the loan, 5,030 past the limit, a call. A
    withdrawal and a loan draw asked while it is open are refused."""
    s = Scenario()
    s.spot_buy_beyond_cash("15000")
    (call,) = s.events("margin_call_issued")
    s.send("withdrawal_requested", account_id="C1", asset="BTC", amount="0.1")
    s.send("loan_draw_requested", account_id="C1", amount="1")
    refusals = s.events("withdrawal_rejected") + s.events("loan_draw_rejected")
    assert [r["reason_code"] for r in refusals] == ["margin_call_open"] * 2
    book = Book()
    events = [je.decode_journal_record(entry.record) for entry in s.store.iter_journal()]
    for event in events:
        if event.seq in {r["seq"] for r in refusals}:
            explanation = explain_event(event, POLICY, book_before=book)
            assert (explanation.consistent, explanation.checks) == (True, 2)
            assert (
                f"  the journal has call {call['call_id']} open, issued {call['recorded_at']} "
                f"for 5030.00 USD, deadline {call['deadline']}"
            ) in explanation.lines
            book.accounts["C1"].margin_call, kept = None, book.accounts["C1"].margin_call
            assert explain_event(event, POLICY, book_before=book).differences == [
                "a margin call open: recorded True, journal False"
            ]
            book.accounts["C1"].margin_call = kept
        book.apply(event)


def test_a_repayment_settles_the_interest_the_journal_accrued_first(tmp_path: Path) -> None:
    """C1 borrows 10,000 against 1 BTC at 60,000; the day closes: 10,000 x 0.08 / 365 =
    2.19 of interest. A repayment of 100 pays 2.19 of interest and 97.81 of principal. The
    accrual altered to 3.19 in the store: the split is not the journal's any more."""
    path = tmp_path / "ledger.db"
    s = Scenario(f"sqlite:///{path}")
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    s.at(24)
    s.send("day_closed", business_date="2026-11-24")
    s.send("loan_repayment", account_id="C1", amount="100")
    (repaid,) = s.events("loan_repaid")
    assert (repaid["interest_paid"], repaid["principal_paid"]) == ("2.19", "97.81")
    explanation = _explained(s, repaid["seq"])
    assert (explanation.consistent, explanation.checks) == (True, 3)
    assert (
        "loan before (journal): principal 10000.00, accrued interest 2.19; repaid 100.00"
    ) in explanation.lines
    _alter_journal(path, _seq_of(s, "interest_accrued"), '"amount":"2.19"', '"amount":"3.19"')
    assert _explained(s, repaid["seq"]).differences == [
        "interest paid: recorded 2.19, recomputed 3.19",
        "principal paid: recorded 97.81, recomputed 96.81",
    ]


def test_a_liquidation_at_a_limit_calls_deadline_is_explained_by_the_loan_above_its_limit() -> None:
    """C1 (credit limit 15,000) holds 1 BTC at 60,000 and 10,000 USD, and buys 0.5 BTC at
    60,000 with a 30 fee: 20,030 drawn on the loan, a credit-limit call. A day later the
    account is healthy on its equity (1.5 x 60,000 - 20,030 = 69,970 against a maintenance
    requirement of 0.60 x 90,000 = 54,000) but its loan is still above the smaller of its
    credit limit (15,000) and its lending value (1.5 x 60,000 x 0.30 = 27,000): not met,
    liquidated at the deadline. The explanation said the liquidation was inconsistent
    (it held every call to the equity's rule)."""
    s = Scenario()
    s.spot_buy_beyond_cash("15000")
    s.at(25)
    s.mark("BTC", "60000")
    (trigger,) = s.events("liquidation_triggered")
    assert trigger["trigger"] == "margin_call_deadline"
    assert trigger["inputs"]["figures"]["status"] == "healthy"
    explanation = _explained(s, trigger["seq"])
    assert explanation.consistent, explanation.differences
    assert (
        "rule: a limit call (credit_limit_exceeded) is met by a healthy account whose loan is "
        "within the smaller of its credit limit 15000.00 (journal) and its lending value "
        "27000.0000000000 (recorded holdings and marks): 15000.00"
    ) in explanation.lines
    assert "  healthy: yes; loan 20030.00 > 15000.00" in explanation.lines

    # A journal whose credit limit was 25,000 there: the call was met, not to be liquidated.
    book = Book()
    events = [je.decode_journal_record(entry.record) for entry in s.store.iter_journal()]
    for event in events[: trigger["seq"] - 1]:
        book.apply(event)
    book.accounts["C1"].credit_limit = Decimal(25000)
    liquidation = events[trigger["seq"] - 1]
    assert explain_event(liquidation, POLICY, book_before=book).differences == [
        "the call not met at its deadline: recorded True, recomputed False"
    ]


def test_an_auto_deleveragings_price_units_and_amount_recompute_from_the_journal() -> None:
    """The crash of test_auto_deleveraging: C2's long of 1 BTC-PERP closed at 45,000 leaves
    5,000 USD below zero and an empty fund, so B = 45,000 + 5,000 / 1 = 50,000. W3 gives up
    its 0.2 x 5,000 = 1,000, W2 its 0.5 x 5,000 = 2,500, and W1 the 0.3 left: the 1,500
    left. The explanation checked the ranking only, never the price nor the amounts."""
    s = _crash()
    (completed,) = s.events("liquidation_completed")
    explanations = explain(s.store, completed["liquidation_id"], AdoptedPolicies.of(POLICY))
    reductions = [e for e in explanations if e.type == "auto_deleveraged"]
    assert all(e.consistent for e in reductions), [e.differences for e in reductions]
    first, second, last = (e.lines for e in reductions)
    assert (
        "deficit left = C2's USD below zero (journal) = 5000.00; units left = the lot of "
        "BTC-PERP (journal) = 1"
    ) in first
    assert "bankruptcy price B = M + deficit / s = 45000 + 5000.00 / 1 = 50000.00000000" in first
    assert "units = min(|winner's size| 0.2, units left) = 0.2" in first
    assert "  absorbed: recorded 1000.00 = recomputed ✓" in first
    assert "  absorbed: recorded 2500.00 = recomputed ✓" in second
    assert "units = min(|winner's size| 1, units left) = 0.3" in last
    assert (
        "absorbed = the deficit left (the last units) = 1500.00 (u * |B - M| = 0.3 * "
        "|50000.00000000 - 45000| = 1500.00)"
    ) in last

    # A journal that left C2 6,000 below zero: its bankruptcy price would be 51,000.
    events = [je.decode_journal_record(entry.record) for entry in s.store.iter_journal()]
    book = Book()
    for event in events:
        if isinstance(event, je.AutoDeleveraged):
            book.accounts["C2"].balances["USD"] -= 1000
            assert explain_event(event, POLICY, book_before=book).differences == [
                "bankruptcy price: recorded 50000.00000000, recomputed 51000.00000000"
            ]
            break
        book.apply(event)


def test_bad_debt_is_what_the_journal_left_the_liquidated_account_owing() -> None:
    """C1 borrows 15,000 against 1 BTC at 60,000 and withdraws the 15,000. BTC falls to
    10,000: the liquidation sells the bitcoin for 10,000, which repays 10,000 of the loan;
    the 5,000 left, with no USD to repay it, is the broker's bad debt. The explanation
    checked nothing ('records no figures')."""
    s = Scenario()
    s.btc_loan_withdrawn()
    s.mark("BTC", "10000")
    (debt,) = s.events("bad_debt_recorded")
    assert (debt["loan_written_off"], debt["cash_written_off"]) == ("5000.00", "0")
    explanation = _explained(s, debt["seq"])
    assert (explanation.consistent, explanation.checks) == (True, 2)
    assert (
        "after the liquidation (journal): C1 holds 0.00 USD and owes 5000.00 USD"
        in explanation.lines
    )
    assert "  loan written off: recorded 5000.00 = recomputed ✓" in explanation.lines

    # A journal that left C1 100 USD below zero: that cash is written off too.
    book = Book()
    for entry in s.store.iter_journal():
        event = je.decode_journal_record(entry.record)
        if isinstance(event, je.BadDebtRecorded):
            book.accounts["C1"].balances["USD"] = Decimal(-100)
            assert explain_event(event, POLICY, book_before=book).differences == [
                "cash written off: recorded 0, recomputed 100"
            ]
        book.apply(event)


def test_a_related_groups_loans_are_recomputed_from_the_members_loans_in_the_journal() -> None:
    """C1 and C2, related (group G1), hold 400 BTC each at 60,000 (lending 7,200,000 each).
    C1 borrows 6,000,000; C2 asks for 5,000,000: the group would owe 11,000,000, above one
    client's share of the shareholders' funds (0.20 x 50,000,000 = 10,000,000): refused.
    The explanation compared the recorded group total with the maximum, never with the
    members' loans the journal booked."""
    s = Scenario()
    s.mark("BTC", "60000")
    for account in ("C1", "C2"):
        s.open(account, credit="10000000")
        s.deposit(account, "BTC", "400")
        s.send("related_group_set", account_id=account, group_id="G1")
    s.send("loan_draw_requested", account_id="C1", amount="6000000")
    s.send("loan_draw_requested", account_id="C2", amount="5000000")
    seq = _seq_of(s, "loan_draw_rejected")
    explanation = _explained(s, seq)
    assert explanation.consistent, explanation.differences
    assert (
        f"group loans after = Σ the members' loans in the journal before seq {seq} + the amount"
        " = 6000000.00 + 5000000.00 = 11000000.00"
    ) in explanation.lines
    assert "  group members: recorded C1, C2 = journal ✓" in explanation.lines
    assert "  group loan max: recorded 10000000.00 = recomputed ✓" in explanation.lines

    # A journal where C1 owed 3,000,000: the group would have owed 8,000,000, within.
    events = [je.decode_journal_record(entry.record) for entry in s.store.iter_journal()]
    book = Book()
    for event in events[: seq - 1]:
        book.apply(event)
    book.accounts["C1"].loan_principal = Decimal("3000000.00")
    assert explain_event(events[seq - 1], POLICY, book_before=book).differences == [
        "firm loans after: recorded 11000000.00, journal 8000000.00",
        "group loans after: recorded 11000000.00, journal 8000000.00",
    ]


def test_a_limit_call_cleared_as_met_needs_the_loan_back_within_its_limit() -> None:
    """The credit-limit call of 5,030 (a 20,030 loan against a limit of 15,000): C1 deposits
    5,030 USD and repays 5,030, the loan is 15,000, within the smaller of the credit limit
    (15,000) and the lending value (1.5 x 60,000 x 0.30 = 27,000): met. The explanation
    held it to the equity's rule (healthy) alone."""
    s = Scenario()
    s.spot_buy_beyond_cash("15000")
    s.deposit("C1", "USD", "5030")
    s.send("loan_repayment", account_id="C1", amount="5030")
    (cleared,) = s.events("margin_call_cleared")
    assert cleared["outcome"] == "met"
    explanation = _explained(s, cleared["seq"])
    assert explanation.consistent, explanation.differences
    assert "  healthy: yes; loan 15000.00 ≤ 15000.00" in explanation.lines
    assert "  the limit call met: recorded True = recomputed ✓" in explanation.lines

    # A journal whose credit limit was 14,000: the loan of 15,000 would not meet the call.
    events = [je.decode_journal_record(entry.record) for entry in s.store.iter_journal()]
    book = Book()
    for event in events[: cleared["seq"] - 1]:
        book.apply(event)
    book.accounts["C1"].credit_limit = Decimal(14000)
    assert explain_event(events[cleared["seq"] - 1], POLICY, book_before=book).differences == [
        "the limit call met: recorded True, recomputed False"
    ]


def _events_until(s: Scenario, type_: str) -> tuple[Book, je.JournalEventType]:
    """The book right before the first event of `type_`, and that event."""
    book = Book()
    for entry in s.store.iter_journal():
        event = je.decode_journal_record(entry.record)
        if entry.type == type_:
            return book, event
        book.apply(event)
    raise AssertionError(type_)


def test_a_venue_fills_loss_deleveraged_or_written_off_recomputes_from_the_fill() -> None:
    """test_liquidation_fills' figures: C2's long of 1 taken over at 45,000, the fund holding
    only the 225 fee. (a) 0.5 executed at 40,000: a loss of 2,500, 225 drawn, 2,275 left,
    deleveraged against the 0.5 still to execute at B = 45,000 + 2,275 / 0.5 = 49,550.
    (b) all of it executed at 40,000 with a 10 fee: 5,010 lost, 225 drawn, 4,785 written
    off. Neither reduction's nor write-off's amounts were recomputed."""
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("W1")
    s.deposit("W1", "USD", "100000")
    _perp(s, "W1", "w1", "sell 1 60000")
    liquidation = _liquidated_long(s, fund=None)
    _perp(s, "C2", "v1", "sell 0.5 40000", liquidation_id=liquidation)
    explained = {e.type: e for e in explain(s.store, liquidation, AdoptedPolicies.of(POLICY))}
    lines = explained["auto_deleveraged"].lines
    assert explained["auto_deleveraged"].consistent
    assert (
        "bankruptcy price B = P_t + deficit / s = 45000 + 2275.00 / 0.5 = 49550.00000000" in lines
    )
    assert "  absorbed: recorded 2275.00 = recomputed ✓" in lines
    book, reduction = _events_until(s, "auto_deleveraged")
    fill = FillDeficit(Decimal("2000.00"), reduced_before=False)
    assert explain_event(reduction, POLICY, book_before=book, fill_deficit=fill).differences == [
        "bankruptcy price: recorded 49550.00000000, recomputed 49000.00000000",
        "absorbed: recorded 2275.00, recomputed 2000.00",
    ]

    s = Scenario()
    liquidation = _liquidated_long(s, fund=None)
    _perp(s, "C2", "v1", "sell 1 40000", fee="10", liquidation_id=liquidation)
    explained = {e.type: e for e in explain(s.store, liquidation, AdoptedPolicies.of(POLICY))}
    debt = explained["bad_debt_recorded"]
    assert (debt.consistent, debt.checks) == (True, 2)
    assert "  cash written off: recorded 4785.00 = recomputed ✓" in debt.lines
    book, written_off = _events_until(s, "bad_debt_recorded")
    fill = FillDeficit(Decimal("4000.00"), reduced_before=False)
    assert explain_event(written_off, POLICY, book_before=book, fill_deficit=fill).differences == [
        "cash written off: recorded 4785.00, recomputed 4000.00"
    ]
