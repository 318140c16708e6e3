"""Corrections: a busted trade or a returned deposit reversed exactly, never edited away.

The reversal is a new journal event linked to the original (`original_seq`) that undoes
each of its postings; the original stays in the journal as it was. Each is reversed at
most once (`trade_already_busted`, `deposit_already_returned`), an id the ledger never
booked is refused (`unknown_trade`, `unknown_deposit`), and the account's margin is
reviewed afterwards like after any input: a reversal can cause a call, and USD it takes
beyond the client's cash is drawn on the margin loan (`ledger.lending`).

A reversal that could not be exact is refused `trade_not_reversible` (or, for a deposit,
`insufficient_balance`) with what to do first: a perpetual position changed by a later
trade (bust the later trades first), or an asset the client no longer holds.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from ledger import inbox, risk
from ledger import journal_events as je
from ledger.book import HOUSE, BookedTrade
from ledger.desk import Desk
from ledger.money import REPORTING_ASSET, USD_SCALE, ZERO, format_decimal, quantize
from ledger.rejections import ReasonCode, Refusal

T = TypeVar("T")


@dataclass(frozen=True)
class _Reversible:
    """What the reversal of one kind of original refuses: an original the ledger never
    booked, and one reversed already."""

    noun: str
    unknown: ReasonCode
    unknown_detail: str  # formatted with the original's `key`
    reversed_already: ReasonCode


_TRADE = _Reversible(
    "trade",
    ReasonCode.UNKNOWN_TRADE,
    "no client trade {key!r} is booked: check the trade_id",
    ReasonCode.TRADE_ALREADY_BUSTED,
)
_DEPOSIT = _Reversible(
    "deposit",
    ReasonCode.UNKNOWN_DEPOSIT,
    "no client deposit with reference {key!r} is booked: check the reference",
    ReasonCode.DEPOSIT_ALREADY_RETURNED,
)


def _reversible_once(
    kind: _Reversible, key: str, original: T | None, reversed_keys: Container[str]
) -> T | Refusal:
    """The original booked under `key`, or the refusal to reverse it (again)."""
    if original is None:
        return Refusal(kind.unknown, kind.unknown_detail.format(key=key))
    if key in reversed_keys:
        return Refusal(
            kind.reversed_already, f"{kind.noun} {key} is already reversed: nothing more to do"
        )
    return original


def trade_busted(desk: Desk, record: inbox.TradeBusted) -> Iterable[str] | Refusal:
    book = desk.book
    trade_id = record.trade_id
    original = _reversible_once(_TRADE, trade_id, book.booked_trade(trade_id), book.busted)
    if isinstance(original, Refusal):
        return original
    account_id = original.account_id
    perp = _reversal(desk, trade_id, original)
    if isinstance(perp, Refusal):
        return perp
    desk.record(
        je.TradeReversed(
            **desk.common(account_id),
            trade_id=record.trade_id,
            reason=record.reason,
            original_seq=original.seq,
            original_type=original.type,
            fee_refunded=original.fee,
            realized_pnl_reversed=perp.realized_pnl_reversed,
            size_after=perp.size_after,
            entry_price_after=perp.entry_price_after,
            house_realized_pnl=perp.house_realized_pnl,
        )
    )
    return (account_id,)


def _reversal(desk: Desk, trade_id: str, original: BookedTrade) -> _PerpReversal | Refusal:
    """The figures the reversal records (none for a spot trade), or why it cannot be exact."""
    if original.perpetual:
        return _perp_reversal(desk, trade_id, original)
    refusal = _spot_reversal_refusal(desk, original)
    return _PerpReversal() if refusal is None else refusal


def _spot_reversal_refusal(desk: Desk, original: BookedTrade) -> Refusal | None:
    """A bought asset must still be there to give back (USD is financed if short)."""
    base = original.instrument.split("/")[0]
    account = desk.book.accounts[original.account_id]
    held, bought = account.balance(base), original.quantity
    if original.side == "buy" and held < bought:
        return Refusal(
            ReasonCode.TRADE_NOT_REVERSIBLE,
            f"{account.account_id} holds {format_decimal(held)} {base}, less than the "
            f"{original.quantity} the busted buy brought: book what moved it first",
        )
    return None


@dataclass(frozen=True)
class _PerpReversal:
    """The figures a perpetual trade's reversal records (none for a spot trade)."""

    realized_pnl_reversed: Decimal | None = None
    size_after: Decimal | None = None
    entry_price_after: Decimal | None = None
    house_realized_pnl: Decimal | None = None


def _perp_reversal(desk: Desk, trade_id: str, original: BookedTrade) -> _PerpReversal | Refusal:
    """The client's position back to before the trade, if no later trade moved it; the
    house trades the opposite back at the original price. Returns the reversal's figures."""
    account = desk.book.accounts[original.account_id]
    market = original.instrument
    held = account.positions.get(market)
    now = (held.size, held.entry_price) if held else (ZERO, ZERO)
    if now != (original.size_after, original.entry_price_after):
        return Refusal(
            ReasonCode.TRADE_NOT_REVERSIBLE,
            f"{account.account_id}'s {market} position changed after trade "
            f"{trade_id}: bust the later trades first",
        )
    house = desk.book.accounts[HOUSE].positions.get(market)
    signed = original.quantity * (1 if original.side == "buy" else -1)
    price = original.price
    effect = risk.trade_realisation(
        house.size if house else ZERO, house.entry_price if house else ZERO, signed, price
    )
    return _PerpReversal(
        realized_pnl_reversed=original.realized_pnl,
        size_after=original.size_before,
        entry_price_after=original.entry_price_before,
        house_realized_pnl=quantize(effect.realised_pnl, USD_SCALE),
    )


def deposit_returned(desk: Desk, record: inbox.DepositReturned) -> Iterable[str] | Refusal:
    book = desk.book
    reference = record.reference
    original = _reversible_once(_DEPOSIT, reference, book.booked_deposit(reference), book.returned)
    if isinstance(original, Refusal):
        return original
    account_id = str(original.account_id)
    held = book.accounts[account_id].balance(original.asset)
    if original.asset != REPORTING_ASSET and held < original.amount:
        # A USD shortfall is financed like any debit; another asset cannot go below zero.
        return Refusal(
            ReasonCode.INSUFFICIENT_BALANCE,
            f"{account_id} holds {format_decimal(held)} {original.asset}, less than the "
            f"{original.amount} returned: book what moved it first",
        )
    desk.record(
        je.DepositReversed(
            **desk.common(account_id),
            reference=record.reference,
            reason=record.reason,
            original_seq=original.seq,
            asset=original.asset,
            amount=original.amount,
        )
    )
    return (account_id,)
