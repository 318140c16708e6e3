"""The formulas of docs/risk-model.md, as pure functions over plain values.

No I/O, no state, no clock: the ledger's decisions (withdrawals, loan draws, margin calls,
liquidations) are built on these, and an auditor can recompute every figure from the
journal with them.

Notation of docs/risk-model.md "Valuation": balances `b[a]`, marks `m[a]` (USD per unit,
`m[USD] = 1`), loan `L` (principal plus accrued interest), positions `p` with signed size
`s`, entry price `e` and market mark `M`.

Arithmetic runs in `money.DECIMAL_CONTEXT` whatever the caller's context. Figures keep full
precision (sums and products of the inputs, exact within the context's 60 digits), except:

- `margin_level`, `ltv` and `liquidation_price`: rounded half-even to
  `money.DERIVED_FIGURE_SCALE` (8) places, from the exact quotient (no double rounding);
- `funding_payments` and `daily_interest`: booked amounts, rounded half-even to the asset's
  scale, from the exact product or quotient;
- the entry price after an increase: a volume-weighted mean, a quotient rounded to the
  context's 60 significant digits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, Rounded, localcontext
from enum import StrEnum

import msgspec

from ledger.money import (
    DECIMAL_CONTEXT,
    DERIVED_FIGURE_SCALE,
    ENTRY_PRICE_SCALE,
    ONE,
    REPORTING_ASSET,
    USD_SCALE,
    ZERO,
    Rounding,
    quantize,
)
from ledger.policy import CASH_ASSETS, MarketPolicy, Policy

# Sums and products only, never a division: wide enough for any figure of the ledger, and a
# lost digit raises instead of deciding on a rounded number.
_EXACT_CONTEXT = Context(prec=400, Emin=-999999, Emax=999999, traps=[Inexact, Rounded])


class MissingMark(KeyError):
    """A held asset or an open position's market has no mark price; `args[0]` names it."""

    def __init__(self, instrument: str) -> None:
        super().__init__(instrument)
        self.instrument = instrument

    def __str__(self) -> str:
        return f"{self.instrument} has no mark price"


class MarginStatus(StrEnum):
    """docs/risk-model.md "Rules": `E >= maintenance_requirement` healthy;
    `liquidation_requirement <= E < maintenance_requirement` margin call;
    `E < liquidation_requirement` liquidating."""

    HEALTHY = "healthy"
    MARGIN_CALL = "margin_call"
    LIQUIDATING = "liquidating"


# The value types below are frozen msgspec Structs rather than frozen dataclasses: a margin
# review makes several per account, and a frozen dataclass sets each field through
# object.__setattr__ (MarginFigures: about 5x slower to make).


class PositionHolding(msgspec.Struct, frozen=True):
    """A one-way perpetual position: signed `size` (long > 0, short < 0), `entry_price`."""

    market: str
    size: Decimal
    entry_price: Decimal


class AccountHoldings(msgspec.Struct, frozen=True):
    """What an account holds: `balances` by asset (may include zeros and negatives),
    `loan` = principal plus accrued interest (USD), and its open positions."""

    balances: Mapping[str, Decimal]
    loan: Decimal
    positions: tuple[PositionHolding, ...]


class PositionFigures(msgspec.Struct, frozen=True):
    market: str
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal  # U_p = s * (M - e)
    notional: Decimal  # N_p = |s| * M
    initial_margin: Decimal  # IM_p = N_p * imr
    maintenance_margin: Decimal  # MM_p = N_p * mmr_tier - maintenance_amount_tier
    liquidation_price: Decimal | None  # M at which E = liquidation_requirement; 8 places


class MarginFigures(msgspec.Struct, frozen=True):
    """Every figure of docs/risk-model.md "Valuation" for one account, in USD."""

    market_value: Decimal  # sum_a b[a] * m[a], every asset, negative balances included
    eligible_collateral_value: Decimal  # sum over eligible a with b[a] > 0 of b[a] * m[a]
    unrealized_pnl: Decimal  # sum_p U_p
    loan: Decimal  # L
    equity: Decimal  # E = market_value + unrealized_pnl - L
    haircut_initial: Decimal  # H_initial = sum over b[a] > 0 of b[a] * m[a] * haircut_initial[a]
    haircut_maintenance: Decimal  # H_maintenance
    haircut_liquidation: Decimal  # H_liquidation
    initial_requirement: Decimal  # H_initial + sum_p IM_p
    maintenance_requirement: Decimal  # H_maintenance + sum_p MM_p
    liquidation_requirement: Decimal  # H_liquidation + sum_p MM_p
    excess: Decimal  # E - maintenance_requirement
    available: Decimal  # E - initial_requirement
    status: MarginStatus
    positions: tuple[PositionFigures, ...]  # empty when not asked for (`margin_figures`)

    # The two exact quotients are computed when read: a margin review reads neither, only
    # a decision's journal record and the reports do.
    @property
    def margin_level(self) -> Decimal | None:
        """E / maintenance_requirement; None when it is 0."""
        return _derived_ratio(self.equity, self.maintenance_requirement)

    @property
    def ltv(self) -> Decimal | None:
        """L / eligible_collateral_value; None when it is 0."""
        return _derived_ratio(self.loan, self.eligible_collateral_value)


class TradeEffect(msgspec.Struct, frozen=True):
    """What a perpetual trade does to a one-way position.

    `closed_size` carries the sign of the old position (the part of it closed) and
    `opened_size` the sign of the new one (the part opened), so that
    `new_size == size - closed_size + opened_size` and
    `realised_pnl == closed_size * (price - entry_price)`."""

    new_size: Decimal
    new_entry_price: Decimal  # 0 when the position is flat
    realised_pnl: Decimal  # full precision: the caller rounds it to USD when booking
    closed_size: Decimal
    opened_size: Decimal


class _PositionTerms(msgspec.Struct, frozen=True):
    holding: PositionHolding
    market: MarketPolicy
    mark: Decimal
    unrealized_pnl: Decimal
    notional: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal


def _mark(marks: Mapping[str, Decimal], instrument: str) -> Decimal:
    """`m[USD] = 1` always; any other instrument must have a mark."""
    if instrument == REPORTING_ASSET:
        return ONE
    mark = marks.get(instrument)
    if mark is None:
        raise MissingMark(instrument)
    return mark


def maintenance_margin(notional: Decimal, market: MarketPolicy) -> Decimal:
    """`MM_p = N_p * mmr_tier - maintenance_amount_tier`, the tier whose bracket holds `N_p`
    (the first with `N_p <= up_to`; the last tier has no `up_to`)."""
    tier = market.tier(notional)
    with localcontext(DECIMAL_CONTEXT):
        return notional * tier.maintenance_rate - tier.maintenance_amount


def margin_figures(
    holdings: AccountHoldings,
    marks: Mapping[str, Decimal],
    policy: Policy,
    *,
    with_liquidation_prices: bool = True,
    with_positions: bool = True,
) -> MarginFigures:
    """Every figure of docs/risk-model.md "Valuation":

    `E = sum_a b[a] * m[a] + sum_p U_p - L`;
    `H_x = sum over b[a] > 0 of b[a] * m[a] * haircut_x[a]` for x in initial, maintenance,
    liquidation (haircut 1 for an asset the policy does not list);
    `initial_requirement = H_initial + sum_p IM_p`,
    `maintenance_requirement = H_maintenance + sum_p MM_p`,
    `liquidation_requirement = H_liquidation + sum_p MM_p`;
    `excess = E - maintenance_requirement`, `available = E - initial_requirement`,
    `margin_level = E / maintenance_requirement`, `ltv = L / eligible collateral value`.

    `marks` holds USD per unit of each asset and each market's mark; `marks["USD"]` is
    ignored (it is 1). Zero balances and zero-size positions are skipped and need no mark.
    Raises `MissingMark` for a held asset or an open position's market without a mark, and
    KeyError for a position in a market the policy does not list.

    Without `with_positions`, `positions` is empty: the account's figures alone, which is
    all a margin review reads (a fifth of a review's valuation went to the per-position
    records it never looked at).
    """
    with localcontext(DECIMAL_CONTEXT):
        market_value, eligible_value, h_initial, h_maintenance, h_liquidation = _value_balances(
            holdings.balances, marks, policy
        )
        terms = _position_terms(holdings.positions, marks, policy)
        unrealized_pnl = initial_margin = total_maintenance_margin = ZERO
        for term in terms:
            unrealized_pnl += term.unrealized_pnl
            initial_margin += term.initial_margin
            total_maintenance_margin += term.maintenance_margin
        loan = holdings.loan
        equity = market_value + unrealized_pnl - loan
        initial_requirement = h_initial + initial_margin
        maintenance_requirement = h_maintenance + total_maintenance_margin
        liquidation_requirement = h_liquidation + total_maintenance_margin
        positions = (
            tuple(
                _position_figures(term, equity, liquidation_requirement, with_liquidation_prices)
                for term in terms
            )
            if with_positions
            else ()
        )
    return MarginFigures(
        market_value=market_value,
        eligible_collateral_value=eligible_value,
        unrealized_pnl=unrealized_pnl,
        loan=loan,
        equity=equity,
        haircut_initial=h_initial,
        haircut_maintenance=h_maintenance,
        haircut_liquidation=h_liquidation,
        initial_requirement=initial_requirement,
        maintenance_requirement=maintenance_requirement,
        liquidation_requirement=liquidation_requirement,
        excess=equity - maintenance_requirement,
        available=equity - initial_requirement,
        status=margin_status(equity, maintenance_requirement, liquidation_requirement),
        positions=positions,
    )


def margin_status(
    equity: Decimal, maintenance_requirement: Decimal, liquidation_requirement: Decimal
) -> MarginStatus:
    """Healthy at or above the maintenance requirement, liquidating below the liquidation
    requirement, a margin call in between."""
    if equity >= maintenance_requirement:
        return MarginStatus.HEALTHY
    if equity >= liquidation_requirement:
        return MarginStatus.MARGIN_CALL
    return MarginStatus.LIQUIDATING


def margin_call_amount(figures: MarginFigures) -> Decimal:
    """`maintenance_requirement - E`, rounded UP to the USD scale: a client who pays the
    amount asked is healthy again, never short by a fraction of a cent. Positive only under
    a margin call or liquidation (the caller issues a call only when it is)."""
    with localcontext(DECIMAL_CONTEXT):
        shortfall = figures.maintenance_requirement - figures.equity
    return quantize(shortfall, USD_SCALE, Rounding.CEILING)


def liquidation_fee(notional: Decimal, fee_rate: Decimal, equity_left: Decimal) -> Decimal:
    """The fee of closing a position in a liquidation: `N * liquidation_fee_rate`, rounded
    half-even to the USD scale, capped at the equity the account has left once the position
    is closed (rounded down to the cent, never below 0). A fee the account cannot pay would
    only be paid by the insurance fund, to itself: an account with no equity left pays none."""
    with localcontext(DECIMAL_CONTEXT):
        fee = quantize(notional * fee_rate, USD_SCALE)
    payable = quantize(equity_left, USD_SCALE, Rounding.FLOOR)
    return quantize(max(ZERO, min(fee, payable)), USD_SCALE)


@dataclass(frozen=True, slots=True)
class DeleveragingRank:
    """Where a profitable position stands in the auto-deleveraging queue (Binance's
    ranking): `score = pnl_ratio * effective_leverage`, highest first."""

    unrealized_pnl: Decimal  # U = s * (M - e)
    pnl_ratio: Decimal  # U / (|s| * e), 8 places
    notional: Decimal  # N = |s| * M
    equity: Decimal  # E of the whole account
    effective_leverage: Decimal | None  # N / E, 8 places; None when E <= 0
    score: Decimal | None  # pnl_ratio * effective_leverage, 8 places; None when E <= 0

    def queue_key(self, account_id: str) -> tuple[bool, Decimal, Decimal, str]:
        """Highest score first; a position without one (its account has no positive
        equity) after every scored one, by PnL ratio; then by account id."""
        return (self.score is None, -(self.score or ZERO), -self.pnl_ratio, account_id)


def deleveraging_rank(
    size: Decimal, entry_price: Decimal, mark: Decimal, equity: Decimal
) -> DeleveragingRank:
    """The auto-deleveraging rank of a position in profit (`U > 0`):

    `pnl_ratio = U / (|s| * e)`, the profit per unit of what the position cost;
    `effective_leverage = N / E`, the position's notional over its account's equity (the
    cross-margined analogue of Binance's `mark value / (mark value - bankruptcy value)`);
    `score = pnl_ratio * effective_leverage`. Ratios are rounded half-even to 8 places,
    the score from the rounded ratios, so an auditor recomputes it from the journal."""
    with localcontext(DECIMAL_CONTEXT):
        unrealized = size * (mark - entry_price)
        notional = abs(size) * mark
    pnl_ratio = _derived_ratio_at(unrealized, abs(size) * entry_price, DERIVED_FIGURE_SCALE)
    if equity <= ZERO:
        return DeleveragingRank(unrealized, pnl_ratio, notional, equity, None, None)
    leverage = _derived_ratio_at(notional, equity, DERIVED_FIGURE_SCALE)
    score = quantize(pnl_ratio * leverage, DERIVED_FIGURE_SCALE)
    return DeleveragingRank(unrealized, pnl_ratio, notional, equity, leverage, score)


def _value_balances(
    balances: Mapping[str, Decimal], marks: Mapping[str, Decimal], policy: Policy
) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(market value, eligible collateral value, H_initial, H_maintenance, H_liquidation);
    runs inside DECIMAL_CONTEXT."""
    market_value = eligible_value = h_initial = h_maintenance = h_liquidation = ZERO
    for asset, amount in balances.items():
        if amount.is_zero():
            continue
        value = amount * _mark(marks, asset)
        market_value += value
        if amount > ZERO:
            asset_policy = policy.asset(asset)
            haircut = asset_policy.haircut
            if asset_policy.eligible:
                eligible_value += value
            h_initial += value * haircut.initial
            h_maintenance += value * haircut.maintenance
            h_liquidation += value * haircut.liquidation
    return market_value, eligible_value, h_initial, h_maintenance, h_liquidation


def _position_terms(
    positions: tuple[PositionHolding, ...], marks: Mapping[str, Decimal], policy: Policy
) -> list[_PositionTerms]:
    """U_p, N_p, IM_p and MM_p of each open position; runs inside DECIMAL_CONTEXT."""
    terms: list[_PositionTerms] = []
    for holding in positions:
        size = holding.size
        if size.is_zero():
            continue
        market = policy.market(holding.market)
        mark = _mark(marks, holding.market)
        notional = abs(size) * mark
        tier = market.tier(notional)
        terms.append(
            _PositionTerms(
                holding=holding,
                market=market,
                mark=mark,
                unrealized_pnl=size * (mark - holding.entry_price),
                notional=notional,
                initial_margin=notional * market.initial_margin_rate,
                maintenance_margin=notional * tier.maintenance_rate - tier.maintenance_amount,
            )
        )
    return terms


def _position_figures(
    term: _PositionTerms,
    equity: Decimal,
    liquidation_requirement: Decimal,
    with_liquidation_price: bool,
) -> PositionFigures:
    holding = term.holding
    return PositionFigures(
        market=holding.market,
        size=holding.size,
        entry_price=holding.entry_price,
        mark_price=term.mark,
        unrealized_pnl=term.unrealized_pnl,
        notional=term.notional,
        initial_margin=term.initial_margin,
        maintenance_margin=term.maintenance_margin,
        liquidation_price=_solve_liquidation_price(
            holding.size,
            holding.entry_price,
            equity - term.unrealized_pnl,
            liquidation_requirement - term.maintenance_margin,
            term.market,
        )
        if with_liquidation_price
        else None,
    )


def _solve_liquidation_price(
    size: Decimal,
    entry_price: Decimal,
    equity_without: Decimal,
    requirement_without: Decimal,
    market: MarketPolicy,
) -> Decimal | None:
    """Solve `E(P) = LR(P)` for the mark `P` of one position, exactly.

    With `C` the equity and `K` the liquidation requirement of everything but this position,
    within a tier (rate `r`, amount `a`) whose bracket (previous `up_to`, `up_to`] holds
    `N = |s| * P`:

        E(P)  = C + s * (P - e)
        LR(P) = K + |s| * P * r - a
        E(P) = LR(P)  <=>  P = (K - a - C + s * e) / (s - |s| * r)

    The denominator is `s * (1 - r) > 0` for a long and `s * (1 + r) < 0` for a short, never
    0, since `0 < r < 1`. A candidate counts only if `P > 0` and `N` lies in the tier's own
    bracket. `E - LR` is strictly monotonic in `P` (the policy loader makes MM continuous),
    so at most one tier yields a solution.

    No division until the end: with the denominator made positive, `P > 0` is `X > 0` and
    the bracket test `lower < |s| * X / D <= up_to` is `lower * D < |s| * X <= up_to * D`,
    in `_EXACT_CONTEXT` (a digit lost would raise), so a solution exactly on a tier boundary
    is found; then `X / D` is rounded half-even to 8 places once.
    """
    with localcontext(_EXACT_CONTEXT):
        quantity = abs(size)
        constant = requirement_without - equity_without + size * entry_price
        lower = ZERO
        for tier in market.tiers:
            numerator = constant - tier.maintenance_amount
            denominator = size - quantity * tier.maintenance_rate
            if denominator < ZERO:
                numerator, denominator = -numerator, -denominator
            scaled_notional = quantity * numerator  # notional * denominator
            upper = tier.up_to
            if (
                numerator > ZERO
                and scaled_notional > lower * denominator
                and (upper is None or scaled_notional <= upper * denominator)
            ):
                return _derived_ratio_at(numerator, denominator, DERIVED_FIGURE_SCALE)
            if upper is None:
                break
            lower = upper
    return None


def lending_value(
    balances: Mapping[str, Decimal], marks: Mapping[str, Decimal], policy: Policy
) -> Decimal:
    """The lending value of docs/risk-model.md "Rules", what a margin loan may reach:
    `sum over non-cash eligible collateral (b[a] > 0) of b[a] * m[a] * (1 - haircut_initial[a])`
    (one does not borrow against borrowed cash). Cash is USD and HKD;
    ineligible assets (USDT, anything the policy does not list) count nothing.
    Raises `MissingMark` for such collateral without a mark."""
    total = ZERO
    with localcontext(DECIMAL_CONTEXT):
        for asset, amount in balances.items():
            if amount <= ZERO or asset in CASH_ASSETS:
                continue
            asset_policy = policy.asset(asset)
            if asset_policy.eligible:
                total += amount * _mark(marks, asset) * (ONE - asset_policy.haircut.initial)
    return total


def funding_payments(
    sizes: Mapping[str, Decimal], mark: Decimal, rate: Decimal, scale: int
) -> tuple[dict[str, Decimal], Decimal]:
    """Funding of one market at one `funding_rate` (docs/risk-model.md "Rules").

    Each position PAYS `s * M * f`, rounded half-even to `scale` (the settlement asset's).
    Sign convention: an amount is what is DEBITED from the account; positive means it pays,
    negative means it receives. So when `f > 0` longs (`s > 0`) pay and shorts receive.

    Returns `(payments, residue)`: `payments` maps each account with a non-zero size, in
    sorted account order, to its amount; `residue` is what the house account is debited in
    the same convention (negative: the house is credited), so that
    `sum(payments.values()) + residue == 0` exactly. When the sizes net to zero the residue
    is only the rounding; otherwise it also carries the net of the unbalanced side.
    """
    payments: dict[str, Decimal] = {}
    total = ZERO
    with localcontext(DECIMAL_CONTEXT):
        per_unit = mark * rate
        for account in sorted(sizes):
            size = sizes[account]
            if size.is_zero():
                continue
            amount = quantize(size * per_unit, scale)
            if amount.is_zero():
                amount = abs(amount)  # -0.00 is written 0.00
            payments[account] = amount
            total += amount
        residue = ZERO - total  # 0 - 0 is +0 under half-even: never -0
    return payments, residue


def daily_interest(principal: Decimal, policy: Policy) -> Decimal:
    """A day's interest on the loan principal: `L_principal * annual_rate / day_count`,
    rounded half-even to the USD scale of the policy (from the exact quotient)."""
    with localcontext(DECIMAL_CONTEXT):
        yearly = principal * policy.loan_annual_rate
    return _derived_ratio_at(
        yearly, Decimal(policy.loan_day_count), policy.asset(REPORTING_ASSET).scale
    )


def mark_moved_beyond(previous: Decimal, price: Decimal, alert_move: Decimal) -> bool:
    """Whether a mark moved more than the fraction `alert_move` from the previous one:
    `|price - previous| > previous * alert_move` (compared exactly, without dividing)."""
    with localcontext(DECIMAL_CONTEXT):
        return abs(price - previous) > previous * alert_move


def interest_for_days(principals: Iterable[Decimal], policy: Policy) -> Decimal:
    """Interest for consecutive calendar days, one principal each (the principal at that
    day's end): each day's `daily_interest`, rounded as a single day is, then summed."""
    return sum((daily_interest(principal, policy) for principal in principals), ZERO)


def trade_realisation(
    size: Decimal, entry_price: Decimal, side_quantity: Decimal, price: Decimal
) -> TradeEffect:
    """A perpetual trade of signed `side_quantity` (+ buy, - sell) at `price` on a one-way
    position of signed `size` at `entry_price` (docs/risk-model.md "Rules", perp trades):

    - opening or increasing: `new_e = (s * e + q * price) / (s + q)`, volume-weighted;
    - reducing or closing: realises `closed * (price - e)` with `closed = -q` (the sign of
      the position: a long sold above its entry gains, a short bought back above it loses);
      the entry price stays (0 once flat);
    - flipping: closes all of `s` (realising `s * (price - e)`) and opens `s + q` at `price`.

    Realised PnL is full precision; the caller rounds it when booking.
    """
    with localcontext(DECIMAL_CONTEXT):
        new_size = size + side_quantity
        if side_quantity.is_zero():
            return TradeEffect(size, entry_price, ZERO, ZERO, ZERO)
        if size.is_zero():
            return TradeEffect(new_size, price, ZERO, ZERO, side_quantity)
        if (size > ZERO) == (side_quantity > ZERO):
            # A volume-weighted price rarely terminates: it is kept to ENTRY_PRICE_SCALE places
            # (half-even), so journal records stay exact and readable.
            new_entry = quantize(
                (size * entry_price + side_quantity * price) / new_size, ENTRY_PRICE_SCALE
            )
            return TradeEffect(new_size, new_entry, ZERO, ZERO, side_quantity)
        if abs(side_quantity) <= abs(size):
            closed = -side_quantity
            kept_entry = ZERO if new_size.is_zero() else entry_price
            return TradeEffect(new_size, kept_entry, closed * (price - entry_price), closed, ZERO)
        return TradeEffect(new_size, price, size * (price - entry_price), size, new_size)


def _derived_ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """`numerator / denominator` rounded half-even to 8 places; None when dividing by 0."""
    if denominator.is_zero():
        return None
    return _derived_ratio_at(numerator, denominator, DERIVED_FIGURE_SCALE)


def _derived_ratio_at(numerator: Decimal, denominator: Decimal, scale: int) -> Decimal:
    """The exact quotient of two finite decimals, rounded half-even to `scale` places."""
    top, top_denominator = numerator.as_integer_ratio()
    bottom, bottom_denominator = denominator.as_integer_ratio()
    return _round_fraction(top * bottom_denominator, top_denominator * bottom, scale)


def _round_fraction(numerator: int, denominator: int, scale: int) -> Decimal:
    """`numerator / denominator` (denominator non-zero) rounded half-even to `scale` places,
    in integers: no intermediate rounding."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator * 10**scale, denominator)  # floor, remainder >= 0
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return Decimal(quotient).scaleb(-scale, DECIMAL_CONTEXT)
