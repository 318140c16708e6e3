"""Auto-deleveraging ranks the opposite side as Binance does: PnL ratio times effective
leverage, highest first; every rank's figures are in the journal for `audit explain`."""

from __future__ import annotations

from decimal import Decimal

from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from projections.explain import explain
from tests.ledger_scenario import Scenario, balances_by_asset


def _short(s: Scenario, account: str, usd: str, quantity: str, price: str) -> None:
    s.open(account)
    s.deposit(account, "USD", usd)
    s.send(
        "perp_trade", account_id=account, trade_id=f"t-{account}", market="BTC-PERP",
        side="sell", quantity=quantity, price=price, fee="0",
    )  # fmt: skip


def _crash() -> Scenario:
    """Three shorts in profit when a long of 1 BTC-PERP with 10,000 USD goes bankrupt.

    At 45,000 the long's equity is 10,000 - 15,000 = -5,000; the fund is empty (a bankrupt
    account pays no fee), so the 5,000 is deleveraged at 45,000 + 5,000 / 1 = 50,000:
    5,000 per BTC given up by each short reduced.

    | short | from          | USD     | U      | U/(|s|e)   | N      | E       | N/E        |
    | W1    | 1 at 60,000   | 200,000 | 15,000 | 0.25       | 45,000 | 215,000 | 0.20930233 |
    | W2    | 0.5 at 50,000 | 7,000   | 2,500  | 0.1        | 22,500 | 9,500   | 2.36842105 |
    | W3    | 0.2 at 65,000 | 2,000   | 4,000  | 0.30769231 | 9,000  | 6,000   | 1.5        |

    Scores (the ratio times the leverage, half-even to 8 places): W1 0.05232558,
    W2 0.23684210 (from 0.236842105), W3 0.46153846 (from 0.461538465).

    Queue: W3, W2, W1. (Profit per unit of initial margin, the old ranking, would have
    put W1 second and left W2 alone: it ignores that W1 is barely leveraged.)"""
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    _short(s, "W1", "200000", "1", "60000")
    _short(s, "W2", "7000", "0.5", "50000")
    _short(s, "W3", "2000", "0.2", "65000")
    s.open("C2")
    s.deposit("C2", "USD", "10000")
    s.send(
        "perp_trade", account_id="C2", trade_id="t-C2", market="BTC-PERP", side="buy",
        quantity="1", price="60000", fee="0",
    )  # fmt: skip
    s.mark("BTC-PERP", "45000")
    return s


def test_the_queue_is_pnl_ratio_times_effective_leverage_highest_first() -> None:
    s = _crash()
    deleveraged = s.events("auto_deleveraged")
    assert [e["account_id"] for e in deleveraged] == ["W3", "W2", "W1"]
    ranks = [e["ranking"] for e in deleveraged]
    assert [r["rank"] for r in ranks] == [1, 2, 3]
    assert [r["pnl_ratio"] for r in ranks] == ["0.30769231", "0.10000000", "0.25000000"]
    assert [r["effective_leverage"] for r in ranks] == ["1.50000000", "2.36842105", "0.20930233"]
    assert [r["score"] for r in ranks] == ["0.46153846", "0.23684210", "0.05232558"]
    assert [Decimal(r["equity"]) for r in ranks] == [6000, 9500, 215000]
    # W3's 0.2 absorbs 0.2 x 5,000 = 1,000, W2's 0.5 absorbs 2,500, W1 gives up the 0.3
    # left: the last 1,500.
    assert [e["size_reduced"] for e in deleveraged] == ["0.2", "0.5", "0.3"]
    assert [e["absorbed"] for e in deleveraged] == ["1000.00", "2500.00", "1500.00"]
    assert s.app.book.accounts["W1"].positions["BTC-PERP"].size == Decimal("-0.7")
    assert all(total == 0 for _, total in balances_by_asset(s.app))


def test_audit_explain_recomputes_each_rank_and_the_queue_order() -> None:
    s = _crash()
    (completed,) = s.events("liquidation_completed")
    explanations = explain(
        s.store, completed["liquidation_id"], AdoptedPolicies.of(load_policy(None))
    )
    ranked = [e for e in explanations if e.type == "auto_deleveraged"]
    assert len(ranked) == 3
    assert all(e.consistent for e in explanations), [e.differences for e in explanations]
    assert "score = pnl ratio * effective leverage = 0.30769231 * 1.50000000" in "\n".join(
        ranked[0].lines
    )
