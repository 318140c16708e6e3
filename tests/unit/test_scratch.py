"""The scratch book: whatever a decision changes on the copy, the original is untouched."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

from ledger import inbox
from ledger.book import Book
from ledger.decisions import decide
from ledger.inbox import inbox_digest
from ledger.policy import load_policy
from ledger.scratch import scratch_book, scratch_desk
from tests.ledger_scenario import Scenario


def _book() -> Book:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("C1")
    s.deposit("C1", "USD", "10000")
    s.perp_buy("C1", "t1", "1", "60000")
    s.send("related_group_set", account_id="C1", group_id="g1")
    return s.app.book


def test_changes_on_the_scratch_book_never_reach_the_original() -> None:
    book = _book()
    before = copy.deepcopy(book)
    scratch = scratch_book(book)
    account = scratch.accounts["C1"]
    account.balances["USD"] = Decimal(0)
    account.positions["BTC-PERP"].size = Decimal(5)
    scratch.post("USD", Decimal(1), "platform:house", "platform:fees")
    scratch.marks["BTC-PERP"] = Decimal(1)
    scratch.related_groups["g1"].add("C2")
    scratch.last_seq = 0
    for other in scratch.clients():
        other.credit_limit = Decimal(0)
    assert book == before
    assert scratch.accounts["C1"].positions["BTC-PERP"].size == Decimal(5)


def test_a_scratch_decision_reads_the_trade_register_and_writes_only_its_own_layer() -> None:
    book = _book()
    trades = dict(book.trades)
    desk = scratch_desk(book, load_policy(None))
    bust = inbox.TradeBusted(
        event_id="bust-t1",
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
        trade_id="t1",
        reason="venue error",
    )
    desk.begin(bust.event_id, bust.occurred_at, inbox_digest(bust))
    decide(desk, bust)
    # The bust found t1 through the scratch book and reversed it there: the position is gone
    # on the scratch book only, and the original's register and position are as they were.
    assert [entry.type for entry in desk.pending] == ["trade_reversed"]
    assert "BTC-PERP" not in desk.book.accounts["C1"].positions
    assert book.accounts["C1"].positions["BTC-PERP"].size == Decimal(1)
    assert book.trades == trades
    assert "t1" not in book.busted
