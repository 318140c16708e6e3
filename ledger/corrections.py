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

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ledger import inbox, risk
from ledger import journal_events as je
from ledger.book import HOUSE, BookedTrade
from ledger.desk import Desk
from ledger.money import REPORTING_ASSET, USD_SCALE, ZERO, format_decimal, quantize
from ledger.rejections import ReasonCode, Refusal


def trade_busted(desk: Desk, record: inbox.TradeBusted) -> Iterable[str]:
    book = desk.book
    original = book.booked_trade(record.trade_id)
    if original is None:
        raise Refusal(
            ReasonCode.UNKNOWN_TRADE,
            f"no client trade {record.trade_id!r} is booked: check the trade_id",
        )
    if record.trade_id in book.busted:
        raise Refusal(
            ReasonCode.TRADE_ALREADY_BUSTED,
            f"trade {record.trade_id} is already reversed: nothing more to do",
        )
    account_id = original.account_id
    if original.perpetual:
        perp = _perp_reversal(desk, record.trade_id, original)
    else:
        _check_spot_reversible(desk, original)
        perp = _PerpReversal()
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


def _check_spot_reversible(desk: Desk, original: BookedTrade) -> None:
    """A bought asset must still be there to give back (USD is financed if short)."""
    base = original.instrument.split("/")[0]
    account = desk.book.accounts[original.account_id]
    held, bought = account.balance(base), original.quantity
    if original.side == "buy" and held < bought:
        raise Refusal(
            ReasonCode.TRADE_NOT_REVERSIBLE,
            f"{account.account_id} holds {format_decimal(held)} {base}, less than the "
            f"{original.quantity} the busted buy brought: book what moved it first",
        )


@dataclass(frozen=True)
class _PerpReversal:
    """The figures a perpetual trade's reversal records (none for a spot trade)."""

    realized_pnl_reversed: Decimal | None = None
    size_after: Decimal | None = None
    entry_price_after: Decimal | None = None
    house_realized_pnl: Decimal | None = None


def _perp_reversal(desk: Desk, trade_id: str, original: BookedTrade) -> _PerpReversal:
    """The client's position back to before the trade, if no later trade moved it; the
    house trades the opposite back at the original price. Returns the reversal's figures."""
    account = desk.book.accounts[original.account_id]
    market = original.instrument
    held = account.positions.get(market)
    now = (held.size, held.entry_price) if held else (ZERO, ZERO)
    if now != (original.size_after, original.entry_price_after):
        raise Refusal(
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


def deposit_returned(desk: Desk, record: inbox.DepositReturned) -> Iterable[str]:
    book = desk.book
    original = book.deposits.get(record.reference)
    if original is None:
        raise Refusal(
            ReasonCode.UNKNOWN_DEPOSIT,
            f"no client deposit with reference {record.reference!r} is booked: check the reference",
        )
    if record.reference in book.returned:
        raise Refusal(
            ReasonCode.DEPOSIT_ALREADY_RETURNED,
            f"deposit {record.reference} is already reversed: nothing more to do",
        )
    account_id = str(original.account_id)
    held = book.accounts[account_id].balance(original.asset)
    if original.asset != REPORTING_ASSET and held < original.amount:
        # A USD shortfall is financed like any debit; another asset cannot go below zero.
        raise Refusal(
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
