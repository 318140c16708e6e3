"""A kept client trade is the encoded `BookedTrade` of its journal event, byte for byte.

The book writes it from a tuple of the Struct's fields (ledger/book.py, for speed); the
store's trades table, the audit of a snapshot and a reader's book compare those bytes, so
they must be exactly what encoding the Struct gives."""

from __future__ import annotations

from functools import cache

import msgspec

from app.simulation import simulate
from ledger import journal_events as je
from ledger.application import InboxItem, LedgerApplication
from ledger.book import Book, BookedTrade, decode_trade, is_reserved
from ledger.money import ZERO
from ledger.policy import load_policy
from ledger.store import LedgerStore

simulated_accounts = 20
simulated_days = 2
simulated_batch_records = 200


@cache
def _journal() -> tuple[je.JournalEventType, ...]:
    store = LedgerStore.open("sqlite:///:memory:")
    app = LedgerApplication(store, load_policy(None))
    lines = list(simulate(3, simulated_accounts, simulated_days))
    items = [InboxItem(line, None, "test", 0, offset) for offset, line in enumerate(lines)]
    for start in range(0, len(items), simulated_batch_records):
        app.process(items[start : start + simulated_batch_records])
    return tuple(je.decode_journal_record(entry.record) for entry in store.iter_journal())


def _expected(book: Book, event: je.JournalEventType) -> BookedTrade | None:
    """The Struct of a client trade, built field by field from its event and the book
    before it (the position a perpetual trade changed)."""
    if isinstance(event, je.SpotTradeBooked):
        instrument, figures = event.symbol, {"quote_amount": event.quote_amount}
    elif isinstance(event, je.PerpTradeBooked) and not is_reserved(str(event.account_id)):
        held = book.accounts[str(event.account_id)].positions.get(event.market)
        instrument, figures = (
            event.market,
            {
                "realized_pnl": event.realized_pnl,
                "size_after": event.size_after,
                "entry_price_after": event.entry_price_after,
                "size_before": held.size if held else ZERO,
                "entry_price_before": held.entry_price if held else ZERO,
            },
        )
    else:
        return None
    return BookedTrade(
        seq=event.seq,
        account_id=str(event.account_id),
        type=type(event).__struct_config__.tag,  # type: ignore[arg-type]  # the two trades'
        instrument=instrument,
        side=event.side,
        quantity=event.quantity,
        price=event.price,
        fee=event.fee,
        **figures,
    )


def test_every_client_trade_is_kept_as_the_encoded_struct_of_its_event() -> None:
    book = Book()  # keeps every client trade, as a reader of exported records does
    expected: dict[str, BookedTrade] = {}
    for event in _journal():
        trade = _expected(book, event)
        if trade is not None and isinstance(event, je.SpotTradeBooked | je.PerpTradeBooked):
            expected.setdefault(event.trade_id, trade)
        book.apply(event)
    kinds = {trade.type for trade in expected.values()}
    assert kinds == {"spot_trade_booked", "perp_trade_booked"}
    assert any(t.size_before != ZERO for t in expected.values())  # a position changed
    assert book.trades.keys() == expected.keys()
    for trade_id, trade in expected.items():
        assert book.trades[trade_id] == msgspec.msgpack.encode(trade)
        assert decode_trade(book.trades[trade_id]) == trade
