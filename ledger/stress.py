"""Stress tests: what the ledger would do if marks moved by a shock, decided on a copy.

A shock moves marks by relative amounts (`BTC=-30%`). `stress` copies the book
(`ledger/scratch.py`), applies one `mark_price` input per shocked instrument at the book's
clock and then reviews every client on all of them at once (`decide_marks_together`), with
the ledger's own decision code, so every margin call, liquidation, insurance-fund draw,
auto-deleveraging and bad debt is the one the ledger would record had the marks moved at
one moment; then it reads those journal events back into a report. The ledger's book and
the store are never touched.

A shock named for an asset also moves the perpetual market on it (`BTC` moves `BTC` and
`BTC-PERP`), unless the shock names the market itself. An instrument without a mark is left
as it is. A shocked price is rounded half-even to the inbox's price places.

`ladder` runs a stress per rung of a range of moves (`BTC=-5%..-60%`, 5 points apart) and
names the first rung at which the insurance fund is exhausted: a perpetuals deficit is left
that the fund could not cover (auto-deleveraging or written-off cash), or the fund is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext

from ledger import inbox
from ledger import journal_events as je
from ledger.book import INSURANCE_FUND, Book
from ledger.decisions import decide_marks_together
from ledger.invariants import present
from ledger.limits import price_decimal_places_max
from ledger.money import DECIMAL_CONTEXT, ONE, REPORTING_ASSET, ZERO, format_decimal, quantize
from ledger.policy import Policy
from ledger.scratch import scratch_desk

PERCENT = Decimal(100)
PERP_SUFFIX = "-PERP"
ladder_rungs_max = 200
shock_moves_max = 32
# The clock of a stress on a book that has decided nothing (no marks, so nothing moves).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MOVE = re.compile(r"^(?P<name>[A-Z][A-Z0-9:-]{0,31})=(?P<move>[-+]?\d+(\.\d+)?)%$")
_RANGE = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9:-]{0,31})=(?P<start>[-+]?\d+(\.\d+)?)%\.\.(?P<end>[-+]?\d+(\.\d+)?)%$"
)


class ShockError(ValueError):
    """A shock or ladder written wrongly; the message says how to write it."""


@dataclass(frozen=True)
class Shock:
    """Relative mark moves, in the order written: `(("BTC", Decimal("-0.30")), ...)`."""

    moves: tuple[tuple[str, Decimal], ...]

    @property
    def label(self) -> str:
        return ",".join(
            f"{name}={format_decimal((move * PERCENT).normalize())}%" for name, move in self.moves
        )


def parse_shock(text: str) -> Shock:
    """`BTC=-30%,ETH=-40%`: each move above -100%."""
    moves: list[tuple[str, Decimal]] = []
    for part in text.split(","):
        matched = _MOVE.match(part.strip())
        if matched is None:
            raise ShockError(f"{part.strip()!r} is not a move: write NAME=-30% (as in BTC=-30%)")
        moves.append((matched["name"], _fraction(matched["move"], part)))
    return _shock(moves, text)


def parse_ladder(text: str, step_percent: Decimal) -> list[Shock]:
    """`BTC=-5%..-60%[,ETH=-5%..-60%]`: rungs `step_percent` points apart from each start
    away from 0% to its end (the end included when the steps land on it); every range must
    give the same number of rungs, which move together."""
    if step_percent <= ZERO:
        raise ShockError("the ladder step must be greater than 0%")
    rungs_by_name: list[tuple[str, list[Decimal]]] = []
    for part in text.split(","):
        matched = _RANGE.match(part.strip())
        if matched is None:
            raise ShockError(f"{part.strip()!r} is not a range: write NAME=-5%..-60%")
        start, end = Decimal(matched["start"]), Decimal(matched["end"])
        if abs(end) < abs(start) or start * end < ZERO:
            # Toward 0%, the first rung short of the fund would be the largest move, not
            # the smallest: the figure a risk officer reads the ladder for.
            raise ShockError(
                f"{part.strip()}: a ladder's moves grow away from 0% (BTC=-5%..-60%, or "
                "BTC=5%..60% for a rise), so the first rung that exhausts the insurance fund "
                "is the smallest move that does"
            )
        direction = ONE if end >= start else -ONE
        count = int(abs(end - start) // step_percent) + 1
        if count > ladder_rungs_max:
            raise ShockError(f"{part.strip()} gives {count} rungs; at most {ladder_rungs_max}")
        rungs = [start + direction * step_percent * i for i in range(count)]
        rungs_by_name.append((matched["name"], [_fraction(str(r), part) for r in rungs]))
    counts = {len(rungs) for _, rungs in rungs_by_name}
    if len(counts) != 1:
        raise ShockError("every range of a ladder must give the same number of rungs")
    (count,) = counts
    return [_shock([(name, rungs[i]) for name, rungs in rungs_by_name], text) for i in range(count)]


def _fraction(percent_text: str, part: str) -> Decimal:
    move = Decimal(percent_text) / PERCENT
    if move <= -ONE:
        raise ShockError(f"{part.strip()}: a price cannot fall by 100% or more")
    return move


def _shock(moves: list[tuple[str, Decimal]], text: str) -> Shock:
    names = [name for name, _ in moves]
    if len(set(names)) != len(names):
        raise ShockError(f"{text}: an instrument is named twice")
    if len(moves) > shock_moves_max:
        raise ShockError(f"{text}: at most {shock_moves_max} moves in one shock")
    return Shock(tuple(moves))


def require_known(policy: Policy, shocks: Iterable[Shock]) -> None:
    """Every name a shock moves is an asset the ledger knows or a market of the policy: a
    mistyped name would shock nothing and the report would look like a calm market."""
    for shock in shocks:
        for name, _ in shock.moves:
            if name not in policy.markets and policy.asset_scale(name) is None:
                raise ShockError(
                    f"{name} is neither an asset the ledger knows nor a market of the policy "
                    f"(markets: {', '.join(sorted(policy.markets))})"
                )


def shocked_marks(book: Book, policy: Policy, shock: Shock) -> list[tuple[str, Decimal]]:
    """(instrument, shocked price) in the order the ledger will decide them."""
    named = {name for name, _ in shock.moves}
    marks: list[tuple[str, Decimal]] = []
    for name, move in shock.moves:
        instruments = [name]
        market = name + PERP_SUFFIX
        if market in policy.markets and market not in named:
            instruments.append(market)
        for instrument in instruments:
            mark = book.marks.get(instrument)
            if mark is not None:
                marks.append((instrument, _shocked_price(mark, move)))
    return marks


def _shocked_price(mark: Decimal, move: Decimal) -> Decimal:
    """`mark * (1 + move)`, exact unless it has more places than an inbox price may."""
    with localcontext(DECIMAL_CONTEXT):
        price = mark * (ONE + move)
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > price_decimal_places_max:
        return quantize(price, price_decimal_places_max)
    return price


@dataclass
class AccountStress:
    """What the shock does to one client account."""

    account_id: str
    called: bool = False
    liquidated: bool = False
    equity_at_shock: Decimal | None = None  # at the call or liquidation the shock caused
    equity_after: Decimal | None = None  # after the liquidation, when there was one
    collateral_sold: dict[str, Decimal] = field(default_factory=dict)  # asset -> quantity
    sale_proceeds: Decimal = ZERO
    perps_closed: dict[str, Decimal] = field(default_factory=dict)  # market -> signed size
    liquidation_fees: Decimal = ZERO
    loan_repaid: Decimal = ZERO
    insurance_fund_drawn: Decimal = ZERO
    auto_deleveraged: Decimal = ZERO  # the deficit opposite positions absorbed
    bad_debt_loan: Decimal = ZERO
    bad_debt_cash: Decimal = ZERO

    @property
    def shortfall(self) -> Decimal:
        """The negative equity the liquidation left: what the fund, ADL and bad debt bore."""
        if self.equity_after is None or self.equity_after >= ZERO:
            return ZERO
        return -self.equity_after


@dataclass
class StressResult:
    shock: Shock
    journal_seq: int  # the book the stress was decided on
    marks: list[tuple[str, Decimal, Decimal]]  # (instrument, mark before, shocked)
    accounts: dict[str, AccountStress]
    insurance_fund_before: Decimal
    insurance_fund_after: Decimal
    firm_loans_after: Decimal
    firm_loans_max: Decimal
    client_loan_max: Decimal
    largest_client_loan_after: tuple[str, Decimal] | None

    @property
    def called(self) -> list[str]:
        return sorted(a for a, s in self.accounts.items() if s.called)

    @property
    def liquidated(self) -> list[str]:
        return sorted(a for a, s in self.accounts.items() if s.liquidated)

    @property
    def insurance_fund_drawn(self) -> Decimal:
        return sum((s.insurance_fund_drawn for s in self.accounts.values()), ZERO)

    @property
    def bad_debt(self) -> Decimal:
        return sum((s.bad_debt_loan + s.bad_debt_cash for s in self.accounts.values()), ZERO)

    @property
    def uncovered_perps_deficit(self) -> Decimal:
        """What the insurance fund could not cover: absorbed by ADL or written off."""
        return sum((s.auto_deleveraged + s.bad_debt_cash for s in self.accounts.values()), ZERO)

    @property
    def insurance_fund_sufficient(self) -> bool:
        return self.uncovered_perps_deficit.is_zero() and (
            self.insurance_fund_drawn.is_zero() or self.insurance_fund_after > ZERO
        )


def stress(book: Book, policy: Policy, shock: Shock) -> StressResult:
    """Decide the shocked marks on a scratch copy of `book` and report what they cause."""
    desk = scratch_desk(book, policy, watch_everyone=True)
    now = book.clock or _EPOCH
    marks = shocked_marks(book, policy, shock)
    records = [
        inbox.MarkPrice(
            event_id=f"stress:{number}:{instrument}",
            occurred_at=now,
            source="stress",
            instrument=instrument,
            price=price,
        )
        for number, (instrument, price) in enumerate(marks, start=1)
    ]
    desk.begin("stress", now, "stress")
    decide_marks_together(desk, records)
    accounts = _read_events(je.decode_journal_record(e.record) for e in desk.pending)
    scratch = desk.book
    funds = policy.shareholders_funds
    borrowers = [(a.loan, a.account_id) for a in scratch.clients() if a.loan > ZERO]
    largest = max(borrowers, key=lambda item: (item[0], item[1]), default=None)
    return StressResult(
        shock=shock,
        journal_seq=book.last_seq,
        marks=[(i, book.marks[i], price) for i, price in marks],
        accounts=accounts,
        insurance_fund_before=book.accounts[INSURANCE_FUND].balance(REPORTING_ASSET),
        insurance_fund_after=scratch.accounts[INSURANCE_FUND].balance(REPORTING_ASSET),
        firm_loans_after=scratch.total_loans,
        firm_loans_max=funds * policy.max_total_loans_multiple,
        client_loan_max=funds * policy.max_client_loan_share,
        largest_client_loan_after=None if largest is None else (largest[1], largest[0]),
    )


def _read_events(events: Iterable[je.JournalEventType]) -> dict[str, AccountStress]:
    """Per account, the calls, liquidation steps, draws, ADL and bad debt the stress caused."""
    accounts: dict[str, AccountStress] = {}

    def of(account_id: str | None) -> AccountStress:
        named = present(account_id, "every event read below names its account")
        return accounts.setdefault(named, AccountStress(named))

    for event in events:
        match event:
            case je.MarginCallIssued():
                stressed = of(event.account_id)
                stressed.called = True
                _note_equity(stressed, event.inputs)
            case je.LiquidationTriggered():
                stressed = of(event.account_id)
                stressed.liquidated = True
                _note_equity(stressed, event.inputs)
            case je.LiquidationCompleted():
                _read_steps(of(event.account_id), event)
            case je.InsuranceFundDrawn():
                of(event.account_id).insurance_fund_drawn += event.amount
            case je.AutoDeleveraged():
                of(event.bankrupt_account_id).auto_deleveraged += event.absorbed
            case je.BadDebtRecorded():
                stressed = of(event.account_id)
                stressed.bad_debt_loan += event.loan_written_off
                stressed.bad_debt_cash += event.cash_written_off
            case _:
                pass
    return accounts


def _note_equity(stressed: AccountStress, inputs: je.DecisionInputs) -> None:
    if stressed.equity_at_shock is None:
        stressed.equity_at_shock = inputs.figures.equity


def _read_steps(stressed: AccountStress, event: je.LiquidationCompleted) -> None:
    stressed.equity_after = event.figures_after.equity
    for step in event.steps:
        quantity = step.quantity
        if step.kind == "close_position":
            closed = stressed.perps_closed
            closed[step.instrument] = closed.get(step.instrument, ZERO) + quantity
        elif step.kind == "sell_collateral":
            sold = stressed.collateral_sold
            sold[step.instrument] = sold.get(step.instrument, ZERO) + quantity
            stressed.sale_proceeds += step.proceeds
        stressed.liquidation_fees += step.fee
        stressed.loan_repaid += step.loan_repaid


@dataclass(frozen=True)
class LadderResult:
    rungs: list[StressResult]

    @property
    def exhausted_at(self) -> StressResult | None:
        """The first rung at which the insurance fund does not suffice."""
        return next((r for r in self.rungs if not r.insurance_fund_sufficient), None)


def ladder(book: Book, policy: Policy, shocks: Sequence[Shock]) -> LadderResult:
    return LadderResult([stress(book, policy, shock) for shock in shocks])
