"""Venue executions of liquidations: what a fill naming a liquidation may execute, and how
its result is settled against the insurance fund.

A liquidation closes positions and sells collateral at the mark into the platform's
liquidation account (`ledger/liquidation.py`); the venue then executes them, and reports
each execution as a `perp_trade` or `spot_trade` carrying the `liquidation_id`. Such a
fill is booked on the liquidation account, never on the client (`decisions.py` books the
trade legs), and reduces what the liquidation left to execute in that instrument. The
difference between the fill price and the takeover price, less the fill's fee, is the
liquidation account's result: a gain is paid into the insurance fund, a loss drawn from
it; what the fund cannot cover is absorbed by auto-deleveraging what is left of the lot
(`liquidation.deleverage_lot`), and what that cannot absorb is the broker's bad debt.
"""

from __future__ import annotations

from decimal import Decimal

from ledger import inbox
from ledger import journal_events as je
from ledger.book import LIQUIDATION, LiquidationLot
from ledger.desk import Desk
from ledger.invariants import present
from ledger.liquidation import deleverage_lot, draw_insurance_fund
from ledger.money import DECIMAL_CONTEXT, USD_SCALE, ZERO, format_decimal, quantize
from ledger.rejections import ReasonCode, Refusal


def lot_to_fill(
    desk: Desk, record: inbox.PerpTrade | inbox.SpotTrade, instrument: str
) -> LiquidationLot | Refusal:
    """The lot a fill executes, or a refusal: `unknown_liquidation` when the ledger took
    nothing over under that id in that instrument (or for another account),
    `liquidation_overfilled` when it is larger than what is left,
    `liquidation_side_mismatch` when it would add to the lot instead of executing it."""
    liquidation_id, account_id = record.liquidation_id, record.account_id
    side, quantity = record.side, record.quantity
    lot = desk.book.lot(str(liquidation_id), instrument)
    if lot is None:
        return Refusal(
            ReasonCode.UNKNOWN_LIQUIDATION,
            f"no liquidation {liquidation_id!r} of the ledger took {instrument} over: "
            "send the liquidation_id of a liquidation_completed step in that instrument",
        )
    if account_id not in (lot.account_id, LIQUIDATION):
        return Refusal(
            ReasonCode.UNKNOWN_LIQUIDATION,
            f"liquidation {liquidation_id!r} is of account {lot.account_id}, not {account_id}: "
            f"send its fills for {lot.account_id} or {LIQUIDATION}",
        )
    if quantity > abs(lot.remaining):
        return Refusal(
            ReasonCode.LIQUIDATION_OVERFILLED,
            f"liquidation {liquidation_id!r} has {format_decimal(abs(lot.remaining))} "
            f"{instrument} left to execute, less than the {format_decimal(quantity)} filled: "
            "send fills for at most what is left",
        )
    if side != lot.closing_side:
        return Refusal(
            ReasonCode.LIQUIDATION_SIDE_MISMATCH,
            f"liquidation {liquidation_id!r} left {format_decimal(lot.remaining)} {instrument} "
            f"to execute: a fill must {lot.closing_side}, this one would {side}",
        )
    return lot


def fill_result(
    lot: LiquidationLot, quantity: Decimal, price: Decimal, quote_amount: Decimal | None
) -> tuple[Decimal, Decimal | None]:
    """(gross result, takeover cost) of filling `quantity` of `lot` at `price`.

    A position: `closed * (price - takeover_price)` rounded half-even to the cent, `closed`
    signed like the lot. Collateral: the sale's `quote_amount` less what the ledger paid
    for the quantity, `quantity * takeover_price` rounded half-even, or all that is left
    of the lot's cost when the fill executes the rest (so the lot settles to the cent)."""
    if lot.kind == "close_position":
        closed = quantity if lot.remaining > ZERO else -quantity
        gross = quantize(DECIMAL_CONTEXT.multiply(closed, price - lot.takeover_price), USD_SCALE)
        return gross, None
    proceeds = present(quote_amount, "a collateral fill is a spot trade with a quote amount")
    if quantity == lot.remaining:
        cost = lot.remaining_cost
    else:
        cost = quantize(DECIMAL_CONTEXT.multiply(quantity, lot.takeover_price), USD_SCALE)
    return proceeds - cost, cost


def settle_fill(
    desk: Desk,
    lot: LiquidationLot,
    fill: inbox.PerpTrade | inbox.SpotTrade,
    quote_amount: Decimal | None = None,
) -> None:
    """Record the fill's result against the lot and settle it with the insurance fund."""
    quantity, price, fee = fill.quantity, fill.price, fill.fee
    gross, cost = fill_result(lot, quantity, price, quote_amount)
    result = gross - fee
    remaining = lot.remaining - quantity if lot.remaining > ZERO else lot.remaining + quantity
    desk.record(
        je.LiquidationFilled(
            **desk.common(LIQUIDATION),
            liquidation_id=lot.liquidation_id,
            liquidated_account_id=lot.account_id,
            trade_id=fill.trade_id,
            instrument=lot.instrument,
            kind=lot.kind,
            side=lot.closing_side,
            quantity=quantity,
            price=price,
            takeover_price=lot.takeover_price,
            fee=quantize(fee, USD_SCALE),
            gross_result=gross,
            result=result,
            insurance_fund_paid=max(result, ZERO),
            remaining_after=remaining,
            takeover_cost=cost,
        )
    )
    if result < ZERO:
        _cover_loss(desk, lot, -result)


def _cover_loss(desk: Desk, lot: LiquidationLot, loss: Decimal) -> None:
    """The insurance fund first; beyond it, auto-deleveraging of what is left of a position
    lot; what neither covers is bad debt."""
    liquidation_id = lot.liquidation_id
    left = loss - draw_insurance_fund(desk, LIQUIDATION, liquidation_id, loss)
    if left > ZERO and lot.kind == "close_position" and not lot.remaining.is_zero():
        left -= deleverage_lot(desk, lot, left)
    if left > ZERO:
        desk.record(
            je.BadDebtRecorded(
                **desk.common(LIQUIDATION),
                liquidation_id=liquidation_id,
                loan_written_off=ZERO,
                cash_written_off=left,
            )
        )
