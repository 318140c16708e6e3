"""An account's figures and balances as documents, from a book replayed to any point."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ledger import risk, snapshots
from ledger.book import Book
from ledger.identifiers import is_ascii_number
from ledger.money import ONE, REPORTING_ASSET, format_decimal
from ledger.policy import Policy
from ledger.store import LedgerStore


class AsOfError(ValueError):
    """An --as-of that is neither a journal seq nor an RFC 3339 timestamp."""


def parse_as_of(text: str | None) -> int | datetime | None:
    if text is None:
        return None
    if is_ascii_number(text):
        return int(text)
    # RFC 3339 lets the zone be a lower-case z, as the inbox's occurred_at takes it.
    utc = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        moment = datetime.fromisoformat(utc)
    except ValueError as error:
        raise AsOfError(f"--as-of {text!r} is neither a journal seq nor a timestamp") from error
    if moment.tzinfo is None:
        raise AsOfError(f"--as-of {text!r} needs a UTC offset, such as Z or +08:00")
    return moment


def as_of_seq(store: LedgerStore, as_of: str | None) -> int:
    """The journal seq right after which `as_of` (a seq or an RFC 3339 time) stands; the
    journal's end for None. A time is found by bisection: `recorded_at` never decreases
    along the journal (the ledger clock never goes backwards)."""
    last = store.last_seq()
    bound = parse_as_of(as_of)
    if bound is None:
        return last
    if isinstance(bound, int):
        if bound > last:
            raise AsOfError(f"--as-of {bound} is beyond the journal, which ends at seq {last}")
        return bound
    at_or_before, after = 0, last + 1  # the answer lies in [at_or_before, after)
    while after - at_or_before > 1:
        middle = (at_or_before + after) // 2
        if _recorded_at(store, middle) <= bound:
            at_or_before = middle
        else:
            after = middle
    return at_or_before


class _Head(msgspec.Struct, frozen=True):
    recorded_at: str


_decode_head = msgspec.json.Decoder(_Head).decode


def _recorded_at(store: LedgerStore, seq: int) -> datetime:
    (entry,) = store.read_journal(seq - 1, 1)
    return datetime.fromisoformat(_decode_head(entry.record).recorded_at)


def in_ledger(book: Book, account_id: str) -> bool:
    """Whether the account exists right after the book's position: a client's from its
    `account_opened`, a platform account's from the journal's first record (the ledger
    opens its own accounts when it starts; they hold nothing until their first posting).
    Before seq 1 there is no ledger, and no account in it."""
    return book.last_seq > 0 and account_id in book.accounts


def account_not_found(account_id: str, as_of: str | None, seq: int) -> str:
    """Why an account has no figures, for a read at the journal's end (`as_of` None) or as of
    journal `seq`: a read of the past found no account opened by then, which is not the
    same as an account the ledger never had."""
    if as_of is None:
        return f"account {account_id} is not in the ledger"
    if seq == 0:
        return f"account {account_id} is not in the ledger at seq 0, before its first record"
    return f"account {account_id} is not in the ledger at seq {seq}: opened after it, or never"


def book_as_of(store: LedgerStore, as_of: str | None) -> Book:
    """The book right after journal position `as_of` (a seq or a timestamp), or now: the
    nearest snapshot at or before it, then the journal up to it. It carries no seen inputs
    (reading figures needs none)."""
    return snapshots.book_at(store, as_of_seq(store, as_of))


def margin_view(
    book: Book, policy: Policy, account_id: str, figures: risk.MarginFigures | None = None
) -> dict[str, Any]:
    """The account's figures as `ledger query margin` shows them; `figures`, when the caller
    has them already (`risk.margin_figures` of the account's holdings at the book's marks,
    positions and liquidation prices included), are not computed again."""
    account = book.accounts[account_id]
    if figures is None:
        # Each position's liquidation price comes with the figures, solved from the same
        # valuation rather than valuing the account again per position.
        figures = risk.margin_figures(account.holdings(), book.marks, policy)
    positions = []
    for position in figures.positions:
        positions.append(
            {
                "market": position.market,
                "size": format_decimal(position.size),
                "entry_price": format_decimal(position.entry_price),
                "mark_price": format_decimal(position.mark_price),
                "unrealized_pnl": format_decimal(position.unrealized_pnl),
                "notional": format_decimal(position.notional),
                "initial_margin": format_decimal(position.initial_margin),
                "maintenance_margin": format_decimal(position.maintenance_margin),
                "liquidation_price": format_decimal(position.liquidation_price),
            }
        )
    return {
        "account_id": account_id,
        "as_of_seq": book.last_seq,
        "equity": format_decimal(figures.equity),
        "market_value": format_decimal(figures.market_value),
        "loan": format_decimal(figures.loan),
        "unrealized_pnl": format_decimal(figures.unrealized_pnl),
        "initial_requirement": format_decimal(figures.initial_requirement),
        "maintenance_requirement": format_decimal(figures.maintenance_requirement),
        "liquidation_requirement": format_decimal(figures.liquidation_requirement),
        "excess": format_decimal(figures.excess),
        "available": format_decimal(figures.available),
        "margin_level": format_decimal(figures.margin_level),
        "ltv": format_decimal(figures.ltv),
        "status": str(figures.status),
        "margin_call": None
        if account.margin_call is None
        else {
            "call_id": account.margin_call.call_id,
            "issued_at": account.margin_call.issued_at,
            "amount": format_decimal(account.margin_call.amount),
            "trigger": account.margin_call.trigger,
        },
        "positions": positions,
    }


def balances_view(book: Book, policy: Policy, account_id: str) -> dict[str, Any]:
    del policy
    account = book.accounts[account_id]
    rows = []
    for asset, balance in sorted(account.balances.items()):
        mark = ONE if asset == REPORTING_ASSET else book.marks.get(asset)
        rows.append(
            {
                "asset": asset,
                "balance": format_decimal(balance),
                "mark_price": format_decimal(mark),
                "market_value": None if mark is None else format_decimal(balance * mark),
            }
        )
    return {"account_id": account_id, "as_of_seq": book.last_seq, "balances": rows}
