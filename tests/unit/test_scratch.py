"""The scratch book: whatever a decision changes on the copy, the original is untouched."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.simulation import simulate
from ledger import inbox, pretrade, risk
from ledger import journal_events as je
from ledger.application import InboxItem, LedgerApplication
from ledger.book import Book, LiquidationLot
from ledger.decisions import decide
from ledger.desk import Desk
from ledger.inbox import decode_inbox
from ledger.invariants import InvariantViolation
from ledger.policy import Policy, load_policy
from ledger.rejections import Refusal
from ledger.scratch import ValuingDesk, scratch_book, scratch_desk, valuing_desk
from ledger.store import LedgerStore
from tests.inbox_reference import inbox_digest
from tests.ledger_scenario import Scenario


def _book() -> Book:
    s = Scenario()
    s.mark("BTC-PERP", "60000")
    s.open("C1")
    s.deposit("C1", "USD", "10000")
    s.perp_buy("C1", "t1", "1", "60000")
    s.send("related_group_set", account_id="C1", group_id="g1")
    # A book that keeps every trade (the writer's keeps none: the store has them), as a
    # reader with no store behind it does.
    book = Book()
    for entry in s.store.iter_journal():
        book.apply(je.decode_journal_record(entry.record))
    assert book.trades
    return book


def test_changes_on_the_scratch_book_never_reach_the_original() -> None:
    book = _book()
    before = copy.deepcopy(book)
    scratch = scratch_book(book)
    account = scratch.accounts["C1"]
    account.balances["USD"] = Decimal(0)
    position = account.positions["BTC-PERP"]
    with pytest.raises(AttributeError):  # a position is frozen: replaced whole, never changed
        position.size = Decimal(5)  # type: ignore[misc]  # what the test proves refused
    account.positions["BTC-PERP"] = msgspec.structs.replace(position, size=Decimal(5))
    scratch.post("USD", Decimal(1), "platform:house", "platform:fees")
    scratch.marks["BTC-PERP"] = Decimal(1)
    scratch.related_groups["g1"].add("C2")
    scratch.last_seq = 0
    for other in scratch.clients():
        other.credit_limit = Decimal(0)
    scratch.busted.add("t9")
    scratch.returned.add("d9")
    scratch.funding_settled.add(("BTC-PERP", "2030-01-01T08:00:00Z"))
    assert book == before
    assert "t9" in scratch.busted
    assert "d9" in scratch.returned
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


def _simulated_day_decided_on(
    desk_for: Callable[[Book, Policy, str], Desk],
) -> Iterator[tuple[Desk, pretrade.CheckableRecord, list[tuple[str, bytes]]]]:
    """Each order, withdrawal and loan draw of a simulated day that the ledger books,
    decided first on `desk_for(the writer's book, policy, its account)` just before the
    writer decides it: (the desk, the record, the journal records the writer booked)."""
    policy = load_policy(None)
    seen: set[str] = set()
    with LedgerStore.open("sqlite:///:memory:") as store:
        app = LedgerApplication(store, policy)
        for offset, value in enumerate(simulate(7, 8, 1)):
            try:
                record = decode_inbox(value, policy)
            except Refusal:
                record = None
            desk = None
            if isinstance(record, pretrade.CHECKABLE_TYPES) and record.event_id not in seen:
                desk = desk_for(app.book, policy, record.account_id)
                desk.begin(record.event_id, record.occurred_at, inbox_digest(record))
                decide(desk, record)
            outcome = app.process([InboxItem(value, None, "inbox", 0, offset)])
            if desk is not None and outcome.accepted:
                assert isinstance(record, pretrade.CHECKABLE_TYPES)
                yield desk, record, [(entry.type, entry.record) for entry in outcome.journal]
            if record is not None:
                seen.add(record.event_id)


def test_a_scratch_decision_records_what_the_ledger_books_for_every_checkable_input() -> None:
    """Each order, withdrawal and loan draw of a simulated day, decided on a scratch desk of
    the writer's book just before the writer decides it: the same journal records, byte for
    byte (a scratch desk sets no price bands: a check decides no mark after its input)."""
    compared = 0
    for desk, _, booked in _simulated_day_decided_on(
        lambda book, policy, _: scratch_desk(book, policy)
    ):
        assert [(entry.type, entry.record) for entry in desk.pending] == booked
        compared += 1
    assert compared > 100


def test_a_valuing_desk_decides_as_any_and_keeps_the_figures_valued_afresh() -> None:
    """The same day on a desk that keeps the checked account's full figures: the same
    journal records, and the figures it kept, when it kept any, are those a valuation of
    the account after the record gives (positions and liquidation prices included)."""
    policy = load_policy(None)
    kept = unvalued = 0
    for desk, record, booked in _simulated_day_decided_on(valuing_desk):
        assert [(entry.type, entry.record) for entry in desk.pending] == booked
        assert isinstance(desk, ValuingDesk)
        account = desk.book.accounts[record.account_id]
        figures = desk.kept_figures(account)
        if figures is None:
            unvalued += 1
            continue
        assert figures == risk.margin_figures(account.holdings(), desk.book.marks, policy)
        assert figures.positions or not account.positions
        kept += 1
    assert kept > 50
    assert unvalued > 10


def test_a_valuing_desk_keeps_no_figures_the_account_or_a_mark_has_moved_from() -> None:
    book = _book()
    policy = load_policy(None)
    desk = valuing_desk(book, policy, "C1")
    account = desk.book.accounts["C1"]
    figures = desk.figures(account)
    assert isinstance(figures, risk.MarginFigures)
    assert figures.positions == ()  # the decision's figures, as on any desk
    full = desk.kept_figures(account)
    assert full == risk.margin_figures(account.holdings(), book.marks, policy)
    assert full is not None
    assert full.positions[0].liquidation_price is not None
    account.balances["USD"] += Decimal(1)  # as a what-if valuation leaves it, or an event
    assert desk.kept_figures(account) is None
    account.balances["USD"] -= Decimal(1)
    assert desk.kept_figures(account) == full
    desk.begin("m2", datetime(2030, 1, 1, tzinfo=UTC), "digest")
    desk.record(
        je.MarkPriceApplied(
            **desk.common(), instrument="BTC-PERP", price=Decimal(61000), observed_at=None
        )
    )
    assert desk.kept_figures(account) is None


_keys = st.sampled_from(["a", "b", "c", "d", "e"])
_operations = st.lists(
    st.tuples(st.sampled_from(["read", "set", "delete", "setdefault", "pop", "append"]), _keys),
    max_size=30,
)


@given(_operations)
def test_a_scratch_dict_answers_as_a_copy_of_the_original(
    operations: list[tuple[str, str]],
) -> None:
    """What the scratch book gives in place of each of the book's dicts (read, set, delete,
    change a value read from it) answers as a deep copy of the dict would, in the same
    order, and never changes the original."""
    original = {"a": [1], "b": [2], "c": [3]}
    book = Book(liquidation_lots=cast("dict[str, dict[str, LiquidationLot]]", original))
    scratch = cast("dict[str, list[int]]", scratch_book(book).liquidation_lots)  # any dict
    copy_of = copy.deepcopy(original)
    for number, (operation, key) in enumerate(operations):
        for mapping in (scratch, copy_of):
            if operation == "read":
                assert mapping.get(key) == copy_of.get(key)
            elif operation == "set":
                mapping[key] = [number]
            elif operation == "delete" and key in mapping:
                del mapping[key]
            elif operation == "setdefault":
                mapping.setdefault(key, [number])
            elif operation == "pop":
                mapping.pop(key, None)
            elif operation == "append" and key in mapping:
                mapping[key].append(number)
        assert list(scratch.items()) == list(copy_of.items())
        assert len(scratch) == len(copy_of)
    assert original == {"a": [1], "b": [2], "c": [3]}


def test_a_scratch_set_grows_in_its_own_layer_and_never_loses_the_originals() -> None:
    original = {"t1", "t2"}
    book = Book(busted=original)
    scratch = scratch_book(book).busted
    scratch.add("t2")  # a member already: nothing to add
    scratch.add("t3")
    assert sorted(scratch) == ["t1", "t2", "t3"]
    assert len(scratch) == 3
    assert "t3" in scratch
    assert original == {"t1", "t2"}
    scratch.discard("t3")
    assert sorted(scratch) == ["t1", "t2"]
    with pytest.raises(InvariantViolation, match="only grows"):
        scratch.discard("t1")
    layered = scratch_book(scratch_book(book)).busted  # a scratch of a scratch: layered again
    layered.add("t4")
    assert sorted(layered) == ["t1", "t2", "t4"]
    assert original == {"t1", "t2"}
