"""The rules of docs/risk-model.md, each with figures a risk officer can check by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication, StaleBook
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections.explain import explain
from tests.ledger_scenario import Scenario, balances_by_asset

POLICY = load_policy(None)


def _one_btc(s: Scenario, account: str) -> None:
    """An open account holding 1 BTC marked at 60,000."""
    s.mark("BTC", "60000")
    s.open(account)
    s.deposit(account, "BTC", "1")


def _collateral_client(s: Scenario, account: str = "C1") -> None:
    """1 BTC at 60,000, a 15,000 USD loan withdrawn: E = m - 15,000, MR = 0.6 m, LR = 0.5 m."""
    _one_btc(s, account)
    s.send("loan_draw_requested", account_id=account, amount="15000")
    s.send("withdrawal_requested", account_id=account, asset="USD", amount="15000")


def test_loan_draw_within_lending_value_is_approved_and_beyond_is_rejected() -> None:
    s = Scenario()
    _one_btc(s, "C1")
    # Lending value: 1 x 60,000 x (1 - 0.70) = 18,000.
    s.send("loan_draw_requested", account_id="C1", amount="15000")
    refused = s.send("loan_draw_requested", account_id="C1", amount="3000.01")
    assert [e["amount"] for e in s.events("loan_drawn")] == ["15000.00"]
    (rejected,) = s.events("loan_draw_rejected")
    assert rejected["reason_code"] == "lending_value_exceeded"
    assert rejected["limits"]["lending_value"].startswith("18000")
    assert refused.refused_by_reason == {"lending_value_exceeded": 1}
    # The refused draw lent nothing: the loan and the cash are the first draw's alone.
    assert s.app.book.accounts["C1"].loan == Decimal("15000.00")
    assert s.app.book.accounts["C1"].balance("USD") == Decimal("15000.00")
    # Up to the lending value exactly is within it.
    at_the_limit = s.send("loan_draw_requested", account_id="C1", amount="3000")
    assert (at_the_limit.accepted, at_the_limit.refused) == (1, 0)
    assert [e["amount"] for e in s.events("loan_drawn")] == ["15000.00", "3000.00"]
    assert s.app.book.accounts["C1"].loan == Decimal("18000.00")


def test_withdrawal_is_refused_below_the_initial_requirement() -> None:
    s = Scenario()
    _collateral_client(s)
    # E = 60,000 - 15,000 = 45,000 against IR = 0.7 x 60,000 = 42,000: approved above.
    (approved,) = s.events("withdrawal_approved")
    assert approved["inputs_after"]["figures"]["equity"].startswith("45000")
    s.deposit("C1", "USD", "100")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="100")
    s.send("withdrawal_requested", account_id="C1", asset="BTC", amount="0.1")
    # Without 0.1 BTC: E = 54,000 - 15,000 = 39,000 < IR = 37,800? No: 39,000 >= 37,800.
    s.send("withdrawal_requested", account_id="C1", asset="BTC", amount="0.2")
    # Then without a further 0.2 BTC: E = 0.7 x 60,000 - 15,000 = 27,000 < 0.7 x 42,000 = 29,400.
    reasons = [e["reason_code"] for e in s.events("withdrawal_rejected")]
    assert reasons == ["below_initial_requirement"]
    assert s.app.book.accounts["C1"].balance("BTC") == Decimal("0.90000000")


def test_a_withdrawal_of_more_than_the_account_holds_is_refused_and_moves_nothing() -> None:
    s = Scenario()
    s.open("C1")
    s.deposit("C1", "USD", "500")
    refused = s.send("withdrawal_requested", account_id="C1", asset="USD", amount="500.01")
    assert refused.refused_by_reason == {"insufficient_balance": 1}
    (rejected,) = s.events("withdrawal_rejected")
    assert rejected["reason_code"] == "insufficient_balance"
    assert s.events("withdrawal_approved") == []
    assert s.app.book.accounts["C1"].balances == {"USD": Decimal("500.00")}
    assert s.app.book.accounts["external:custody"].balance("USD") == Decimal("-500.00")
    all_of_it = s.send("withdrawal_requested", account_id="C1", asset="USD", amount="500")
    assert all_of_it.accepted == 1
    assert s.app.book.accounts["C1"].balance("USD") == 0


def test_margin_call_is_issued_for_the_shortfall_and_cleared_when_met() -> None:
    s = Scenario()
    _collateral_client(s)
    s.at(1)
    s.mark("BTC", "36000")  # E = 21,000; MR = 21,600; LR = 18,000
    (call,) = s.events("margin_call_issued")
    assert Decimal(call["amount"]) == Decimal(600)
    assert call["deadline"] == "2026-11-25T01:00:00Z"
    assert call["inputs"]["marks"] == {"BTC": "36000"}
    s.at(2)
    s.mark("BTC", "37000")  # E = 22,000 < MR = 22,200: still open, no second call
    assert len(s.events("margin_call_issued")) == 1
    s.mark("BTC", "38000")  # E = 23,000 >= MR = 22,800
    (cleared,) = s.events("margin_call_cleared")
    assert cleared["outcome"] == "met"
    assert s.app.book.accounts["C1"].margin_call is None


def test_an_open_call_is_liquidated_by_the_first_input_at_its_deadline() -> None:
    s = Scenario()
    _collateral_client(s)
    s.at(1)
    s.mark("BTC", "36000")
    s.at(24.9)
    s.mark("BTC", "36000")  # the same mark, fresh: a liquidation uses no mark over 15 min old
    assert s.events("liquidation_triggered") == []
    s.at(25)
    s.mark("ETH", "3001")  # the deadline, 2026-11-25T01:00Z, has come
    (triggered,) = s.events("liquidation_triggered")
    assert triggered["trigger"] == "margin_call_deadline"
    (completed,) = s.events("liquidation_completed")
    # IR - E = 25,200 - 21,000 = 4,200 (+ half a cent for rounding); each BTC sold lowers
    # IR by 0.7 x 36,000 = 25,200: sell ceil(4,200.005 / 25,200) = 0.16666687 BTC.
    (step,) = completed["steps"]
    assert step == {
        "kind": "sell_collateral",
        "instrument": "BTC",
        "quantity": "0.16666687",
        "price": "36000",
        "proceeds": "6000.01",
        "fee": "0",
        "loan_repaid": "6000.01",
    }
    account = s.app.book.accounts["C1"]
    assert account.loan == Decimal("8999.99")
    assert [e["outcome"] for e in s.events("margin_call_cleared")] == ["liquidated"]
    # audit explain shows the call the journal had open and that its deadline had come.
    (explained,) = explain(s.store, str(triggered["seq"]), AdoptedPolicies.of(load_policy(None)))
    (call,) = s.events("margin_call_issued")
    assert (
        f"  margin call {call['call_id']}, issued {call['recorded_at']}, deadline "
        f"2026-11-25T01:00:00Z; liquidated at {triggered['recorded_at']}"
    ) in explained.lines
    assert "  the call's deadline has come: recorded True = journal ✓" in explained.lines
    assert explained.consistent


def test_perp_liquidation_draws_the_insurance_fund_for_the_deficit() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.deposit("platform:insurance", "USD", "1000000")
    s.open("C2")
    s.deposit("C2", "USD", "10000")
    s.send(
        "perp_trade", account_id="C2", trade_id="t1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    s.mark("BTC-PERP", "45000")
    (completed,) = s.events("liquidation_completed")
    # Closed at 45,000: PnL -15,000, cash 10,000 - 15,000 = -5,000. No equity is left, so
    # no fee (0.5% x 45,000 = 225 would only be paid by the fund to itself).
    assert completed["steps"][0]["proceeds"] == "-15000.00"
    assert completed["steps"][0]["fee"] == "0.00"
    (drawn,) = s.events("insurance_fund_drawn")
    assert drawn["amount"] == "5000.00"
    assert drawn["fund_balance_after"] == "995000.00"  # 1,000,000 - 5,000
    assert s.app.book.accounts["C2"].balance("USD") == Decimal(0)
    # audit explain recomputes the draw from the journal: the deficit and the fund before it.
    (explained,) = explain(s.store, str(drawn["seq"]), AdoptedPolicies.of(load_policy(None)))
    assert "wanted = C2's USD below zero after the steps = -(-5000.00) = 5000.00" in (
        explained.lines
    )
    assert (explained.checks, explained.consistent) == (2, True)


def test_the_liquidation_fee_is_capped_at_the_equity_left() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.deposit("platform:insurance", "USD", "1000000")
    s.open("C2")
    s.deposit("C2", "USD", "15100")
    s.send(
        "perp_trade", account_id="C2", trade_id="t1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    s.mark("BTC-PERP", "45000")  # E = 15,100 - 15,000 = 100 < LR = 5% x 45,000 = 2,250
    (completed,) = s.events("liquidation_completed")
    # Closed at 45,000: cash 100 left; the fee 0.5% x 45,000 = 225 is capped at those 100.
    assert completed["steps"][0]["fee"] == "100.00"
    assert Decimal(completed["figures_after"]["equity"]) == 0
    assert s.events("insurance_fund_drawn") == []
    fund = s.app.book.accounts["platform:insurance"]
    assert fund.balance("USD") == Decimal("1000100.00")


def test_what_the_fund_cannot_cover_is_auto_deleveraged_at_the_bankruptcy_price() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("C2")
    s.deposit("C2", "USD", "10000")
    s.send(
        "perp_trade", account_id="C2", trade_id="t1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    s.mark("BTC-PERP", "45000")
    # No fee (no equity left) and an empty fund: 5,000 is left for auto-deleveraging.
    # Bankruptcy price 45,000 + 5,000 / 1.
    assert s.events("insurance_fund_drawn") == []
    (adl,) = s.events("auto_deleveraged")
    assert adl["account_id"] == "platform:house"
    assert adl["bankruptcy_price"] == "50000.00000000"
    assert adl["absorbed"] == "5000.00"
    assert adl["size_reduced"] == "1"
    assert s.app.book.accounts["C2"].balance("USD") == Decimal(0)
    assert "BTC-PERP" not in s.app.book.accounts["platform:house"].positions


def test_a_loan_collateral_cannot_repay_is_bad_debt() -> None:
    s = Scenario()
    _one_btc(s, "C3")
    s.send("loan_draw_requested", account_id="C3", amount="18000")
    s.send("withdrawal_requested", account_id="C3", asset="USD", amount="18000")
    s.mark("BTC", "10000")  # E = 10,000 - 18,000 = -8,000
    (completed,) = s.events("liquidation_completed")
    assert completed["steps"][0]["quantity"] == "1.00000000"
    (bad,) = s.events("bad_debt_recorded")
    assert bad["loan_written_off"] == "8000.00"
    assert bad["cash_written_off"] == "0"
    assert s.app.book.accounts["C3"].loan == Decimal(0)


def test_retail_accounts_cannot_increase_perp_exposure() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("R1", investor_class="retail")
    s.deposit("R1", "USD", "10000")
    outcome = s.send(
        "perp_trade", account_id="R1", trade_id="t1", market="BTC-PERP", side="buy",
        quantity="0.1", price="60000", fee="0",
    )  # fmt: skip
    assert outcome.refused_by_reason == {"not_professional_investor": 1}
    assert s.events("perp_trade_booked") == []
    account = s.app.book.accounts["R1"]
    assert account.positions == {}
    assert account.balances == {"USD": Decimal("10000.00")}  # no fee, no margin moved
    assert "BTC-PERP" not in s.app.book.accounts["platform:house"].positions


def test_a_repeated_event_id_is_a_no_op_and_a_conflicting_one_is_refused() -> None:
    s = Scenario()
    s.open("C1")
    first = s.send("deposit", event_id="dep-1", account_id="C1", asset="USD", amount="10")
    again = s.send("deposit", event_id="dep-1", account_id="C1", asset="USD", amount="10")
    other = s.send("deposit", event_id="dep-1", account_id="C1", asset="USD", amount="11")
    assert (first.accepted, again.duplicates, other.refused) == (1, 1, 1)
    assert s.rejects()[-1]["reason_code"] == "event_id_conflict"
    assert s.app.book.accounts["C1"].balance("USD") == Decimal("10.00")


def test_funding_is_paid_by_longs_to_shorts_and_sums_to_zero() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000.5")
    for account, side, quantity in (
        ("A", "buy", "0.333"),
        ("B", "sell", "0.111"),
        ("C", "buy", "0.5"),
    ):
        s.open(account)
        s.deposit(account, "USD", "100000")
        s.send(
            "perp_trade", account_id=account, trade_id=account, market="BTC-PERP", side=side,
            quantity=quantity, price="60000", fee="0",
        )  # fmt: skip
    s.send("funding_rate", market="BTC-PERP", rate="0.0001", funding_time="2026-11-24T08:00:00Z")
    (funding,) = s.events("funding_settled")
    paid = {p["account_id"]: Decimal(p["amount"]) for p in funding["payments"]}
    # A: 0.333 x 60,000.5 x 0.0001 = 1.99801665 -> 2.00; B: -0.66600555 -> -0.67;
    # C: 3.00002500 -> 3.00; the house, short 0.722: -4.33203610 -> -4.33.
    assert paid == {
        "A": Decimal("2.00"),
        "B": Decimal("-0.67"),
        "C": Decimal("3.00"),
        "platform:house": Decimal("-4.33"),
    }
    assert sum(paid.values()) == Decimal(funding["residue"])
    assert dict(balances_by_asset(s.app))["USD"] == 0


def test_daily_interest_accrues_on_principal_and_is_repaid_first() -> None:
    s = Scenario()
    _one_btc(s, "C1")
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    s.at(24)
    s.send("day_closed", business_date="2026-11-24")
    (interest,) = s.events("interest_accrued")
    assert interest["amount"] == "2.19"  # 10,000 x 0.08 / 365 = 2.1918 -> 2.19
    s.send("loan_repayment", account_id="C1", amount="100")
    (repaid,) = s.events("loan_repaid")
    assert (repaid["interest_paid"], repaid["principal_paid"]) == ("2.19", "97.81")
    account = s.app.book.accounts["C1"]
    loan_before, usd_before = account.loan, account.balance("USD")
    assert loan_before == Decimal("9902.19")  # 10,000 + 2.19 - 100
    refused = s.send("loan_repayment", account_id="C1", amount="10000")
    assert refused.refused_by_reason == {"repayment_exceeds_loan": 1}
    after = s.app.book.accounts["C1"]
    assert (after.loan, after.balance("USD")) == (loan_before, usd_before)
    assert len(s.events("loan_repaid")) == 1


def test_every_asset_sums_to_zero_over_all_ledger_accounts() -> None:
    s = Scenario()
    _collateral_client(s)
    s.mark("BTC", "10000")
    totals = dict(balances_by_asset(s.app))
    assert set(totals) >= {"USD", "BTC"}, "nothing to sum: the scenario booked no balance"
    assert s.events("liquidation_completed"), "the fall to 10,000 liquidates the client"
    for asset, total in totals.items():
        assert total == 0, asset


def test_a_spot_sale_of_more_than_the_account_holds_is_refused() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "0.5")
    sale = {"account_id": "C1", "symbol": "BTC/USD", "side": "sell", "price": "60000", "fee": "0"}
    s.send("spot_trade", trade_id="t1", quantity="0.4", **sale)
    refused = s.send("spot_trade", trade_id="t2", quantity="0.2", **sale)
    assert refused.refused_by_reason == {"insufficient_balance": 1}
    account = s.app.book.accounts["C1"]
    # 0.4 BTC sold at 60,000 into 24,000 USD; the second sale booked nothing.
    assert (account.balance("BTC"), account.balance("USD")) == (Decimal("0.1"), Decimal("24000.00"))


def test_a_spot_trade_moves_base_and_quote_and_the_fee_debits_usd() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "USD", "10000")
    trade = {"account_id": "C1", "symbol": "BTC/USD", "price": "60000", "fee": "1.25"}
    s.send("spot_trade", trade_id="t1", side="buy", quantity="0.1", **trade)
    account = s.app.book.accounts["C1"]
    # buy 0.1 at 60,000: 10,000 - 6,000 - 1.25 = 3,998.75 USD and 0.1 BTC
    assert (account.balance("BTC"), account.balance("USD")) == (Decimal("0.1"), Decimal("3998.75"))
    s.send("spot_trade", trade_id="t2", side="sell", quantity="0.05", **trade)
    # sell 0.05 at 60,000: 3,998.75 + 3,000 - 1.25 = 6,997.50 USD
    assert (account.balance("BTC"), account.balance("USD")) == (Decimal("0.05"), Decimal("6997.50"))
    assert s.app.book.accounts["platform:fees"].balance("USD") == Decimal("2.50")
    assert [e["quote_amount"] for e in s.events("spot_trade_booked")] == ["6000.00", "3000.00"]


def test_a_book_the_store_cannot_rebuild_decides_nothing_more(tmp_path: Path) -> None:
    s = Scenario(f"sqlite:///{tmp_path / 'ledger.db'}")
    s.open("C1")
    s.store.close()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the closed store raises
        s.deposit("C1", "USD", "10")
    with pytest.raises(StaleBook):
        s.deposit("C1", "USD", "10")
    reopened = LedgerApplication(LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}"), POLICY)
    assert reopened.book.accounts["C1"].balances == {}


def test_a_loan_cannot_be_repaid_with_cash_the_account_does_not_hold() -> None:
    s = Scenario()
    _one_btc(s, "C1")
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="10000")
    refused = s.send("loan_repayment", account_id="C1", amount="5000")
    assert refused.refused_by_reason == {"insufficient_balance": 1}
    account = s.app.book.accounts["C1"]
    assert (account.loan, account.balance("USD")) == (Decimal("10000.00"), Decimal("0.00"))
    assert s.events("loan_repaid") == []


def test_audit_explain_recomputes_a_perp_trade_from_the_position_before_it() -> None:
    """Long 1 BTC-PERP at 60,000, 1 more at 62,000: entry (60,000 + 62,000) / 2 = 61,000;
    then 0.5 sold at 63,000 realises 0.5 x (63,000 - 61,000) = 1,000, the entry kept."""
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("C2")
    s.deposit("C2", "USD", "100000")
    trade = {"account_id": "C2", "market": "BTC-PERP", "fee": "0"}
    s.send("perp_trade", trade_id="t1", side="buy", quantity="1", price="60000", **trade)
    s.send("perp_trade", trade_id="t2", side="buy", quantity="1", price="62000", **trade)
    s.send("perp_trade", trade_id="t3", side="sell", quantity="0.5", price="63000", **trade)
    explained = {
        (e.lines[0].split(", account ")[-1], e.seq): e
        for e in explain(s.store, "t2", AdoptedPolicies.of(load_policy(None)))
        + explain(s.store, "t3", AdoptedPolicies.of(load_policy(None)))
    }
    client = [e for (account, _), e in sorted(explained.items()) if account == "C2"]
    assert len(explained) == 4  # each trade booked on C2 and on the house, its counterparty
    assert all(e.consistent and e.checks == 3 for e in explained.values())
    grown, reduced = client
    assert "  entry price after: recorded 61000.000000000000 = recomputed ✓" in grown.lines
    assert (
        "position before (journal): size s = 2, entry e = 61000.000000000000; "
        "trade q = -0.5 at p = 63000"
    ) in reduced.lines
    assert "  size after: recorded 1.5 = recomputed ✓" in reduced.lines
    assert "  realised PnL, to the cent: recorded 1000.00 = recomputed ✓" in reduced.lines


def test_audit_explain_recomputes_a_spot_trades_quote_to_the_cent() -> None:
    """0.12345678 BTC at 60,000.5 = 7,407.468528390: 7,407.47 USD, half-even to the cent."""
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "USD", "10000")
    s.send(
        "spot_trade", account_id="C1", symbol="BTC/USD", trade_id="t1", side="buy",
        quantity="0.12345678", price="60000.5", fee="0",
    )  # fmt: skip
    explained = [
        e
        for e in explain(s.store, "t1", AdoptedPolicies.of(load_policy(None)))
        if "C1" in e.lines[0]
    ]
    (trade,) = explained
    assert (
        "quote = quantity * price = 0.12345678 * 60000.5, rounded half-even to the cent = 7407.47"
    ) in trade.lines
    assert (trade.checks, trade.consistent) == (1, True)
