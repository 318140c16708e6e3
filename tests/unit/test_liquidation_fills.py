"""The venue's executions of liquidations, with figures a risk officer checks by hand.

The ledger takes a liquidated position over at the mark into `platform:liquidation`; the
venue executes it and reports each fill as a trade carrying the `liquidation_id`. The fill
is booked on the liquidation account, never on the client, and the difference between the
fill price and the takeover price is settled against the insurance fund at once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.adopted_policies import AdoptedPolicies
from ledger.book import Book
from ledger.policy import load_policy
from projections import tables
from projections.explain import explain
from projections.views import document, views_at
from tests.ledger_scenario import Scenario, balances_by_asset

FUND = "platform:insurance"
LIQUIDATION = "platform:liquidation"
HOUSE = "platform:house"


def _liquidated_long(s: Scenario, fund: str | None = "1000000") -> str:
    """C2 long 1 BTC-PERP from 60,000 with 16,000 USD; the mark falls to 45,000.

    E = 16,000 - 15,000 = 1,000 < LR = 5% x 45,000 = 2,250: liquidated. The position is
    taken over at 45,000 (realised -15,000), the fee 0.5% x 45,000 = 225 (within the 1,000
    of equity left) goes to the fund: the fund holds 1,000,225 and C2 775 USD."""
    s.mark("BTC-PERP", "60000")
    if fund is not None:
        s.deposit(FUND, "USD", fund)
    s.open("C2")
    s.deposit("C2", "USD", "16000")
    _perp(s, "C2", "t1", "buy 1 60000")
    s.mark("BTC-PERP", "45000")
    (completed,) = s.events("liquidation_completed")
    assert completed["steps"][0]["price"] == "45000"
    assert completed["steps"][0]["fee"] == "225.00"
    assert _usd(s, FUND) == Decimal(fund or 0) + Decimal("225.00")
    return str(completed["liquidation_id"])


def _perp(s: Scenario, account: str, trade: str, order: str, **extra: Any) -> Any:
    """`order` is "SIDE QUANTITY PRICE", as a venue's blotter reads: "sell 0.4 45100"."""
    side, quantity, price = order.split()
    return s.send(
        "perp_trade",
        account_id=account,
        trade_id=trade,
        market="BTC-PERP",
        side=side,
        quantity=quantity,
        price=price,
        fee=extra.pop("fee", "0"),
        **extra,
    )


def _usd(s: Scenario, account: str) -> Decimal:
    return s.app.book.accounts[account].balance("USD")


def _state(book: Book) -> tuple[Any, ...]:
    """Every balance, position and lot: what a refused fill must leave untouched."""
    return (
        {a: dict(acc.balances) for a, acc in book.accounts.items()},
        {a: dict(acc.positions) for a, acc in book.accounts.items()},
        [(lot.remaining, lot.remaining_cost) for lot in book.lots()],
    )


def test_a_liquidation_filled_in_two_parts_moves_the_fund_by_exactly_the_differences() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s)
    client_before = dict(s.app.book.accounts["C2"].balances)
    # Fill 1: 0.4 sold at 45,100, 100 above the takeover price: 0.4 x 100 = +40 to the fund.
    _perp(s, "C2", "v1", "sell 0.4 45100", liquidation_id=liquidation)
    assert _usd(s, FUND) == Decimal("1000265.00")
    # Fill 2: 0.6 sold at 44,800, 200 below: 0.6 x -200 = -120 drawn from the fund.
    _perp(s, "C2", "v2", "sell 0.6 44800", liquidation_id=liquidation)
    assert _usd(s, FUND) == Decimal("1000145.00")  # 1,000,225 + 40 - 120
    first, second = s.events("liquidation_filled")
    assert (first["gross_result"], first["insurance_fund_paid"]) == ("40.00", "40.00")
    assert (first["remaining_after"], second["remaining_after"]) == ("0.6", "0.0")
    assert (second["result"], second["insurance_fund_paid"]) == ("-120.00", "0")
    (drawn,) = s.events("insurance_fund_drawn")
    assert (drawn["account_id"], drawn["amount"]) == (LIQUIDATION, "120.00")
    # Booked on the liquidation account, never on the client: C2 is as the liquidation left it.
    book = s.app.book
    assert book.accounts["C2"].positions == {}
    assert dict(book.accounts["C2"].balances) == client_before
    assert "BTC-PERP" not in book.accounts[LIQUIDATION].positions
    assert _usd(s, LIQUIDATION) == 0  # +40 realised and paid on, -120 realised and drawn
    # The house, counterparty of the venue, bought back its short: flat too.
    assert "BTC-PERP" not in book.accounts[HOUSE].positions
    lot = book.lot(liquidation, "BTC-PERP")
    assert lot is not None
    assert lot.remaining == 0
    assert all(total == 0 for _, total in balances_by_asset(s.app))


def test_unknown_overfilled_and_wrong_side_fills_are_refused_and_nothing_moves() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s)
    before = _state(s.app.book)
    journal_length = len(s.journal())
    unknown = _perp(s, "C2", "v1", "sell 0.1 45000", liquidation_id="no-such-liquidation")
    overfilled = _perp(s, "C2", "v2", "sell 1.00000001 45000", liquidation_id=liquidation)
    wrong_side = _perp(s, "C2", "v3", "buy 0.1 45000", liquidation_id=liquidation)
    other_account = _perp(s, "C9", "v4", "sell 0.1 45000", liquidation_id=liquidation)
    assert unknown.refused_by_reason == {"unknown_liquidation": 1}
    assert overfilled.refused_by_reason == {"liquidation_overfilled": 1}
    assert wrong_side.refused_by_reason == {"liquidation_side_mismatch": 1}
    assert other_account.refused_by_reason == {"unknown_liquidation": 1}
    assert _state(s.app.book) == before
    assert len(s.journal()) == journal_length
    # After 0.4 filled, 0.6 is left: 0.60000001 is an overfill, 0.6 is not.
    _perp(s, LIQUIDATION, "v5", "sell 0.4 45000", liquidation_id=liquidation)
    late = _perp(s, "C2", "v6", "sell 0.60000001 45000", liquidation_id=liquidation)
    assert late.refused_by_reason == {"liquidation_overfilled": 1}
    rest = _perp(s, "C2", "v7", "sell 0.6 45000", liquidation_id=liquidation)
    assert rest.accepted == 1
    done = _perp(s, "C2", "v8", "sell 0.00000001 45000", liquidation_id=liquidation)
    assert done.refused_by_reason == {"liquidation_overfilled": 1}
    reasons = [r["reason_code"] for r in s.rejects()]
    assert reasons == [
        "unknown_liquidation",
        "liquidation_overfilled",
        "liquidation_side_mismatch",
        "unknown_liquidation",
        "liquidation_overfilled",
        "liquidation_overfilled",
    ]


def test_a_fill_loss_beyond_the_fund_is_bad_debt() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s, fund=None)  # the fund holds only the 225 fee
    # Executed at 40,000: 1 x (40,000 - 45,000) = -5,000, and a 10 fee: -5,010. The fund
    # covers 225; the 4,785 left is the broker's bad debt (the venue has executed: there
    # is no position left to deleverage against).
    _perp(s, "C2", "v1", "sell 1 40000", fee="10", liquidation_id=liquidation)
    (filled,) = s.events("liquidation_filled")
    assert (filled["gross_result"], filled["fee"], filled["result"]) == (
        "-5000.00",
        "10.00",
        "-5010.00",
    )
    (drawn,) = s.events("insurance_fund_drawn")
    assert (drawn["amount"], drawn["fund_balance_after"]) == ("225.00", "0.00")
    (bad,) = s.events("bad_debt_recorded")
    assert (bad["account_id"], bad["cash_written_off"]) == (LIQUIDATION, "4785.00")
    assert _usd(s, FUND) == 0
    assert _usd(s, LIQUIDATION) == 0  # -5,000 realised, -10 fee, +225 drawn, +4,785 written off
    assert s.app.book.accounts["platform:bad_debt"].balance("USD") == Decimal("-4785.00")
    explanations = {
        e.type: e for e in explain(s.store, liquidation, AdoptedPolicies.of(load_policy(None)))
    }
    draw = explanations["insurance_fund_drawn"]
    assert "the fund held 225.00 before; drawn = min(wanted, what it held) = 225.00" in draw.lines
    assert (draw.checks, draw.consistent) == (2, True)


def test_a_fill_loss_beyond_the_fund_is_deleveraged_against_what_is_left_of_the_lot() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("W1")
    s.deposit("W1", "USD", "100000")
    _perp(s, "W1", "w1", "sell 1 60000")  # W1 short 1 from 60,000: 15,000 up at 45,000
    liquidation = _liquidated_long(s, fund=None)  # the fund holds only the 225 fee
    # 0.5 executed at 40,000: 0.5 x (40,000 - 45,000) = -2,500. The fund pays 225; the 2,275
    # left is deleveraged against the 0.5 still to execute, at the liquidation account's
    # bankruptcy price 45,000 + 2,275 / 0.5 = 49,550: W1 buys 0.5 back there, giving up
    # 0.5 x (49,550 - 45,000) = 2,275 of its profit, and nothing is bad debt.
    _perp(s, "C2", "v1", "sell 0.5 40000", liquidation_id=liquidation)
    (drawn,) = s.events("insurance_fund_drawn")
    assert drawn["amount"] == "225.00"
    (adl,) = s.events("auto_deleveraged")
    assert (adl["account_id"], adl["bankrupt_account_id"]) == ("W1", LIQUIDATION)
    assert (adl["bankruptcy_price"], adl["size_reduced"], adl["absorbed"]) == (
        "49550.00000000",
        "0.5",
        "2275.00",
    )
    assert s.events("bad_debt_recorded") == []
    book = s.app.book
    lot = book.lot(liquidation, "BTC-PERP")
    assert lot is not None
    assert lot.remaining == 0  # nothing left for the venue
    assert "BTC-PERP" not in book.accounts[LIQUIDATION].positions
    assert _usd(s, LIQUIDATION) == 0  # -2,500 realised, +225 drawn, +2,275 from W1's trade
    assert book.accounts["W1"].positions["BTC-PERP"].size == Decimal("-0.5")
    assert all(total == 0 for _, total in balances_by_asset(s.app))
    explanations = explain(s.store, liquidation, AdoptedPolicies.of(load_policy(None)))
    assert "auto_deleveraged" in {e.type for e in explanations}
    assert all(e.consistent for e in explanations), [e.differences for e in explanations]


def test_a_collateral_sale_is_settled_to_the_cent_of_what_the_liquidation_paid() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.deposit(FUND, "USD", "1000")
    s.open("C3")
    s.deposit("C3", "BTC", "1")
    s.send("loan_draw_requested", account_id="C3", amount="18000")
    s.send("withdrawal_requested", account_id="C3", asset="USD", amount="18000")
    s.mark("BTC", "25000")  # E = 25,000 - 18,000 = 7,000 < LR = 0.5 x 25,000 = 12,500
    (completed,) = s.events("liquidation_completed")
    (step,) = completed["steps"]
    # IR - E = 0.7 x 25,000 - 7,000 = 10,500 (+ half a cent); each BTC sold lowers it by
    # 0.7 x 25,000 = 17,500: ceil(10,500.005 / 17,500, 8 places) = 0.60000029 BTC, bought by
    # the liquidation account for 0.60000029 x 25,000 = 15,000.00725 -> 15,000.01 USD.
    assert (step["kind"], step["quantity"], step["proceeds"]) == (
        "sell_collateral",
        "0.60000029",
        "15000.01",
    )
    liquidation = completed["liquidation_id"]
    sale = {"account_id": "C3", "symbol": "BTC/USD", "side": "sell", "fee": "0"}
    # Fill 1: 0.3 at 25,100: quote 7,530.00 against a cost of 0.3 x 25,000 = 7,500.00: +30.
    s.send("spot_trade", trade_id="v1", quantity="0.3", price="25100", **sale,
           liquidation_id=liquidation)  # fmt: skip
    # Fill 2, the rest 0.30000029 at 24,900: quote 7,470.007221 -> 7,470.01 against the
    # rest of the cost, 15,000.01 - 7,500.00 = 7,500.01: -30.00.
    s.send("spot_trade", trade_id="v2", quantity="0.30000029", price="24900", **sale,
           liquidation_id=liquidation)  # fmt: skip
    first, second = s.events("liquidation_filled")
    assert (first["takeover_cost"], first["result"]) == ("7500.00", "30.00")
    assert (second["takeover_cost"], second["result"]) == ("7500.01", "-30.00")
    assert _usd(s, FUND) == Decimal("1000.00")  # +30, then -30
    liquidation_account = s.app.book.accounts[LIQUIDATION]
    assert liquidation_account.balance("BTC") == 0
    assert liquidation_account.balance("USD") == 0  # paid 15,000.01, sold for 15,000.01 net
    assert s.app.book.accounts["C3"].balance("BTC") == Decimal("0.39999971")
    assert all(total == 0 for _, total in balances_by_asset(s.app))


def test_audit_explain_recomputes_every_fill_of_a_liquidation() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s)
    _perp(s, "C2", "v1", "sell 0.4 45100", liquidation_id=liquidation)
    _perp(s, "C2", "v2", "sell 0.6 44800", fee="1.5", liquidation_id=liquidation)
    explanations = explain(s.store, liquidation, AdoptedPolicies.of(load_policy(None)))
    fills = [e for e in explanations if e.type == "liquidation_filled"]
    assert len(fills) == 2
    assert all(e.consistent for e in explanations), [e.differences for e in explanations]
    text = "\n".join(fills[1].lines)
    assert "result = gross result - fee = -120.00 - 1.50 = -121.50" in text
    # The fund covers that loss: 1,000,225 + 40 before, 121.50 drawn.
    (draw,) = [e for e in explanations if e.type == "insurance_fund_drawn"]
    assert f"wanted = the loss of the fill at seq {fills[1].seq} = -(-121.50) = 121.50" in (
        draw.lines
    )
    assert "  fund balance after: recorded 1000143.50 = recomputed ✓" in draw.lines
    assert draw.checks == 2


def test_the_platform_exposure_view_lists_platform_holdings_and_what_is_left() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s)
    _perp(s, "C2", "v1", "sell 0.4 45100", liquidation_id=liquidation)
    s.mark("BTC-PERP", "44000")
    database = views_at(s.store, AdoptedPolicies.of(load_policy(None)), s.store.last_seq())
    rows = {
        (r["account_id"], r["item"]): r
        for r in document(database, tables.PLATFORM_EXPOSURE)["rows"]
    }
    left = rows[(LIQUIDATION, f"to_execute:{liquidation}:BTC-PERP")]
    # 0.6 left from 45,000, marked at 44,000: 0.6 x (44,000 - 45,000) = -600 if executed now.
    assert (left["quantity"], left["entry_price"], left["mark_price"]) == ("0.6", "45000", "44000")
    assert (left["notional"], left["unrealized_pnl"]) == ("26400.0", "-600.0")
    assert left["liquidated_account_id"] == "C2"
    held = rows[(LIQUIDATION, "position:BTC-PERP")]
    assert (held["quantity"], held["unrealized_pnl"]) == ("0.6", "-600.0")
    # The house, short 1 from 60,000, bought 0.4 back: short 0.6, 0.6 x 16,000 = 9,600 up.
    house = rows[(HOUSE, "position:BTC-PERP")]
    assert (house["quantity"], house["unrealized_pnl"]) == ("-0.6", "9600.0")
    fund = rows[(FUND, "balance:USD")]
    assert fund["market_value"] == "1000265.00"  # 1,000,000 + the 225 fee + the 40 gain
    assert not any(account == "external:custody" for account, _ in rows)


def test_the_liquidations_view_counts_the_fills_and_what_they_moved_in_the_fund() -> None:
    s = Scenario()
    liquidation = _liquidated_long(s)
    _perp(s, "C2", "v1", "sell 0.4 45100", liquidation_id=liquidation)
    _perp(s, "C2", "v2", "sell 0.6 44800", liquidation_id=liquidation)
    database = views_at(s.store, AdoptedPolicies.of(load_policy(None)), s.store.last_seq())
    (row,) = document(database, tables.LIQUIDATIONS)["rows"]
    # Two fills: +40 paid into the fund, -120 drawn from it (the client's own deficit: none).
    assert (row["fills"], row["fills_paid_to_fund"]) == (2, "40.00")
    assert row["insurance_fund_drawn"] == "120.00"
