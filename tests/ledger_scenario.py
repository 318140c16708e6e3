"""A small language for ledger scenarios: inbox records by name, journal events by type."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.application import BatchOutcome, InboxItem, LedgerApplication
from ledger.policy import Policy, load_policy
from ledger.store import DEPOSITS_TABLE, TRADES_TABLE, LedgerStore

START = datetime(2026, 11, 24, tzinfo=UTC)


class Scenario:
    """Feeds records to a ledger on an in-memory store, one record per batch by default."""

    def __init__(self, url: str = "sqlite:///:memory:", policy: Policy | None = None) -> None:
        self.store = LedgerStore.open(url)
        self.app = LedgerApplication(self.store, policy or load_policy(None))
        self.minutes = 0
        self.counter = 0
        self.outcomes: list[BatchOutcome] = []

    def at(self, hours: float) -> None:
        self.minutes = int(hours * 60)

    def send(self, type_: str, **fields: Any) -> BatchOutcome:
        self.counter += 1
        record = {
            "event_id": fields.pop("event_id", f"e{self.counter}"),
            "type": type_,
            "occurred_at": (START + timedelta(minutes=self.minutes)).isoformat(),
            **fields,
        }
        item = InboxItem(
            value=json.dumps(record).encode(),
            key=None,
            topic="test",
            partition=0,
            offset=self.counter,
        )
        outcome = self.app.process([item])
        self.outcomes.append(outcome)
        return outcome

    def mark(self, instrument: str, price: str) -> BatchOutcome:
        return self.send("mark_price", instrument=instrument, price=price)

    def open(
        self, account: str, investor_class: str = "professional", credit: str = "1000000"
    ) -> None:
        self.send(
            "account_opened", account_id=account, investor_class=investor_class, credit_limit=credit
        )

    def deposit(self, account: str, asset: str, amount: str) -> BatchOutcome:
        return self.send("deposit", account_id=account, asset=asset, amount=amount)

    def perp_long(self) -> None:
        """C1, with 10,000 USD, buys 0.1 BTC-PERP at the mark of 60,000 (fee 3) as trade p1."""
        self.mark("BTC-PERP", "60000")
        self.open("C1")
        self.deposit("C1", "USD", "10000")
        self.perp_buy("C1", "p1", "0.1", "60000", fee="3")

    def btc_loan_withdrawn(self) -> None:
        """C1 holds 1 BTC at the mark of 60,000, draws a 15,000 margin loan and withdraws
        it: E = m - 15,000 at a BTC mark m, IR 0.7 m, MR 0.6 m, LR 0.5 m (45,000 / 42,000
        / 36,000 / 30,000 at 60,000)."""
        self.mark("BTC", "60000")
        self.open("C1")
        self.deposit("C1", "BTC", "1")
        self.send("loan_draw_requested", account_id="C1", amount="15000")
        self.send("withdrawal_requested", account_id="C1", asset="USD", amount="15000")

    def spot_buy_beyond_cash(self, credit: str) -> None:
        """C1 (credit limit `credit`) holds 1 BTC at the mark of 60,000 and 10,000 USD, then
        buys 0.5 BTC at 60,000 with a 30 fee as trade t1: 30,030 USD, 20,030 beyond its
        cash, financed on its margin loan. Lending value after: 1.5 x 60,000 x (1 - 0.70) =
        27,000; equity 1.5 x 60,000 - 20,030 = 69,970 against a maintenance requirement of
        0.60 x 90,000 = 54,000 (liquidation 0.50 x 90,000 = 45,000): healthy, and called
        on its loan when `credit` is below 20,030."""
        self.mark("BTC", "60000")
        self.open("C1", credit=credit)
        self.deposit("C1", "BTC", "1")
        self.deposit("C1", "USD", "10000")
        self.send(
            "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="buy",
            quantity="0.5", price="60000", fee="30",
        )  # fmt: skip

    def perp_buy(
        self, account: str, trade_id: str, quantity: str, price: str, *, fee: str = "0"
    ) -> None:
        """`account` buys `quantity` BTC-PERP at `price` as `trade_id`."""
        self.send(
            "perp_trade", account_id=account, trade_id=trade_id, market="BTC-PERP",
            side="buy", quantity=quantity, price=price, fee=fee,
        )  # fmt: skip

    def journal(self) -> list[dict[str, Any]]:
        return [json.loads(entry.record) for entry in self.store.iter_journal()]

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [event for event in self.journal() if event["type"] == type_]

    def rejects(self) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.store.read_rejects(0, 5_000)]


def balances_by_asset(app: LedgerApplication) -> Iterator[tuple[str, Any]]:
    assets = sorted({a for acc in app.book.accounts.values() for a in acc.balances})
    for asset in assets:
        yield asset, sum(acc.balance(asset) for acc in app.book.accounts.values())


def store_of_older_code(path: Path) -> Scenario:
    """A SQLite store at `path` as code older than the trades and deposits tables left it:
    C1's perpetual trades p1 and p2 and its deposit under reference bank-1 in the journal,
    the tables dropped; the scenario's store closed."""
    scenario = Scenario(f"sqlite:///{path}")
    scenario.perp_long()  # C1 buys 0.1 BTC-PERP as p1
    scenario.perp_buy("C1", "p2", "0.2", "61000", fee="1")
    scenario.send("deposit", account_id="C1", asset="USD", amount="500", reference="bank-1")
    scenario.store.close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"DROP TABLE {TRADES_TABLE}")
        connection.execute(f"DROP TABLE {DEPOSITS_TABLE}")
    return scenario
