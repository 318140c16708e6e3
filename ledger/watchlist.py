"""Which accounts a new mark can move across a margin boundary, without revaluing them all.

After each evaluation an account gets, for every instrument it holds, a price band within
which its status cannot change: nine tenths of the distance to the nearest boundary
(`slack`, in USD) are split evenly between the instruments it holds, and each instrument's
share divided by the most the account's slack can move per unit of that price. Moves inside
every band change the slack by less than those nine tenths, so a mark inside its band needs
no revaluation (nor does a debit within the tenth left: `still_healthy`); a mark outside it
revalues the account. The result equals revaluing every holder on every mark, at the cost
of a heap operation per mark. Open margin calls are kept by deadline, so the first input
at or after a deadline finds them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext

import msgspec

from ledger import risk
from ledger.book import Account
from ledger.invariants import InvariantViolation
from ledger.money import DECIMAL_CONTEXT, ONE, REPORTING_ASSET, ZERO
from ledger.policy import MarketPolicy, Policy

# Stale heap entries (superseded bands) are dropped once they outnumber live ones by this.
stale_band_entries_ratio_max = 4
# The share of an account's slack its bands leave unused: a debit of USD or a loan smaller
# than it (a funding payment) leaves a healthy account healthy without revaluing it.
band_slack_reserve_ratio = Decimal("0.1")
_UNBOUNDED = Decimal("Infinity")


@dataclass
class _Bands:
    below: list[tuple[Decimal, int, str]] = field(default_factory=list)  # (-low, gen, account)
    above: list[tuple[Decimal, int, str]] = field(default_factory=list)  # (high, gen, account)


# What a healthy account's bands were set on besides its USD and its loan: its other
# balances and its positions (market, size, entry price).
_HeldState = tuple[tuple[tuple[str, Decimal], ...], tuple[tuple[str, Decimal, Decimal], ...]]


class _HealthyWatch(msgspec.Struct, frozen=True):  # made on every review: a fast init
    generation: int
    usd: Decimal
    loan: Decimal
    reserve: Decimal  # the slack the bands leave unused, in USD
    held: _HeldState


@dataclass
class Watchlist:
    policy: Policy
    bands: dict[str, _Bands] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    deadlines: list[tuple[datetime, str, str]] = field(default_factory=list)
    steepest: dict[str, Decimal] = field(default_factory=dict)  # per market, from the policy
    # Accounts whose margin decision waits for a fresh mark, by the stale instrument.
    waiting: dict[str, set[str]] = field(default_factory=dict)
    # What each account held when it was last watched healthy.
    healthy: dict[str, _HealthyWatch] = field(default_factory=dict)

    def watch(
        self, account: Account, figures: risk.MarginFigures, marks: dict[str, Decimal]
    ) -> None:
        """Record the bands of an account just evaluated at `marks`."""
        account_id = account.account_id
        generation = self.generation.get(account_id, 0) + 1
        self.generation[account_id] = generation
        slack = _slack(figures)
        reserve = DECIMAL_CONTEXT.multiply(slack, band_slack_reserve_ratio)
        if figures.status is risk.MarginStatus.HEALTHY:
            usd = account.balances.get(REPORTING_ASSET, ZERO)
            self.healthy[account_id] = _HealthyWatch(
                generation, usd, account.loan, reserve, _held_state(account)
            )
        exposures = self._exposures(account, marks)
        if not exposures:
            return
        share = DECIMAL_CONTEXT.divide(slack - reserve, Decimal(len(exposures)))
        for instrument, sensitivity, bracket in exposures:
            mark = marks[instrument]
            width = DECIMAL_CONTEXT.divide(share, sensitivity)
            low, high = mark - width, mark + width
            if bracket is not None:
                low, high = max(low, bracket[0]), min(high, bracket[1])
            bands = self.bands.get(instrument)
            if bands is None:
                bands = self.bands[instrument] = _Bands()
            heapq.heappush(bands.below, (-low, generation, account_id))
            heapq.heappush(bands.above, (high, generation, account_id))
            self._compact(bands)

    def forget(self, account_id: str) -> None:
        self.generation[account_id] = self.generation.get(account_id, 0) + 1

    def still_healthy(self, account: Account) -> bool:
        """Whether the account is healthy without revaluing it: its current bands were set
        while it was healthy, and since then only its USD and its loan moved, shrinking its
        slack by no more than the reserve its bands left unused (or growing it).

        A mark outside a band revalues the account at that mark's input, so between inputs
        every mark lies inside its current bands. USD moving by `dU` and the loan by `dL`
        move the equity by `dU - dL` and the maintenance requirement by
        `h * (max(U, 0) - max(U_before, 0))` (`h`: USD's maintenance haircut), at every
        price alike: while the slack shrank by no more than the reserve the bands left
        unused, the bands still hold."""
        watched = self.healthy.get(account.account_id)
        if watched is None or watched.generation != self.generation.get(account.account_id):
            return False
        usd = account.balances.get(REPORTING_ASSET, ZERO)
        haircut = self.policy.asset(REPORTING_ASSET).haircut.maintenance
        with localcontext(DECIMAL_CONTEXT):
            equity_moved = (usd - watched.usd) - (account.loan - watched.loan)
            requirement_moved = haircut * (max(usd, ZERO) - max(watched.usd, ZERO))
            shrunk = requirement_moved - equity_moved
        return shrunk <= watched.reserve and watched.held == _held_state(account)

    def crossed(self, instrument: str, price: Decimal) -> list[str]:
        """Accounts whose band for `instrument` no longer holds `price`, in account order."""
        bands = self.bands.get(instrument)
        if bands is None:
            return []
        found: set[str] = set()
        while bands.below and -bands.below[0][0] > price:
            _, generation, account_id = heapq.heappop(bands.below)
            if self.generation.get(account_id) == generation:
                found.add(account_id)
        while bands.above and bands.above[0][0] < price:
            _, generation, account_id = heapq.heappop(bands.above)
            if self.generation.get(account_id) == generation:
                found.add(account_id)
        return sorted(found)

    def wait_for_marks(self, account_id: str, instruments: list[str]) -> None:
        for instrument in instruments:
            self.waiting.setdefault(instrument, set()).add(account_id)

    def fresh_mark(self, instrument: str) -> list[str]:
        """The accounts that waited for a fresh mark of `instrument`, in account order."""
        return sorted(self.waiting.pop(instrument, ()))

    def expect_deadline(self, deadline: datetime, account_id: str, call_id: str) -> None:
        heapq.heappush(self.deadlines, (deadline, account_id, call_id))

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """(account, call) pairs whose deadline is at or before `now`, oldest first."""
        due: list[tuple[str, str]] = []
        while self.deadlines and self.deadlines[0][0] <= now:
            _, account_id, call_id = heapq.heappop(self.deadlines)
            due.append((account_id, call_id))
        return due

    def _exposures(
        self, account: Account, marks: dict[str, Decimal]
    ) -> list[tuple[str, Decimal, tuple[Decimal, Decimal] | None]]:
        """(instrument, most |d slack / d price|, price bracket of the current tier).

        Unordered: which bands hold is independent of the order they are pushed in, and
        `crossed` sorts what it finds."""
        exposures: list[tuple[str, Decimal, tuple[Decimal, Decimal] | None]] = [
            (asset, abs(balance), None)
            for asset, balance in account.balances.items()
            if asset != REPORTING_ASSET and not balance.is_zero()
        ]
        for market, position in account.positions.items():
            market_policy = self.policy.markets[market]
            size = abs(position.size)
            bracket = _tier_bracket(market_policy, size, marks[market])
            exposures.append((market, size * self._steepest(market_policy), bracket))
        return exposures

    def _steepest(self, market_policy: MarketPolicy) -> Decimal:
        """1 + the highest maintenance rate: how fast a price can move a position's slack."""
        steepest = self.steepest.get(market_policy.market)
        if steepest is None:
            rates = (tier.maintenance_rate for tier in market_policy.tiers)
            steepest = self.steepest[market_policy.market] = ONE + max(rates)
        return steepest

    def _compact(self, bands: _Bands) -> None:
        # At most one live entry per watched account: past that bound, most are stale.
        if len(bands.above) > stale_band_entries_ratio_max * max(len(self.generation), 64):
            bands.above = [e for e in bands.above if self.generation.get(e[2]) == e[1]]
            bands.below = [e for e in bands.below if self.generation.get(e[2]) == e[1]]
            heapq.heapify(bands.above)
            heapq.heapify(bands.below)


def _held_state(account: Account) -> _HeldState:
    # Lists made into tuples: a third faster than tuples of generators, and this runs for
    # every holder a funding pays (`still_healthy`).
    return (
        tuple([(a, b) for a, b in account.balances.items() if a != REPORTING_ASSET]),
        tuple([(m, p.size, p.entry_price) for m, p in account.positions.items()]),
    )


def _slack(figures: risk.MarginFigures) -> Decimal:
    """How far the equity is from the nearest boundary that would change the status."""
    equity = figures.equity
    if figures.status is risk.MarginStatus.HEALTHY:
        return max(ZERO, equity - figures.maintenance_requirement)
    if figures.status is risk.MarginStatus.MARGIN_CALL:
        return max(
            ZERO,
            min(equity - figures.liquidation_requirement, figures.maintenance_requirement - equity),
        )
    return ZERO


def _tier_bracket(
    market_policy: MarketPolicy, size: Decimal, mark: Decimal
) -> tuple[Decimal, Decimal]:
    """Prices between which the position's notional stays in its current maintenance tier.

    Within a tier the maintenance margin is linear in the price; a policy whose tiers are
    not continuous may jump at a boundary, so a band never crosses one.
    """
    notional = size * mark
    floor = ZERO
    for tier in market_policy.tiers:
        if tier.up_to is None or notional <= tier.up_to:
            ceiling = tier.up_to
            low = DECIMAL_CONTEXT.divide(floor, size)
            high = DECIMAL_CONTEXT.divide(ceiling, size) if ceiling is not None else _UNBOUNDED
            return low, high
        floor = tier.up_to
    raise InvariantViolation(f"{market_policy.market} has no tier for notional {notional}")
