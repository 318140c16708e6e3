"""Client statements (Cap. 571Q): what each client held, what moved and why, and its margin
figures, for a business day or a month, replayed from the journal.

A period runs between two day closes: the opening is the state right after the last
journal event caused by the previous `day_closed` (journal seq 0 when there is none), the
closing the state right after the last event caused by the period's own last `day_closed`
(its interest accruals and any margin decisions they caused included). A daily statement
covers one business date; a monthly one every business date of the month, with each day's
closing figures.

Movements are read off the book itself: each journal event of the period is applied to a
`Book` (the ledger's own replay), and the balances, loan and positions of every client the
event names are compared before and after. So every movement carries the seq of the event
that made it, whatever the event type (a type added later included), and the movements
always sum to `closing - opening`. The closing figures are those `ledger query --as-of
CLOSING_SEQ` prints.

A statement is made for every client with activity in the period (an event naming it), a
loan or a position at the close; a professional investor who opted out of daily statements
(`daily_statements_set` with `"waived"`) gets none for a day, still one for a month.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import msgspec

from ledger import journal_events as je
from ledger import reporting, risk
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import Account, Book
from ledger.journal import format_timestamp
from ledger.money import ONE, REPORTING_ASSET, ZERO, format_decimal
from ledger.policy import Policy

PeriodKind = Literal["daily", "monthly"]
LOAN_PRINCIPAL = "loan_principal"  # the `item` of a movement of the loan's principal
LOAN_INTEREST = "loan_interest"  # ... and of its accrued interest
# Fields of an event worth a statement line's description, in this order.
_DETAIL_FIELDS = (
    "trade_id",
    "symbol",
    "market",
    "side",
    "quantity",
    "price",
    "reference",
    "instrument",
    "rate",
    "business_date",
    "call_id",
    "liquidation_id",
    "reason_code",
    "group_id",
)


class StatementError(ValueError):
    """A period the journal cannot give a statement for (a day not closed yet)."""


@dataclass(frozen=True)
class Close:
    business_date: str
    seq: int  # the last journal seq the day_closed input caused


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    label: str  # "2026-11-24" or "2026-11"
    opening_seq: int
    closing_seq: int
    closes: tuple[Close, ...]  # the day closes of the period, in order


@dataclass(frozen=True)
class Movement:
    """One change of one item of a client's account, or an event that changed nothing
    (a refused request, a margin call): `item` and `amount` are then None."""

    seq: int
    recorded_at: str
    event_type: str
    causation_id: str
    item: str | None  # an asset, a market (a position's size), loan_principal, loan_interest
    amount: Decimal | None  # signed change
    after: Decimal | None  # the item's value after the event
    detail: str


@dataclass(frozen=True)
class DailyClose:
    business_date: str
    seq: int
    equity: Decimal | None  # None while an asset held has no mark
    loan: Decimal
    status: str
    maintenance_requirement: Decimal | None  # under `policy_version`; None unvalued
    policy_version: str  # the policy in force at the close, which valued it


@dataclass(frozen=True)
class PolicyInForce:
    """A policy in force during part of the period: from its `policy_adopted` (seq 0: the
    journal adopted none, the reader's policy) or the period's opening, whichever is later,
    to the next one's or the closing."""

    version: str
    digest: str
    adopted_seq: int
    adopted_at: str  # the recorded_at of its policy_adopted ("" for seq 0)
    # The business date of the first day close it valued: the period's first for the one in
    # force at the opening; "" for one replaced before any close (it decided events only).
    from_date: str


@dataclass
class ClientStatement:
    account_id: str
    investor_class: str
    period: Period
    opening: dict[str, Decimal]
    closing: dict[str, Decimal] = field(default_factory=dict)
    movements: list[Movement] = field(default_factory=list)
    interest_accrued: Decimal = ZERO
    daily_closes: list[DailyClose] = field(default_factory=list)
    figures: dict[str, Any] | None = None  # `ledger query margin` at the close; None unvalued
    collateral: list[dict[str, Any]] = field(default_factory=list)
    loan_principal: Decimal = ZERO
    loan_interest: Decimal = ZERO
    margin_call: dict[str, str] | None = None
    # Every policy in force in the period, in the order adopted (the same for every client).
    policies: tuple[PolicyInForce, ...] = ()


def find_closes(events: Iterable[je.JournalEventType]) -> list[Close]:
    """Every day close of the journal with the last seq its input caused."""
    closes: list[Close] = []
    cause: str | None = None
    for event in events:
        if isinstance(event, je.DayClosed):
            closes.append(Close(event.business_date, event.seq))
            cause = event.causation_id
        elif cause is not None and event.causation_id == cause:
            closes[-1] = Close(closes[-1].business_date, event.seq)
        else:
            cause = None
    return closes


def daily_period(closes: list[Close], business_date: date) -> Period:
    wanted = business_date.isoformat()
    index = next((i for i, c in enumerate(closes) if c.business_date == wanted), None)
    if index is None:
        raise StatementError(f"business date {wanted} has no day_closed in the journal yet")
    opening = closes[index - 1].seq if index > 0 else 0
    return Period("daily", wanted, opening, closes[index].seq, (closes[index],))


def monthly_period(closes: list[Close], month: str) -> Period:
    """`month` is YYYY-MM: every business date of it that was closed."""
    inside = [c for c in closes if c.business_date[:7] == month]
    if not inside:
        raise StatementError(f"no business date of {month} has a day_closed in the journal")
    before = [c for c in closes if c.business_date < inside[0].business_date]
    opening = before[-1].seq if before else 0
    return Period("monthly", month, opening, inside[-1].seq, tuple(inside))


def statements(
    events: Iterable[je.JournalEventType], policies: AdoptedPolicies, period: Period
) -> list[ClientStatement]:
    """The period's statements, in account order, from the journal's events in seq order:
    each day's close valued with the policy in force at it, the period's with the one in
    force at its end; each names every policy in force in the period."""
    book = Book()
    stream = iter(events)
    at_opening: je.PolicyAdopted | None = None
    for event in _until(stream, period.opening_seq):
        book.apply(event)
        if isinstance(event, je.PolicyAdopted):
            at_opening = event
    in_force = _PoliciesInForce(at_opening)
    found = {a.account_id: _opened(a, period) for a in book.clients()}
    active: set[str] = set()
    closes = {c.seq: c for c in period.closes}
    for event in _until(stream, period.closing_seq):
        in_force.met(event)
        named = _named_clients(event, book)
        before = {a: _state(book.accounts[a]) for a in named}
        book.apply(event)
        for account_id in _named_clients(event, book):
            statement = found.setdefault(account_id, _opened(book.accounts[account_id], period))
            _record_movements(statement, event, before.get(account_id), book)
            active.add(account_id)
        if event.seq in closes:
            in_force.closed(closes[event.seq])
            _record_daily_closes(found, book, policies.in_force(book), closes[event.seq])
    chosen = [
        statement
        for account_id, statement in sorted(found.items())
        if _due(book.accounts[account_id], account_id in active, period)
    ]
    policy = policies.in_force(book)
    named_policies = in_force.policies(policy, period)
    for statement in chosen:
        _close(statement, book, policy)
        statement.policies = named_policies
    return chosen


class _PoliciesInForce:
    """The policies in force over a period, followed event by event: the one in force at
    the opening (unless the period's first event adopts another), then each adopted."""

    def __init__(self, at_opening: je.PolicyAdopted | None) -> None:
        self._adopted = [] if at_opening is None else [at_opening]
        self._from_dates = [""] * len(self._adopted)
        self._met = False  # an event of the period was met under the last one

    def met(self, event: je.JournalEventType) -> None:
        if isinstance(event, je.PolicyAdopted):
            if self._adopted and not self._met:  # in force at no seq of the period
                self._adopted.pop()
                self._from_dates.pop()
            self._adopted.append(event)
            self._from_dates.append("")
        self._met = True

    def closed(self, close: Close) -> None:
        """`close` valued with the last one: the first close of those that had none."""
        self._from_dates = [d or close.business_date for d in self._from_dates]

    def policies(self, current: Policy, period: Period) -> tuple[PolicyInForce, ...]:
        if not self._adopted:  # a journal that adopted none: the reader's policy throughout
            first = period.closes[0].business_date
            return (PolicyInForce(current.version, current.digest, 0, "", first),)
        return tuple(
            PolicyInForce(a.version, a.digest, a.seq, a.recorded_at, from_date)
            for a, from_date in zip(self._adopted, self._from_dates, strict=True)
        )


def _until(stream: Iterator[je.JournalEventType], seq: int) -> Iterator[je.JournalEventType]:
    """The next events of `stream` up to journal seq `seq` (the stream is in seq order)."""
    if seq <= 0:
        return
    for event in stream:
        yield event
        if event.seq >= seq:
            return


def _opened(account: Account, period: Period) -> ClientStatement:
    return ClientStatement(
        account_id=account.account_id,
        investor_class=account.investor_class,
        period=period,
        opening=dict(sorted(account.balances.items())),
    )


def _due(account: Account, active: bool, period: Period) -> bool:
    if period.kind == "daily" and account.daily_statements_waived:
        return False
    return active or account.loan > ZERO or bool(account.positions)


_State = tuple[dict[str, Decimal], Decimal, Decimal, dict[str, Decimal]]


def _state(account: Account) -> _State:
    positions = {m: p.size for m, p in account.positions.items()}
    return dict(account.balances), account.loan_principal, account.loan_interest, positions


def _named_clients(event: je.JournalEventType, book: Book) -> set[str]:
    """The client accounts an event names anywhere in it (its account, funding payments,
    the bankrupt account of a deleveraging, ...)."""
    named: set[str] = set()
    _walk(msgspec.structs.asdict(event), book, named)
    return named


def _walk(value: object, book: Book, named: set[str]) -> None:
    if isinstance(value, str):
        account = book.accounts.get(value)
        if account is not None and account.is_client:
            named.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, book, named)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, book, named)
    elif isinstance(value, msgspec.Struct):
        _walk(msgspec.structs.asdict(value), book, named)


def _record_movements(
    statement: ClientStatement, event: je.JournalEventType, before: _State | None, book: Book
) -> None:
    account = book.accounts[statement.account_id]
    old = before or ({}, ZERO, ZERO, {})
    new = _state(account)
    changes: list[tuple[str, Decimal, Decimal]] = []
    for asset in sorted(set(old[0]) | set(new[0])):
        changes.append((asset, old[0].get(asset, ZERO), new[0].get(asset, ZERO)))
    changes.append((LOAN_PRINCIPAL, old[1], new[1]))
    changes.append((LOAN_INTEREST, old[2], new[2]))
    for market in sorted(set(old[3]) | set(new[3])):
        changes.append((market, old[3].get(market, ZERO), new[3].get(market, ZERO)))
    head = (event.seq, event.recorded_at, str(type(event).__struct_config__.tag))
    detail = _detail(event)
    lines = [
        Movement(*head, event.causation_id, item, b - a, b, detail)
        for item, a, b in changes
        if a != b
    ]
    if not lines:  # an event naming the account that moved nothing: still its activity
        lines = [Movement(*head, event.causation_id, None, None, None, detail)]
    statement.movements.extend(lines)
    if isinstance(event, je.InterestAccrued):
        statement.interest_accrued += event.amount


def _detail(event: je.JournalEventType) -> str:
    values = msgspec.structs.asdict(event)
    parts = []
    for name in _DETAIL_FIELDS:
        value = values.get(name)
        if value is not None:
            text = format_decimal(value) if isinstance(value, Decimal) else str(value)
            parts.append(f"{name} {text}")
    return ", ".join(parts)


def _record_daily_closes(
    found: dict[str, ClientStatement], book: Book, policy: Policy, close: Close
) -> None:
    for statement in found.values():
        account = book.accounts[statement.account_id]
        try:
            figures = risk.margin_figures(
                account.holdings(), book.marks, policy, with_liquidation_prices=False
            )
            equity, status = figures.equity, str(figures.status)
            maintenance: Decimal | None = figures.maintenance_requirement
        except risk.MissingMark:
            equity, status, maintenance = None, "unvalued", None
        statement.daily_closes.append(
            DailyClose(
                close.business_date,
                close.seq,
                equity,
                account.loan,
                status,
                maintenance,
                policy.version,
            )
        )


def _close(statement: ClientStatement, book: Book, policy: Policy) -> None:
    """The closing balances, collateral, loan, figures and open call."""
    account = book.accounts[statement.account_id]
    statement.closing = dict(sorted(account.balances.items()))
    statement.loan_principal, statement.loan_interest = (
        account.loan_principal,
        account.loan_interest,
    )
    try:
        statement.figures = reporting.margin_view(book, policy, statement.account_id)
    except risk.MissingMark:
        statement.figures = None
    statement.collateral = [
        _holding(asset, b, book, policy) for asset, b in statement.closing.items()
    ]
    call = account.margin_call
    if call is not None:
        statement.margin_call = {
            "call_id": call.call_id,
            "issued_at": call.issued_at,
            "amount": format_decimal(call.amount),
            "deadline": format_timestamp(call.deadline),
            "trigger": call.trigger,
        }


def _holding(asset: str, balance: Decimal, book: Book, policy: Policy) -> dict[str, Any]:
    """One collateral line: mark, market value, the initial haircut and the value after it."""
    mark = ONE if asset == REPORTING_ASSET else book.marks.get(asset)
    haircut = policy.asset(asset).haircut.initial
    value = None if mark is None else balance * mark
    after = None if value is None or balance <= ZERO else value * (ONE - haircut)
    return {
        "asset": asset,
        "quantity": balance,
        "mark_price": mark,
        "market_value": value,
        "haircut": haircut,
        "haircut_value": after,
    }
