"""The demo's simulated venue executes every liquidation the ledger decided, through the
same ingest path, until the liquidation account holds nothing."""

from __future__ import annotations

import json
from decimal import Decimal

from app.venue import Venue, slippage_bps_high, slippage_bps_low
from ledger.application import InboxItem
from ledger.policy import load_policy
from tests.ledger_scenario import Scenario, balances_by_asset


def test_the_venue_executes_each_lot_at_the_mark_with_slippage_until_nothing_is_left() -> None:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.mark("BTC", "60000")
    s.deposit("platform:insurance", "USD", "1000000")
    s.open("C2")
    s.deposit("C2", "USD", "16000")
    s.send(
        "perp_trade", account_id="C2", trade_id="t1", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    s.open("C3")
    s.deposit("C3", "BTC", "1")
    s.send("loan_draw_requested", account_id="C3", amount="18000")
    s.send("withdrawal_requested", account_id="C3", asset="USD", amount="18000")
    s.mark("BTC", "25000")  # C3's collateral sold: 0.60000029 BTC taken over at 25,000
    s.mark("BTC-PERP", "45000")  # C2's long taken over at 45,000
    book = s.app.book
    assert {lot.instrument for lot in book.lots()} == {"BTC", "BTC-PERP"}
    venue = Venue(7, load_policy(None))
    assert venue.take_orders(book) == 2
    assert venue.take_orders(book) == 0  # an order is taken once
    fills = list(venue.due())
    assert 2 <= len(fills) <= 6
    for number, value in enumerate(fills):
        record = json.loads(value)
        mark = Decimal("45000") if record["type"] == "perp_trade" else Decimal("25000")
        slippage = (mark - Decimal(record["price"])) / mark  # a sale: positive is adverse
        assert Decimal(slippage_bps_low) / 10_000 <= slippage <= Decimal(slippage_bps_high) / 10_000
        assert record["side"] == "sell"
        outcome = s.app.process([InboxItem(value, None, "venue", 0, number)])
        assert (outcome.accepted, outcome.refused) == (1, 0)
    assert all(lot.remaining == 0 for lot in book.lots())
    liquidation_account = book.accounts["platform:liquidation"]
    assert liquidation_account.positions == {}
    assert liquidation_account.balance("BTC") == 0
    # Every fill's result went to or came from the fund: 1,000,000 + the 225 fee + results.
    results = sum(Decimal(e["result"]) for e in s.events("liquidation_filled"))
    fund = book.accounts["platform:insurance"].balance("USD")
    assert fund == Decimal("1000225.00") + results
    assert abs(liquidation_account.balance("USD")) <= Decimal("0.01") * len(fills)
    assert all(total == 0 for _, total in balances_by_asset(s.app))
