"""The loan book, as a risk officer checks it: every client debit beyond its cash is a
margin loan (no client USD below zero), with figures worked out by hand."""

from __future__ import annotations

from decimal import Decimal

from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from projections.explain import explain
from projections.rows import stale_mark_rows
from tests.ledger_scenario import Scenario, balances_by_asset

POLICY = load_policy(None)


def _buy_half_a_bitcoin_beyond_cash(credit: str) -> Scenario:
    """C1 holds 1 BTC at 60,000 and 10,000 USD, then buys 0.5 BTC at 60,000 with a 30 fee.

    The buy takes 0.5 x 60,000 + 30 = 30,030 USD, 20,030 more than the cash: that
    shortfall is drawn on the margin loan. Lending value after: 1.5 x 60,000 x (1 - 0.70)
    = 27,000; equity 1.5 x 60,000 - 20,030 = 69,970 against a maintenance requirement of
    0.60 x 90,000 = 54,000: healthy."""
    s = Scenario()
    s.spot_buy_beyond_cash(credit)
    return s


def test_a_spot_buy_beyond_cash_within_the_credit_limit_is_a_loan_without_a_call() -> None:
    s = _buy_half_a_bitcoin_beyond_cash(credit="50000")
    (financed,) = s.events("debit_financed")
    assert (financed["amount"], financed["cause"]) == ("20030.00", "spot_trade_booked")
    assert all(
        e.consistent for e in explain(s.store, str(financed["seq"]), AdoptedPolicies.of(POLICY))
    )
    (trade,) = s.events("spot_trade_booked")
    assert financed["cause_seq"] == trade["seq"]
    assert financed["limits"]["loan_before"] == "0"
    assert financed["limits"]["loan_after"] == "20030.00"
    assert Decimal(financed["limits"]["lending_value"]) == Decimal(27000)
    assert "limits_broken" not in financed  # none broken: an empty list is not written
    account = s.app.book.accounts["C1"]
    assert account.balance("USD") == 0
    assert (account.loan_principal, s.app.book.total_loans) == (Decimal("20030.00"),) * 2
    assert s.events("margin_call_issued") == []
    # The shortfall came from the firm's lending account, so USD still sums to zero.
    assert dict(balances_by_asset(s.app))["USD"] == 0
    assert s.app.book.accounts["platform:lending"].balance("USD") == Decimal("-20030.00")


def test_a_spot_buy_beyond_the_credit_limit_is_booked_and_called_at_once() -> None:
    s = _buy_half_a_bitcoin_beyond_cash(credit="15000")
    (financed,) = s.events("debit_financed")
    assert financed["amount"] == "20030.00"
    assert financed["limits_broken"] == ["credit_limit_exceeded"]
    # Equity is healthy (69,970 >= 54,000); the call is on the loan: 20,030 - 15,000.
    (call,) = s.events("margin_call_issued")
    assert (call["trigger"], call["limit"], call["amount"]) == (
        "credit_limit_exceeded",
        "15000.00",
        "5030.00",
    )
    assert call["inputs"]["figures"]["status"] == "healthy"
    assert call["deadline"] == "2026-11-25T00:00:00Z"
    # Healthy but still above the limit: a deposit alone does not meet the call...
    s.deposit("C1", "USD", "5030")
    assert s.events("margin_call_cleared") == []
    # ...repaying the loan down to the limit does.
    s.send("loan_repayment", account_id="C1", amount="5030")
    (cleared,) = s.events("margin_call_cleared")
    assert cleared["outcome"] == "met"
    assert s.app.book.accounts["C1"].loan == Decimal("15000.00")


def test_a_limit_call_still_open_at_its_deadline_sells_collateral_down_to_the_limit() -> None:
    s = _buy_half_a_bitcoin_beyond_cash(credit="15000")
    s.at(24)
    s.mark("BTC", "60000")
    (triggered,) = s.events("liquidation_triggered")
    assert triggered["trigger"] == "margin_call_deadline"
    (completed,) = s.events("liquidation_completed")
    # The loan is 5,030 above the credit limit; each BTC sold repays 60,000 of it:
    # ceil((5,030 + 0.005) / 60,000 = 0.0838334166.., 8 places) = 0.08383342 BTC, proceeds 5,030.01.
    (step,) = completed["steps"]
    assert (step["kind"], step["quantity"], step["proceeds"], step["loan_repaid"]) == (
        "sell_collateral",
        "0.08383342",
        "5030.01",
        "5030.01",
    )
    assert s.app.book.accounts["C1"].loan == Decimal("14999.99")
    assert s.app.book.accounts["C1"].margin_call is None


def test_a_funding_payment_beyond_cash_is_financed_naming_the_funding() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.mark("BTC-PERP", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send(
        "perp_trade", account_id="C1", trade_id="p1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="12",
    )  # fmt: skip
    s.send("funding_rate", market="BTC-PERP", rate="0.0001", funding_time="2026-11-24T08:00:00Z")
    # The fee (12) then the funding (1 x 60,000 x 0.0001 = 6): each its own draw.
    causes = [(e["cause"], e["amount"]) for e in s.events("debit_financed")]
    assert causes == [("perp_trade_booked", "12.00"), ("funding_settled", "6.00")]
    account = s.app.book.accounts["C1"]
    assert (account.balance("USD"), account.loan) == (Decimal(0), Decimal("18.00"))


def _loan_of_10000() -> Scenario:
    """C1 holds 1 BTC at 60,000 and has drawn 10,000: a day's interest is
    10,000 x 0.08 / 365 = 2.19178... -> 2.19."""
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    return s


def test_a_monday_close_after_a_friday_close_accrues_three_days_of_interest() -> None:
    s = _loan_of_10000()
    s.send("day_closed", business_date="2026-11-27")  # Friday: the first close, one day
    s.send("day_closed", business_date="2026-11-30")  # Monday: Saturday, Sunday, Monday
    friday, monday = s.events("interest_accrued")
    assert (friday["amount"], friday["first_date"], "days" in friday) == (
        "2.19",
        "2026-11-27",
        False,  # one day: the default, not written
    )
    assert (monday["amount"], monday["days"], monday["first_date"]) == ("6.57", 3, "2026-11-28")
    # 2.19 + 3 x 2.19 = 8.76 of interest on the 10,000 principal.
    assert s.app.book.accounts["C1"].loan == Decimal("10008.76")


def test_each_day_of_a_weekend_accrues_on_the_principal_outstanding_that_day() -> None:
    """C1 and C2 each hold 3 BTC and drew 10,000 on Tuesday; Tuesday to Friday close one
    day each (2.19 a day: 8.76 accrued). On Saturday C1 repays 6,008.76 (the 8.76 of
    interest first, then 6,000: principal 4,000); on Monday evening C1 draws 20,000
    (principal 24,000) and C2 repays everything (principal 0). Monday's close accrues
    Saturday, Sunday and Monday, each on the principal at that day's end:

    C1: 4,000 x 0.08 / 365 = 0.8767.. -> 0.88 (Saturday), 0.88 (Sunday),
        24,000 x 0.08 / 365 = 5.2602.. -> 5.26 (Monday): 7.02
    C2: 2.19 (Saturday), 2.19 (Sunday), 0 (Monday): 4.38

    It charged the principal at Monday's close for all three days: C1 3 x 5.26 = 15.78
    (interest on 20,000 for two days before it was lent), C2 nothing (two days of a
    10,000 loan free)."""
    s = Scenario()
    s.mark("BTC", "60000")
    for client in ("C1", "C2"):
        s.open(client)
        s.deposit(client, "BTC", "3")
        s.send("loan_draw_requested", account_id=client, amount="10000")
    for day, hours in (("2026-11-24", 24), ("2026-11-25", 48), ("2026-11-26", 72)):
        s.at(hours)
        s.send("day_closed", business_date=day)
    s.at(96)
    s.send("day_closed", business_date="2026-11-27")  # Friday
    s.at(106)  # Saturday 10:00
    s.send("loan_repayment", account_id="C1", amount="6008.76")
    s.at(164)  # Monday 20:00
    s.mark("BTC", "60000")
    s.send("loan_draw_requested", account_id="C1", amount="20000")
    s.deposit("C2", "USD", "8.76")  # the interest, beyond the 10,000 drawn
    s.send("loan_repayment", account_id="C2", amount="10008.76")
    assert (s.events("loan_draw_rejected"), s.rejects()) == ([], [])
    s.at(168)  # Tuesday 00:00
    s.send("day_closed", business_date="2026-11-30")  # Monday
    monday = {e["account_id"]: e for e in s.events("interest_accrued")[-2:]}
    c1, c2 = monday["C1"], monday["C2"]
    assert (c1["amount"], c1["days"], c1["first_date"], c1["principal"]) == (
        "7.02",
        3,
        "2026-11-28",
        "24000.00",
    )
    assert c1["daily_principals"] == {
        "2026-11-28": "4000.00",
        "2026-11-29": "4000.00",
        "2026-11-30": "24000.00",
    }
    assert (c2["amount"], c2["principal"]) == ("4.38", "0.00")
    assert c2["daily_principals"] == {
        "2026-11-28": "10000.00",
        "2026-11-29": "10000.00",
        "2026-11-30": "0.00",
    }
    assert s.app.book.accounts["C1"].loan == Decimal("24007.02")
    assert s.app.book.accounts["C2"].loan == Decimal("4.38")
    for event in (c1, c2):
        (explained,) = explain(s.store, str(event["seq"]), AdoptedPolicies.of(POLICY))
        assert explained.consistent
    # Each day's principal is read off the journal's loan movements, not taken on trust.
    assert "  2026-11-30's principal: recorded 0.00 = journal ✓" in explained.lines


def test_a_day_closed_twice_or_out_of_order_is_refused_and_accrues_nothing() -> None:
    s = _loan_of_10000()
    s.send("day_closed", business_date="2026-11-27")
    again = s.send("day_closed", business_date="2026-11-27")
    earlier = s.send("day_closed", business_date="2026-11-26")
    assert again.refused_by_reason == {"day_already_closed": 1}
    assert earlier.refused_by_reason == {"day_already_closed": 1}
    assert len(s.events("day_closed")) == len(s.events("interest_accrued")) == 1
    assert s.app.book.accounts["C1"].loan == Decimal("10002.19")
    assert [r["reason_code"] for r in s.rejects()] == ["day_already_closed"] * 2


def test_a_liquidation_waits_for_a_fresh_mark_and_happens_on_it() -> None:
    """1 BTC at 60,000 and a 15,000 loan withdrawn: E = m - 15,000, LR = 0.5 m, so below
    m = 30,000 the account is liquidated. The BTC mark is 29,000 but 16 minutes old."""
    s = Scenario()
    s.btc_loan_withdrawn()
    s.at(1)
    s.mark("BTC", "36000")  # E = 21,000 < MR 21,600: a call, on a fresh mark
    s.at(2)
    s.send("day_closed", business_date="2026-11-24")  # interest 3.29: E 20,996.71
    s.at(2.25)
    s.mark("ETH", "3000")  # nothing of C1's
    # 15 minutes after the 36,000 mark it is still fresh; a minute later it is stale.
    s.at(1 + 16 / 60)
    s.mark("BTC-PERP", "36000")
    assert s.app.book.accounts["C1"].margin_call is not None
    s.at(25)  # past the call's deadline (2026-11-25T01:00Z), on a 24-hour-old BTC mark
    s.deposit("C1", "USD", "1")  # C1's own input: reviewed, still short, but it waits
    assert s.events("liquidation_triggered") == []
    (waiting,) = s.events("margin_decision_waiting")
    assert all(
        e.consistent for e in explain(s.store, str(waiting["seq"]), AdoptedPolicies.of(POLICY))
    )
    assert (waiting["stale_marks"], waiting["mark_times"]) == (
        ["BTC"],
        {"BTC": "2026-11-24T01:00:00Z"},
    )
    # The stale-marks view: every mark is stale at hour 25, and C1 waits for BTC.
    view = stale_mark_rows(s.app.book, POLICY, waiting["recorded_at"])
    assert [(r[0], r[4], r[6]) for r in view] == [
        ("mark:BTC", "36000", 1440),
        ("mark:BTC-PERP", "36000", 1424),
        ("mark:ETH", "3000", 1365),
        ("waiting:C1:BTC", "36000", 1440),
    ]
    s.mark("BTC", "36000")  # a fresh mark: the deadline's liquidation happens on it
    ended = s.events("margin_decision_waiting")[-1]
    assert (ended["stale_marks"], ended["seq"]) == ([], waiting["seq"] + 2)
    (triggered,) = s.events("liquidation_triggered")
    assert triggered["trigger"] == "margin_call_deadline"
    assert triggered["causation_id"] == s.events("mark_price_applied")[-1]["causation_id"]
    assert triggered["inputs"]["marks"]["BTC"] == "36000"


def test_a_mark_moving_more_than_the_alert_move_is_booked_with_an_alert() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.mark("BTC", "66000")  # +10%: not more than the policy's 0.10
    s.mark("BTC", "59399.99")  # -10.0000...15%: an alert
    marks = s.events("mark_price_applied")
    assert [m.get("alert", False) for m in marks] == [False, False, True]
    assert marks[2]["previous_price"] == "66000"
    assert s.app.book.marks["BTC"] == Decimal("59399.99")  # booked all the same


def test_funding_settles_once_per_interval_and_within_the_policy_bound() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("C1")
    s.deposit("C1", "USD", "100000")
    s.send(
        "perp_trade", account_id="C1", trade_id="p1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    at_eight = "2026-11-24T08:00:00Z"
    first = s.send("funding_rate", market="BTC-PERP", rate="0.0001", funding_time=at_eight)
    again = s.send("funding_rate", market="BTC-PERP", rate="0.0001", funding_time=at_eight)
    too_high = s.send(
        "funding_rate", market="BTC-PERP", rate="0.0076", funding_time="2026-11-24T16:00:00Z"
    )
    too_low = s.send(
        "funding_rate", market="BTC-PERP", rate="-0.5", funding_time="2026-11-24T16:00:00Z"
    )
    at_the_bound = s.send(
        "funding_rate", market="BTC-PERP", rate="-0.0075", funding_time="2026-11-24T16:00:00Z"
    )
    assert (first.accepted, at_the_bound.accepted) == (1, 1)
    assert again.refused_by_reason == {"funding_already_settled": 1}
    assert too_high.refused_by_reason == {"funding_rate_out_of_bounds": 1}
    assert too_low.refused_by_reason == {"funding_rate_out_of_bounds": 1}
    # C1, long 1 at 60,000, paid 6.00 at 0.0001 and received 450.00 at -0.0075.
    assert [e["rate"] for e in s.events("funding_settled")] == ["0.0001", "-0.0075"]
    assert s.app.book.accounts["C1"].balance("USD") == Decimal("100444.00")


def test_no_loan_draw_nor_withdrawal_while_a_margin_call_is_open() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("loan_draw_requested", account_id="C1", amount="15000")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="14000")
    # E = m + 1,000 - 15,000 against MR = 0.6 m and LR = 0.5 m.
    s.mark("BTC", "34000")  # E = 20,000 < MR 20,400 (LR 17,000): a call for 400
    (call,) = s.events("margin_call_issued")
    assert call["amount"] == "400.00"
    # Lending value 34,000 x 0.3 = 10,200 would refuse a draw anyway; 1 USD is refused
    # for the call, and so is withdrawing the 1,000 USD cash.
    draw = s.send("loan_draw_requested", account_id="C1", amount="1")
    withdrawal = s.send("withdrawal_requested", account_id="C1", asset="USD", amount="1")
    assert draw.refused_by_reason == {"margin_call_open": 1}
    assert withdrawal.refused_by_reason == {"margin_call_open": 1}
    (rejected,) = s.events("loan_draw_rejected")
    assert rejected["reason_code"] == "margin_call_open"
    account = s.app.book.accounts["C1"]
    assert (account.loan, account.balance("USD")) == (Decimal("15000.00"), Decimal("1000.00"))


def test_a_busted_sale_turns_a_healthy_account_into_a_call() -> None:
    """C1 deposits 1 BTC (mark 60,000), sells 0.5 BTC for 30,000 USD and withdraws 29,000:
    equity 31,000 against MR 0.6 x 30,000 = 18,000, healthy. The venue busts the sale."""
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send(
        "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="sell",
        quantity="0.5", price="60000", fee="0",
    )  # fmt: skip
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="29000")
    assert s.events("margin_call_issued") == []
    busted = s.send("trade_busted", trade_id="t1", reason="venue error")
    assert busted.accepted == 1
    (reversed_,) = s.events("trade_reversed")
    (sale,) = s.events("spot_trade_booked")
    assert (reversed_["original_seq"], reversed_["original_type"]) == (
        sale["seq"],
        "spot_trade_booked",
    )
    # The 0.5 BTC comes back and the 30,000 goes: USD 1,000 - 30,000 = -29,000, a loan.
    (financed,) = s.events("debit_financed")
    assert (financed["amount"], financed["cause"]) == ("29000.00", "trade_reversed")
    account = s.app.book.accounts["C1"]
    assert (account.balance("BTC"), account.balance("USD"), account.loan) == (
        Decimal("1"),
        Decimal(0),
        Decimal("29000.00"),
    )
    # E = 60,000 - 29,000 = 31,000 < MR 36,000 (LR 30,000): a call for 5,000.
    (call,) = s.events("margin_call_issued")
    assert (call.get("trigger"), call["amount"]) == (None, "5000.00")
    again = s.send("trade_busted", trade_id="t1", reason="venue error")
    unknown = s.send("trade_busted", trade_id="t9", reason="venue error")
    assert again.refused_by_reason == {"trade_already_busted": 1}
    assert unknown.refused_by_reason == {"unknown_trade": 1}
    assert len(s.events("trade_reversed")) == 1
    for asset, total in balances_by_asset(s.app):
        assert total == 0, asset


def test_a_busted_perpetual_trade_restores_the_position_fee_and_house() -> None:
    s = Scenario()
    s.perp_long()
    s.send("trade_busted", trade_id="p1", reason="off-market price")
    (reversal,) = s.events("trade_reversed")
    assert (reversal["fee_refunded"], reversal["size_after"], reversal["house_realized_pnl"]) == (
        "3",
        "0",
        "0.00",
    )
    book = s.app.book
    assert book.accounts["C1"].positions == {}
    assert book.accounts["platform:house"].positions == {}
    assert book.accounts["C1"].balance("USD") == Decimal("10000.00")
    assert book.accounts["platform:fees"].balance("USD") == 0
    # `ledger audit explain` recomputes the reversal from the journal before it.
    explained = explain(s.store, str(reversal["seq"]), AdoptedPolicies.of(POLICY))
    assert [e.consistent for e in explained] == [True]


def test_a_returned_deposit_is_reversed_once_and_its_shortfall_financed() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("deposit", account_id="C1", asset="USD", amount="10000", reference="bank-1")
    s.send(
        "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="buy",
        quantity="0.1", price="60000", fee="0",
    )  # fmt: skip
    s.send("deposit_returned", reference="bank-1", reason="returned by the bank")
    (reversal,) = s.events("deposit_reversed")
    deposit = next(e for e in s.events("deposit_credited") if e.get("reference") == "bank-1")
    assert (reversal["original_seq"], reversal["asset"], reversal["amount"]) == (
        deposit["seq"],
        "USD",
        "10000.00",
    )
    # USD 10,000 - 6,000 - 10,000 = -6,000: drawn on the loan; LV 1.1 x 60,000 x 0.3 = 19,800.
    (financed,) = s.events("debit_financed")
    assert (financed["amount"], financed["cause"]) == ("6000.00", "deposit_reversed")
    assert s.app.book.accounts["external:custody"].balance("USD") == 0
    again = s.send("deposit_returned", reference="bank-1", reason="returned by the bank")
    unknown = s.send("deposit_returned", reference="bank-2", reason="returned by the bank")
    assert again.refused_by_reason == {"deposit_already_returned": 1}
    assert unknown.refused_by_reason == {"unknown_deposit": 1}


def _buy_half_a_bitcoin_holding_stale_shares(credit: str) -> Scenario:
    """As `_buy_half_a_bitcoin_beyond_cash`, C1 also holding 200 SEHK:0700 marked 400 at
    hour 0 (the exchange closed since): at hour 2, on a fresh BTC mark, C1 buys 0.5 BTC at
    60,000 with a 30 fee, and 20,030 is financed. Lending value: the 1.5 BTC, fresh, lend
    1.5 x 60,000 x 0.30 = 27,000; the shares, on a 2-hour-old mark, 200 x 400 x 0.60 =
    48,000. Equity 90,000 + 80,000 - 20,030 = 149,970 against a maintenance requirement
    of 54,000 + 24,000 = 78,000: healthy."""
    s = Scenario()
    s.mark("BTC", "60000")
    s.mark("SEHK:0700", "400")
    s.open("C1", credit=credit)
    s.deposit("C1", "BTC", "1")
    s.deposit("C1", "SEHK:0700", "200")
    s.deposit("C1", "USD", "10000")
    s.at(2)
    s.mark("BTC", "60000")
    s.send(
        "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="buy",
        quantity="0.5", price="60000", fee="30",
    )  # fmt: skip
    return s


def test_a_credit_limit_call_no_stale_mark_could_change_is_issued_at_once() -> None:
    """Credit limit 15,000, below the 27,000 the fresh BTC alone lends: whatever the
    shares are worth, the limit is the credit limit and the call 20,030 - 15,000."""
    s = _buy_half_a_bitcoin_holding_stale_shares(credit="15000")
    (call,) = s.events("margin_call_issued")
    assert (call["trigger"], call["limit"], call["amount"]) == (
        "credit_limit_exceeded",
        "15000.00",
        "5030.00",
    )
    assert s.events("margin_decision_waiting") == []


def test_a_loan_within_what_the_fresh_marks_lend_neither_waits_nor_is_called() -> None:
    """Credit limit 50,000: the fresh BTC alone lends 27,000, more than the 20,030 loan,
    so no price of the shares could put the loan above a limit: nothing waits."""
    s = _buy_half_a_bitcoin_holding_stale_shares(credit="50000")
    assert s.events("margin_call_issued") == []
    assert s.events("margin_decision_waiting") == []


def test_a_lending_value_call_on_a_stale_mark_waits_for_the_fresh_one() -> None:
    """Credit limit 50,000, and C1 also withdrew 8,000 of its 10,000 USD before the buy, so
    28,030 is financed: above the 27,000 the fresh BTC lends, within the 27,000 + 48,000 =
    75,000 the stale shares add. Whether the loan is above the lending value depends on
    the shares' price: the decision waits (no call on the 2-hour-old 400). The next SEHK
    mark, 10 (five minutes later, BTC still fresh): lending value 27,000 + 200 x 10 x 0.60
    = 28,200 >= 28,030, no call. Another scenario below with a mark of 5: 27,600, a call
    of 28,030 - 27,600 = 430.00."""
    for fresh_mark, call_amount in (("10", None), ("5", "430.00")):
        s = Scenario()
        s.mark("BTC", "60000")
        s.mark("SEHK:0700", "400")
        s.open("C1", credit="50000")
        s.deposit("C1", "BTC", "1")
        s.deposit("C1", "SEHK:0700", "200")
        s.deposit("C1", "USD", "10000")
        s.send("withdrawal_requested", account_id="C1", asset="USD", amount="8000")
        s.at(2)
        s.mark("BTC", "60000")
        s.send(
            "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="buy",
            quantity="0.5", price="60000", fee="30",
        )  # fmt: skip
        (financed,) = s.events("debit_financed")
        assert financed["amount"] == "28030.00"
        assert s.events("margin_call_issued") == []
        (waiting,) = s.events("margin_decision_waiting")
        assert (waiting["stale_marks"], waiting["limit_call"]) == (["SEHK:0700"], True)
        assert waiting["mark_times"] == {"SEHK:0700": "2026-11-24T00:00:00Z"}
        assert all(
            e.consistent for e in explain(s.store, str(waiting["seq"]), AdoptedPolicies.of(POLICY))
        )
        s.at(2 + 5 / 60)
        s.mark("SEHK:0700", fresh_mark)
        ended = s.events("margin_decision_waiting")[-1]
        assert ended["stale_marks"] == []
        calls = s.events("margin_call_issued")
        if call_amount is None:
            assert calls == []
            continue
        (call,) = calls
        assert (call["trigger"], call["limit"], call["amount"]) == (
            "lending_value_exceeded",
            "27600.0000000000",  # 1.5 x 60,000 x 0.30 + 200 x 5 x 0.60, unrounded
            call_amount,
        )
        assert call["inputs"]["marks"] == {"BTC": "60000", "SEHK:0700": "5"}
        assert all(
            e.consistent for e in explain(s.store, str(call["seq"]), AdoptedPolicies.of(POLICY))
        )
