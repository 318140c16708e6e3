"""Liquidation (docs/risk-model.md "Rules"): what is closed and sold, in what order, and who
bears a loss.

1. Perpetual positions are closed first (largest notional first) at the mark against the
   platform's liquidation account; a fee of `liquidation_fee_rate * closed notional`,
   capped at the equity the account has left, goes to the insurance fund.
2. The account's USD cash repays the margin loan (accrued interest first).
3. Collateral is sold at the mark to the liquidation account in the policy's sale order,
   only as much as brings equity back to the initial requirement; proceeds repay the loan.
   Sales of collateral carry no fee: the policy's fee rate belongs to the perpetual markets.
Steps stop as soon as `E >= initial_requirement`, or when nothing is left. An account
liquidated while it has a margin call on a lending limit (`ledger.lending`) is also
brought back within its credit limit and lending value: cash and sale proceeds repay the
loan until it is.

A negative equity left over is a perpetuals deficit (negative USD cash) and a loan
shortfall. The insurance fund covers the perpetuals deficit as far as it goes; what it
cannot cover is absorbed by auto-deleveraging the opposite positions in the largest market
closed, queued by PnL ratio times effective leverage (`deleveraging_queue`), at the bankrupt
account's bankruptcy price. The margin loan's
shortfall is the broker's own credit loss: bad debt, like any perpetuals deficit that no
profitable position was left to absorb.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from decimal import Decimal

from ledger import journal_events as je
from ledger import risk
from ledger.book import (
    EQUITY_CALL_TRIGGER,
    INSURANCE_FUND,
    LIQUIDATION,
    Account,
    Book,
    LiquidationLot,
    Position,
)
from ledger.desk import Desk, figures_record
from ledger.invariants import InvariantViolation, require
from ledger.lending import limit_breach
from ledger.money import (
    DECIMAL_CONTEXT,
    DERIVED_FIGURE_SCALE,
    REPORTING_ASSET,
    USD_SCALE,
    ZERO,
    Rounding,
    quantize,
)
from ledger.policy import CASH_ASSETS, Policy
from ledger.rejections import Refusal

_HALF_CENT = Decimal(1).scaleb(-USD_SCALE) / 2


@dataclass(frozen=True)
class _Closed:
    market: str
    size: Decimal
    notional: Decimal


def liquidate(
    desk: Desk, account: Account, figures: risk.MarginFigures, trigger: je.LiquidationTrigger
) -> None:
    liquidation_id = f"{desk.cause}:liquidation:{account.account_id}"
    desk.record(
        je.LiquidationTriggered(
            **desk.common(account.account_id),
            liquidation_id=liquidation_id,
            trigger=trigger,
            inputs=desk.inputs(account, figures),
        )
    )
    scratch = _copy(account)
    steps, closed = _plan(desk, scratch)
    planned = _valued(desk, scratch)
    desk.record(
        je.LiquidationCompleted(
            **desk.common(account.account_id),
            liquidation_id=liquidation_id,
            steps=steps,
            figures_after=figures_record(planned),
        )
    )
    after = _valued(desk, account)
    require(after == planned, f"liquidation {liquidation_id} booked other figures than planned")
    if after.equity < ZERO:
        _cover_deficit(desk, account, liquidation_id, closed)


def _valued(desk: Desk, account: Account) -> risk.MarginFigures:
    """The figures of an account being liquidated: it was valued to be liquidated, so
    every asset it holds has a mark. With each position's, so that the booked figures are
    checked against the planned ones position by position."""
    figures = desk.figures(account, with_positions=True)
    if isinstance(figures, Refusal):
        raise InvariantViolation(f"a liquidation met an unvalued account: {figures.detail}")
    return figures


def _plan(desk: Desk, scratch: Account) -> tuple[list[je.LiquidationStep], list[_Closed]]:
    steps: list[je.LiquidationStep] = []
    closed: list[_Closed] = []
    marks = desk.book.marks
    by_notional = sorted(
        scratch.positions.items(), key=lambda item: (-abs(item[1].size) * marks[item[0]], item[0])
    )
    for market, position in by_notional:
        if _restored(desk, scratch):
            return steps, closed
        steps.append(_close_position(desk, scratch, market, position))
        closed.append(_Closed(market, position.size, abs(position.size) * marks[market]))
    if not _restored(desk, scratch):
        cash = scratch.balance(REPORTING_ASSET)
        if cash > ZERO and scratch.loan > ZERO:
            repaid = min(cash, scratch.loan)
            scratch.balances[REPORTING_ASSET] = cash - repaid
            scratch.reduce_loan(repaid)
            steps.append(
                _step(
                    "cash_to_loan",
                    instrument=REPORTING_ASSET,
                    quantity=repaid,
                    price=Decimal(1),
                    proceeds=ZERO,
                    fee=ZERO,
                    loan_repaid=repaid,
                )
            )
    for asset in sorted(
        (a for a, b in scratch.balances.items() if a != REPORTING_ASSET and b > ZERO),
        key=lambda a: (desk.policy.sale_rank(a), a),
    ):
        if _restored(desk, scratch):
            break
        steps.append(_sell_collateral(desk, scratch, asset))
    return steps, closed


def _close_position(
    desk: Desk, scratch: Account, market: str, position: Position
) -> je.LiquidationStep:
    mark = desk.book.marks[market]
    effect = risk.trade_realisation(position.size, position.entry_price, -position.size, mark)
    realised = quantize(effect.realised_pnl, USD_SCALE)
    del scratch.positions[market]
    scratch.balances[REPORTING_ASSET] = scratch.balance(REPORTING_ASSET) + realised
    fee = risk.liquidation_fee(
        abs(position.size) * mark,
        desk.policy.markets[market].liquidation_fee_rate,
        _valued(desk, scratch).equity,
    )
    scratch.balances[REPORTING_ASSET] -= fee
    return _step(
        "close_position",
        instrument=market,
        quantity=position.size,
        price=mark,
        proceeds=realised,
        fee=fee,
        loan_repaid=ZERO,
    )


def _sell_collateral(desk: Desk, scratch: Account, asset: str) -> je.LiquidationStep:
    figures = _valued(desk, scratch)
    mark = desk.book.marks[asset]
    asset_policy = desk.policy.asset(asset)
    held = scratch.balances[asset]
    reduction_per_unit = mark * asset_policy.haircut.initial
    quantity = held
    if reduction_per_unit > ZERO:
        # Half a cent more than the shortfall: rounding the proceeds may cost that much equity.
        shortfall = figures.initial_requirement - figures.equity + _HALF_CENT
        needed = quantize(
            DECIMAL_CONTEXT.divide(shortfall, reduction_per_unit),
            asset_policy.scale,
            Rounding.CEILING,
        )
        quantity = min(held, max(needed, _limit_cure(desk, scratch, asset, mark)))
    proceeds = quantize(quantity * mark, USD_SCALE)
    repaid = min(proceeds, scratch.loan)
    scratch.balances[asset] = held - quantity
    scratch.balances[REPORTING_ASSET] = scratch.balance(REPORTING_ASSET) + proceeds - repaid
    scratch.reduce_loan(repaid)
    return _step(
        "sell_collateral",
        instrument=asset,
        quantity=quantity,
        price=mark,
        proceeds=proceeds,
        fee=ZERO,
        loan_repaid=repaid,
    )


def draw_insurance_fund(
    desk: Desk, account_id: str, liquidation_id: str, wanted: Decimal
) -> Decimal:
    """Draw up to `wanted` from the insurance fund for `account_id`; returns what was drawn
    (never more than the fund holds)."""
    fund = desk.book.accounts[INSURANCE_FUND].balance(REPORTING_ASSET)
    drawn = min(wanted, max(fund, ZERO))
    if drawn > ZERO:
        desk.record(
            je.InsuranceFundDrawn(
                **desk.common(account_id),
                liquidation_id=liquidation_id,
                amount=drawn,
                fund_balance_after=fund - drawn,
            )
        )
    return drawn


def _cover_deficit(
    desk: Desk, account: Account, liquidation_id: str, closed: list[_Closed]
) -> None:
    cash = account.balance(REPORTING_ASSET)
    perps_deficit = max(ZERO, -cash)
    drawn = draw_insurance_fund(desk, account.account_id, liquidation_id, perps_deficit)
    remaining = perps_deficit - drawn
    if remaining > ZERO and closed:
        largest = max(closed, key=lambda c: (c.notional, c.market))
        remaining -= _auto_deleverage(desk, account, liquidation_id, largest, remaining)
    loan_shortfall = account.loan if account.balance(REPORTING_ASSET) <= ZERO else ZERO
    if remaining > ZERO or loan_shortfall > ZERO:
        desk.record(
            je.BadDebtRecorded(
                **desk.common(account.account_id),
                liquidation_id=liquidation_id,
                loan_written_off=loan_shortfall,
                cash_written_off=remaining,
            )
        )


def deleverage_lot(desk: Desk, lot: LiquidationLot, deficit: Decimal) -> Decimal:
    """A venue fill's loss beyond the insurance fund, absorbed by deleveraging what is left
    of the lot: profitable opposite positions take it over at the liquidation account's
    bankruptcy price, `takeover price + deficit / remaining`, the price at which the rest of
    the lot would settle the deficit exactly. Returns what they absorbed."""
    closed = _Closed(lot.instrument, lot.remaining, ZERO)
    liquidation = desk.book.accounts[LIQUIDATION]
    return _auto_deleverage(
        desk, liquidation, lot.liquidation_id, closed, deficit, reference=lot.takeover_price
    )


def _auto_deleverage(
    desk: Desk,
    bankrupt: Account,
    liquidation_id: str,
    closed: _Closed,
    deficit: Decimal,
    *,
    reference: Decimal | None = None,
) -> Decimal:
    """Reduce profitable opposite positions at the bankruptcy price `reference + deficit /
    size` (the reference is the mark, at which the bankrupt's position was closed, unless
    given); returns what they absorbed."""
    mark = desk.book.marks[closed.market]
    base = mark if reference is None else reference
    bankruptcy_price = quantize(
        DECIMAL_CONTEXT.add(base, DECIMAL_CONTEXT.divide(deficit, closed.size)),
        DERIVED_FIGURE_SCALE,
    )
    give_up_per_unit = abs(bankruptcy_price - base)
    if give_up_per_unit.is_zero() or bankruptcy_price <= ZERO:
        return ZERO
    absorbed_total = ZERO
    units_left = abs(closed.size)
    winner_sign = -1 if closed.size > ZERO else 1
    queue = deleveraging_queue(
        desk.book, desk.policy, closed.market, winner_sign, {bankrupt.account_id}
    )
    for number, queued in enumerate(queue, start=1):
        if units_left <= ZERO or absorbed_total >= deficit:
            break
        winner, size = queued.account_id, queued.size
        units = min(abs(size), units_left)
        units_left -= units
        absorbed = min(deficit - absorbed_total, quantize(units * give_up_per_unit, USD_SCALE))
        if units_left <= ZERO:
            absorbed = deficit - absorbed_total
        absorbed_total += absorbed
        change = units if size < ZERO else -units
        desk.record(
            je.AutoDeleveraged(
                **desk.common(winner),
                liquidation_id=liquidation_id,
                bankrupt_account_id=bankrupt.account_id,
                market=closed.market,
                size_reduced=change,
                bankruptcy_price=bankruptcy_price,
                mark_price=mark,
                absorbed=absorbed,
                ranking=ranking_record(queued, number),
            )
        )
    return absorbed_total


@dataclass(frozen=True)
class QueuedPosition:
    account_id: str
    size: Decimal
    entry_price: Decimal
    rank: risk.DeleveragingRank


def deleveraging_queue(
    book: Book, policy: Policy, market: str, winner_sign: int, excluded: Set[str]
) -> list[QueuedPosition]:
    """The profitable positions of `market` on the side of sign `winner_sign` (the opposite
    of the bankrupt's), in auto-deleveraging order: Binance's ranking, PnL ratio times
    effective leverage, highest first (`risk.deleveraging_rank`). `excluded` are the
    bankrupt and the accounts already deleveraged; the liquidation account is never in it."""
    mark = book.marks[market]
    queue: list[QueuedPosition] = []
    for account_id, account in book.accounts.items():
        position = account.positions.get(market)
        if account_id in excluded or account_id == LIQUIDATION or position is None:
            continue
        if (position.size > ZERO) != (winner_sign > 0):
            continue
        if position.size * (mark - position.entry_price) <= ZERO:
            continue
        try:
            equity = risk.margin_figures(
                account.holdings(), book.marks, policy, with_liquidation_prices=False
            ).equity
        except risk.MissingMark:
            equity = ZERO  # an account that cannot be valued has no leverage figure
        rank = risk.deleveraging_rank(position.size, position.entry_price, mark, equity)
        queue.append(QueuedPosition(account_id, position.size, position.entry_price, rank))
    queue.sort(key=lambda queued: queued.rank.queue_key(queued.account_id))
    return queue


def ranking_record(queued: QueuedPosition, number: int) -> je.DeleveragingRank:
    rank = queued.rank
    return je.DeleveragingRank(
        rank=number,
        size=queued.size,
        entry_price=queued.entry_price,
        unrealized_pnl=rank.unrealized_pnl,
        pnl_ratio=rank.pnl_ratio,
        notional=rank.notional,
        equity=rank.equity,
        effective_leverage=rank.effective_leverage,
        score=rank.score,
    )


def _copy(account: Account) -> Account:
    return Account(
        account_id=account.account_id,
        investor_class=account.investor_class,
        credit_limit=account.credit_limit,
        balances=dict(account.balances),
        loan_principal=account.loan_principal,
        loan_interest=account.loan_interest,
        positions={m: Position(p.size, p.entry_price) for m, p in account.positions.items()},
        margin_call=account.margin_call,
    )


def _restored(desk: Desk, scratch: Account) -> bool:
    figures = _valued(desk, scratch)
    if figures.equity < figures.initial_requirement:
        return False
    return not _cures_limits(scratch) or limit_breach(desk, scratch) is None


def _cures_limits(scratch: Account) -> bool:
    call = scratch.margin_call
    return call is not None and call.trigger != EQUITY_CALL_TRIGGER


def _limit_cure(desk: Desk, scratch: Account, asset: str, mark: Decimal) -> Decimal:
    """Units of `asset` whose sale brings the loan back within the limit a call names.

    Each unit sold repays `mark` of the loan; against the lending value it also takes
    `mark * (1 - haircut_initial)` of lending value away, so the gap closes by
    `mark * haircut_initial` (by `mark` for an asset that lends nothing)."""
    breach = limit_breach(desk, scratch) if _cures_limits(scratch) else None
    if breach is None:
        return ZERO
    asset_policy = desk.policy.asset(asset)
    per_unit = mark
    lends = asset_policy.eligible and asset not in CASH_ASSETS
    if breach.trigger == "lending_value_exceeded" and lends:
        per_unit = mark * asset_policy.haircut.initial
    if per_unit.is_zero():
        return ZERO  # selling an asset without haircut leaves the gap where it is
    gap = breach.loan - breach.limit + _HALF_CENT
    return quantize(DECIMAL_CONTEXT.divide(gap, per_unit), asset_policy.scale, Rounding.CEILING)


def _step(
    kind: je.LiquidationStepKind,
    *,
    instrument: str,
    quantity: Decimal,
    price: Decimal,
    proceeds: Decimal,
    fee: Decimal,
    loan_repaid: Decimal,
) -> je.LiquidationStep:
    return je.LiquidationStep(
        kind=kind,
        instrument=instrument,
        quantity=quantity,
        price=price,
        proceeds=proceeds,
        fee=fee,
        loan_repaid=loan_repaid,
    )
