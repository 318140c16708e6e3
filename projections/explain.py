"""`ledger audit explain ID`: recompute one decision from the inputs recorded with it, and
show the arithmetic line by line.

The figures are recomputed with `ledger.risk.margin_figures` (the function the ledger
decided with) from the holdings, marks and policy version the event recorded; the lending
limits with `ledger.lending.loan_limit_checks`. The policy must be the one whose version
the event recorded: another is refused, since other haircuts would give other figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import assert_never

from ledger import journal_events as je
from ledger import risk
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import (
    EQUITY_CALL_TRIGGER,
    HOUSE,
    INSURANCE_FUND,
    LIQUIDATION,
    Book,
    principal_at_end_of,
)
from ledger.desk import figures_record
from ledger.fills import fill_result
from ledger.groups import group_limit_checks, group_loan_max
from ledger.identifiers import is_ascii_number
from ledger.invariants import present
from ledger.journal import format_timestamp
from ledger.lending import broken_limits, limit_call_amount, loan_limit_checks
from ledger.liquidation import deleveraging_queue, ranking_record
from ledger.money import (
    DECIMAL_CONTEXT,
    DERIVED_FIGURE_SCALE,
    REPORTING_ASSET,
    USD_SCALE,
    ZERO,
    format_decimal,
    quantize,
)
from ledger.policy import Policy
from ledger.rejections import ReasonCode
from ledger.store import LedgerStore

_FIGURE_NAMES = tuple(je.Figures.__struct_fields__)
_QUEUE_LINES_MAX = 10  # the head of an auto-deleveraging queue shown by `audit explain`


class ExplainError(ValueError):
    """Nothing to explain under that id, or the wrong policy to explain it with."""


@dataclass
class Explanation:
    seq: int
    type: str
    lines: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # empty: recomputed == recorded
    checks: int = 0  # how many figures were recomputed; 0: the event records none

    @property
    def consistent(self) -> bool:
        return not self.differences

    def check(
        self, what: str, recorded: object, recomputed: object, source: str = "recomputed"
    ) -> None:
        """Record one comparison, as a line and (when it fails) as a difference: figures
        are compared as the journal writes them, so `1.50` is not `1.5`. `source` names
        where the other value comes from: recomputed, or read off the journal."""
        self.checks += 1
        recorded, recomputed = _shown(recorded), _shown(recomputed)
        if recorded == recomputed:
            self.lines.append(f"  {what}: recorded {recorded} = {source} ✓")
        else:
            self.lines.append(f"  {what}: recorded {recorded} ≠ {source} {recomputed} ✗")
            self.differences.append(f"{what}: recorded {recorded}, {source} {recomputed}")


@dataclass(frozen=True)
class FillDeficit:
    """A venue fill's loss beyond what the insurance fund drew for it: what is left of it
    before an event decided from the same fill (a reduction, a bad debt), and whether a
    reduction of it came before (the first one sets the bankruptcy price)."""

    left: Decimal
    reduced_before: bool


def _tag(event: je.JournalEventType) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def _n(value: Decimal | None) -> str:
    """A figure as the journal writes it (full precision, fixed point)."""
    return "null" if value is None else format_decimal(value)


def _shown(value: object) -> str:
    """A recorded or recomputed value as the journal writes it."""
    if isinstance(value, Decimal):
        return _n(value)
    if isinstance(value, list):  # of codes: `['credit_limit_exceeded']`
        return str([str(item) for item in value])
    return str(value)


def _events(store: LedgerStore) -> Iterator[je.JournalEventType]:
    for entry in store.iter_journal():
        yield je.decode_journal_record(entry.record)


_IDENTIFIERS = ("causation_id", "call_id", "liquidation_id", "trade_id")


def find_events(store: LedgerStore, identifier: str) -> list[je.JournalEventType]:
    """The journal events `identifier` names: a seq, or every event whose causation id,
    call id, liquidation id or trade id it is."""
    if is_ascii_number(identifier):
        seq = int(identifier)
        entries = store.read_journal(seq - 1, 1) if seq >= 1 else []
        if not entries:
            raise ExplainError(f"journal seq {seq} does not exist (last is {store.last_seq()})")
        return [je.decode_journal_record(entries[0].record)]
    found = [
        event
        for event in _events(store)
        if any(getattr(event, name, None) == identifier for name in _IDENTIFIERS)
    ]
    if not found:
        raise ExplainError(
            "no journal event has seq, causation id, call id, liquidation id or trade id "
            f"{identifier!r}"
        )
    return found


def _require_policy(recorded_version: str, policy: Policy, seq: int) -> None:
    if recorded_version != policy.version:
        raise ExplainError(
            f"seq {seq} was decided under policy {recorded_version}, but policy "
            f"{policy.version} is loaded: pass that version's file with --policy"
        )


# -- the risk model's figures -----------------------------------------------------------


def _holdings(inputs: je.DecisionInputs) -> tuple[risk.AccountHoldings, dict[str, Decimal]]:
    recorded = inputs.holdings
    holdings = risk.AccountHoldings(
        balances=dict(recorded.balances),
        loan=recorded.loan,
        positions=tuple(
            risk.PositionHolding(p.market, p.size, p.entry_price) for p in recorded.positions
        ),
    )
    return holdings, dict(inputs.marks)


def _balance_lines(
    holdings: risk.AccountHoldings, marks: Mapping[str, Decimal], policy: Policy
) -> list[str]:
    lines = []
    for asset, amount in sorted(holdings.balances.items()):
        if amount.is_zero():
            continue
        mark = Decimal(1) if asset == REPORTING_ASSET else marks[asset]
        haircut = policy.asset(asset).haircut
        with_haircuts = (
            f"; haircuts initial / maintenance / liquidation {_n(haircut.initial)} / "
            f"{_n(haircut.maintenance)} / {_n(haircut.liquidation)}"
            if amount > ZERO
            else " (negative: no haircut)"
        )
        lines.append(
            f"  {asset}: {_n(amount)} * {_n(mark)} = {_n(amount * mark)}"
            + with_haircuts
            + ("" if policy.asset(asset).eligible else " (not eligible collateral)")
        )
    return lines


def _position_lines(figures: risk.MarginFigures, policy: Policy) -> list[str]:
    lines = []
    for p in figures.positions:
        market = policy.market(p.market)
        tier = market.tier(p.notional)
        bracket = "last tier" if tier.up_to is None else f"tier up to {_n(tier.up_to)}"
        lines += [
            f"  {p.market}: size s = {_n(p.size)}, entry e = {_n(p.entry_price)}, "
            f"mark M = {_n(p.mark_price)}",
            f"    U = s * (M - e) = {_n(p.size)} * ({_n(p.mark_price)} - {_n(p.entry_price)})"
            f" = {_n(p.unrealized_pnl)}",
            f"    N = |s| * M = {_n(p.notional)}",
            f"    IM = N * {_n(market.initial_margin_rate)} = {_n(p.initial_margin)}",
            f"    MM = N * {_n(tier.maintenance_rate)} - {_n(tier.maintenance_amount)} "
            f"({bracket}) = {_n(p.maintenance_margin)}",
            f"    liquidation price = {_n(p.liquidation_price)}",
        ]
    return lines


def _requirement_lines(figures: risk.MarginFigures) -> list[str]:
    positions = figures.positions
    im = sum((p.initial_margin for p in positions), ZERO)
    mm = sum((p.maintenance_margin for p in positions), ZERO)
    return [
        f"initial requirement = H_initial + ΣIM = {_n(figures.haircut_initial)} + {_n(im)}"
        f" = {_n(figures.initial_requirement)}",
        f"maintenance requirement = H_maintenance + ΣMM = {_n(figures.haircut_maintenance)}"
        f" + {_n(mm)} = {_n(figures.maintenance_requirement)}",
        f"liquidation requirement = H_liquidation + ΣMM = {_n(figures.haircut_liquidation)}"
        f" + {_n(mm)} = {_n(figures.liquidation_requirement)}",
        f"excess = E - maintenance requirement = {_n(figures.excess)}",
        f"available = E - initial requirement = {_n(figures.available)}",
        f"margin level = E / maintenance requirement = {_n(figures.margin_level)}",
        f"LTV = L / eligible collateral value {_n(figures.eligible_collateral_value)}"
        f" = {_n(figures.ltv)}",
    ]


def figure_lines(
    inputs: je.DecisionInputs, policy: Policy, explanation: Explanation
) -> risk.MarginFigures:
    """Recompute the figures of `inputs`, show how, and compare them with the recorded."""
    holdings, marks = _holdings(inputs)
    figures = risk.margin_figures(holdings, marks, policy)
    values = [
        _n(b * (Decimal(1) if a == REPORTING_ASSET else marks[a]))
        for a, b in sorted(holdings.balances.items())
        if not b.is_zero()
    ]
    explanation.lines += [
        f"policy {policy.version}; balances b * mark m:",
        *_balance_lines(holdings, marks, policy),
        f"market value = {' + '.join(values) or '0'} = {_n(figures.market_value)}",
        *(["positions:", *_position_lines(figures, policy)] if figures.positions else []),
        f"unrealised PnL = ΣU = {_n(figures.unrealized_pnl)}",
        f"loan L = {_n(figures.loan)}",
        f"equity E = market value + unrealised PnL - L = {_n(figures.market_value)} + "
        f"({_n(figures.unrealized_pnl)}) - {_n(figures.loan)} = {_n(figures.equity)}",
        f"H_initial = Σ b * m * haircut_initial (b > 0) = {_n(figures.haircut_initial)}",
        f"H_maintenance = {_n(figures.haircut_maintenance)}, "
        f"H_liquidation = {_n(figures.haircut_liquidation)}",
        *_requirement_lines(figures),
        f"status = {figures.status} ("
        + (
            "E ≥ maintenance requirement)"
            if figures.status is risk.MarginStatus.HEALTHY
            else "liquidation requirement ≤ E < maintenance requirement)"
            if figures.status is risk.MarginStatus.MARGIN_CALL
            else "E < liquidation requirement)"
        ),
        "recorded against recomputed:",
    ]
    recomputed = figures_record(figures)
    for name in _FIGURE_NAMES:
        explanation.check(name, getattr(inputs.figures, name), getattr(recomputed, name))
    return figures


# -- the recorded inputs against the journal --------------------------------------------


@dataclass(frozen=True)
class _JournalBefore:
    """The journal right before a decision: the book, and each instrument's latest
    `mark_price_applied` (empty when the caller did not track them)."""

    book: Book
    marks_applied: Mapping[str, je.MarkPriceApplied]


def _applied(mark: je.MarkPriceApplied | None) -> str:
    """Where a mark was applied, and the move it flagged when it moved past the alert."""
    if mark is None:
        return ""
    moved = "" if mark.previous_price is None else f", moved from {_n(mark.previous_price)}"
    return f" (mark_price_applied seq {mark.seq}{moved})"


_Position = tuple[str, Decimal, Decimal]  # market, size, entry price


def _holdings_text(
    balances: Mapping[str, Decimal], loan: Decimal, positions: Iterable[_Position]
) -> str:
    held = ", ".join(f"{a} {_n(b)}" for a, b in sorted(balances.items()) if not b.is_zero())
    open_positions = "".join(f"; {m} {_n(s)} at entry {_n(e)}" for m, s, e in positions)
    return f"{held or 'nothing'}; loan {_n(loan)}{open_positions}"


def _journal_holdings(event: je.JournalEventType, book: Book) -> str:
    """The account's holdings in the journal as the decision must have valued them: after
    the withdrawal asked, for a withdrawal's decision (approved or refused)."""
    account = book.accounts[present(event.account_id, "a decision names its account")]
    balances = dict(account.balances)
    if isinstance(event, je.WithdrawalApproved | je.WithdrawalRejected):
        balances[event.asset] = balances.get(event.asset, ZERO) - event.amount
    positions = [(m, p.size, p.entry_price) for m, p in sorted(account.positions.items())]
    return _holdings_text(balances, account.loan, positions)


def _marks_must_be_fresh(event: je.JournalEventType) -> bool:
    """Margin decisions taken on the marks wait for fresh ones (docs/risk-model.md)."""
    return isinstance(event, je.LiquidationTriggered) or (
        isinstance(event, je.MarginCallIssued) and event.trigger == EQUITY_CALL_TRIGGER
    )


def _deadline_lines(
    event: je.LiquidationTriggered, book: Book, now: datetime, out: Explanation
) -> None:
    """A liquidation at a call's deadline: the call the journal has open, and its deadline."""
    call = book.accounts[present(event.account_id, "a liquidation names its account")].margin_call
    if call is None:
        out.check("a margin call open", True, False, "journal")
        return
    out.lines.append(
        f"  margin call {call.call_id}, issued {call.issued_at}, deadline "
        f"{format_timestamp(call.deadline)}; liquidated at {event.recorded_at}"
    )
    out.check("the call's deadline has come", True, now >= call.deadline, "journal")


def _inputs_against_journal(
    event: je.JournalEventType,
    inputs: je.DecisionInputs,
    policy: Policy,
    journal: _JournalBefore,
    out: Explanation,
) -> None:
    """The figures above recompute from the recorded inputs; these are the journal's own:
    each mark the latest applied before the decision (shown with when it was observed), the
    call a liquidation at its deadline ended, and the account's holdings as booked."""
    book, now = journal.book, datetime.fromisoformat(event.recorded_at)
    limit = timedelta(minutes=policy.mark_max_age_minutes)
    out.lines.append(f"recorded inputs against the journal before seq {event.seq}:")
    for instrument, price in sorted(inputs.marks.items()):
        observed = book.mark_times.get(instrument)
        out.lines.append(
            f"  mark {instrument} {_n(book.marks.get(instrument))}: "
            + ("never marked" if observed is None else f"observed {format_timestamp(observed)}")
            + _applied(journal.marks_applied.get(instrument))
            + ("" if observed is None else f", {now - observed} before the decision")
        )
        out.check(f"mark {instrument}", price, book.marks.get(instrument), "journal")
        if _marks_must_be_fresh(event):
            age_ok = observed is not None and now - observed <= limit
            out.check(f"mark {instrument} at most {limit} old", True, age_ok, "journal")
    if isinstance(event, je.LiquidationTriggered) and event.trigger == "margin_call_deadline":
        _deadline_lines(event, book, now, out)
    recorded = inputs.holdings
    positions = [(p.market, p.size, p.entry_price) for p in recorded.positions]
    out.check(
        f"holdings of {event.account_id}",
        _holdings_text(recorded.balances, recorded.loan, positions),
        _journal_holdings(event, book),
        "journal",
    )


# -- per decision -----------------------------------------------------------------------


def _explain_inputs(
    event: je.JournalEventType,
    inputs: je.DecisionInputs,
    policy: Policy,
    out: Explanation,
    journal: _JournalBefore | None,
) -> None:
    _require_policy(inputs.policy_version, policy, event.seq)
    figures = figure_lines(inputs, policy, out)
    match event:
        case je.WithdrawalApproved():
            out.lines.append("rule: approved only if, after it, E ≥ initial requirement")
            out.check("E ≥ initial requirement", True, figures.available >= ZERO)
        case je.WithdrawalRejected():
            out.lines.append(f"refused: {event.reason_code}: {event.detail}")
            if event.reason_code == "below_initial_requirement":
                out.check("E < initial requirement after it", True, figures.available < ZERO)
        case je.MarginCallIssued():
            _explain_call(event, figures, policy, out)
        case je.MarginCallCleared():
            _cleared_rule(event, figures, policy, journal, out)
        case je.LiquidationTriggered():
            if event.trigger == "below_liquidation_requirement":
                out.check(
                    "E < liquidation requirement",
                    True,
                    figures.equity < figures.liquidation_requirement,
                )
            else:
                _deadline_rule(event, figures, policy, journal, out)
        case _:
            pass
    if journal is not None:
        _inputs_against_journal(event, inputs, policy, journal, out)


def _deadline_rule(
    event: je.LiquidationTriggered,
    figures: risk.MarginFigures,
    policy: Policy,
    journal: _JournalBefore | None,
    out: Explanation,
) -> None:
    """A call not met by its deadline liquidates (docs/risk-model.md)."""
    met = _limit_call_met(event, figures, policy, journal, out)
    if met is None:
        out.check("still not healthy at the call's deadline", True, figures.excess < 0)
    else:
        out.check("the call not met at its deadline", True, not met)


def _cleared_rule(
    event: je.MarginCallCleared,
    figures: risk.MarginFigures,
    policy: Policy,
    journal: _JournalBefore | None,
    out: Explanation,
) -> None:
    """A call is cleared as met when the account meets it (docs/risk-model.md)."""
    if event.outcome != "met":
        out.lines.append(f"cleared: {event.outcome} (closed by the liquidation)")
        return
    met = _limit_call_met(event, figures, policy, journal, out)
    if met is None:
        out.check("healthy again (E ≥ maintenance requirement)", True, figures.excess >= 0)
    else:
        out.check("the limit call met", True, met)


def _limit_call_met(
    event: je.LiquidationTriggered | je.MarginCallCleared,
    figures: risk.MarginFigures,
    policy: Policy,
    journal: _JournalBefore | None,
    out: Explanation,
) -> bool | None:
    """Whether the limit call the journal has open is met: by a healthy account whose loan is
    within the smaller of its credit limit and its lending value. None for an equity call
    (met by a healthy account), or with no journal to say which call is open."""
    account = None if journal is None else journal.book.accounts.get(event.account_id or "")
    call = None if account is None else account.margin_call
    if account is None or call is None or call.trigger == EQUITY_CALL_TRIGGER:
        return None
    marks = dict(event.inputs.marks)
    priced = {a: b for a, b in event.inputs.holdings.balances.items() if a in marks}
    lending = risk.lending_value(priced, marks, policy)
    limit = min(account.credit_limit, lending)
    out.lines.append(
        f"rule: a limit call ({call.trigger}) is met by a healthy account whose loan is within "
        f"the smaller of its credit limit {_n(account.credit_limit)} (journal) and its lending "
        f"value {_n(lending)} (recorded holdings and marks): {_n(limit)}"
    )
    out.lines.append(
        f"  healthy: {'yes' if figures.excess >= 0 else 'no'}; loan {_n(figures.loan)} "
        f"{'>' if figures.loan > limit else '≤'} {_n(limit)}"
    )
    return figures.excess >= 0 and figures.loan <= limit


def _explain_call(
    event: je.MarginCallIssued, figures: risk.MarginFigures, policy: Policy, out: Explanation
) -> None:
    if event.trigger != EQUITY_CALL_TRIGGER:
        _explain_limit_call(event, figures, policy, out)
    else:
        out.lines.append("rule: a call when liquidation requirement ≤ E < maintenance requirement")
        out.check("status", "margin_call", str(figures.status))
        amount = risk.margin_call_amount(figures)
        out.lines.append(
            f"amount = maintenance requirement - E = {_n(figures.maintenance_requirement)} - "
            f"{_n(figures.equity)} = {_n(amount)}"
        )
        out.check("amount", event.amount, _n(amount))
    deadline = datetime.fromisoformat(event.recorded_at) + timedelta(hours=policy.deadline_hours)
    out.lines.append(f"deadline = {event.recorded_at} + {policy.deadline_hours} h")
    out.check("deadline", event.deadline, format_timestamp(deadline))


def _explain_limit_call(
    event: je.MarginCallIssued, figures: risk.MarginFigures, policy: Policy, out: Explanation
) -> None:
    """A call on a loan a financed debit took past the credit limit or the lending value."""
    out.lines.append(
        f"rule: a debit financed past a lending limit calls the account ({event.trigger})"
    )
    limit = ZERO if event.limit is None else event.limit
    if event.trigger == "lending_value_exceeded":
        marks = dict(event.inputs.marks)
        balances = {a: b for a, b in event.inputs.holdings.balances.items() if a in marks}
        lending = risk.lending_value(balances, marks, policy)
        out.lines.append(
            "lending value = Σ non-cash eligible b * m * (1 - haircut_initial) = " + _n(lending)
        )
        out.check("limit (lending value)", event.limit, _n(lending))
    else:
        out.lines.append(f"limit = the account's credit limit, {_n(event.limit)} USD")
    out.check("loan above the limit", True, figures.loan > limit)
    amount = limit_call_amount(figures.loan, limit)
    out.lines.append(
        f"amount = loan - limit = {_n(figures.loan)} - {_n(event.limit)}, rounded up to the cent"
    )
    out.check("amount", event.amount, _n(amount))


def _explain_loan(
    event: je.LoanDrawn | je.LoanDrawRejected | je.DebitFinanced,
    policy: Policy,
    book: Book | None,
    out: Explanation,
) -> None:
    _require_policy(event.policy_version, policy, event.seq)
    limits = event.limits
    if limits is None:
        if isinstance(event, je.LoanDrawRejected):
            _explain_refusal(event, policy, book, out)
        else:
            out.lines.append("recorded no limits")
        return
    loan_after = limits.loan_before + event.amount
    out.lines.append(
        f"loan after = {_n(limits.loan_before)} + {_n(event.amount)} = {_n(loan_after)}"
    )
    out.check("loan after", limits.loan_after, _n(loan_after))
    funds = policy.shareholders_funds
    firm_max = funds * policy.max_total_loans_multiple
    client_max = funds * policy.max_client_loan_share
    out.lines.append(f"firm max = {_n(funds)} * {_n(policy.max_total_loans_multiple)}")
    out.check("firm loans max", limits.firm_loans_max, _n(firm_max))
    out.lines.append(f"client max = {_n(funds)} * {_n(policy.max_client_loan_share)}")
    out.check("client loan max", limits.client_loan_max, _n(client_max))
    if book is not None and event.account_id in book.accounts:
        marks = dict(event.marks)
        account = book.accounts[event.account_id]
        # Only priced collateral lends: a financed debit counts an unpriced asset as nothing.
        balances = {a: b for a, b in account.balances.items() if a in marks}
        lending = risk.lending_value(balances, marks, policy)
        if isinstance(event, je.DebitFinanced):
            shortfall = -account.balance(REPORTING_ASSET)
            out.check("amount = the USD below zero", event.amount, _n(shortfall))
        out.lines.append(
            "lending value = Σ non-cash eligible b * m * (1 - haircut_initial), balances "
            f"from the journal before seq {event.seq}, recorded marks = {_n(lending)}"
        )
        out.check("lending value", limits.lending_value, _n(lending))
        _firm_loans_lines(event, limits, book, out)
        _group_lines(event, policy, book, out)
    failed = None
    checks = loan_limit_checks(limits) + group_limit_checks(event.group_limit)
    for reason, figure, bound, what in checks:
        holds = figure <= bound
        out.lines.append(f"{what}: {_n(figure)} ≤ {_n(bound)}: {'holds' if holds else 'FAILS'}")
        failed = failed or (None if holds else str(reason))
    if isinstance(event, je.DebitFinanced):
        out.lines.append(
            f"a fact ({event.cause}, seq {event.cause_seq}) is financed even past a limit"
        )
        out.check("limits broken", event.limits_broken, broken_limits(limits, event.group_limit))
        return
    decided = event.reason_code if isinstance(event, je.LoanDrawRejected) else None
    out.check("decision (first failing limit)", decided, failed)


def _group_lines(
    event: je.LoanDrawn | je.LoanDrawRejected | je.DebitFinanced,
    policy: Policy,
    book: Book,
    out: Explanation,
) -> None:
    """The related-client group's figures from the journal (docs/risk-tools.md): the group the
    account was in, its members, and every member's loan (interest included) before the
    event plus the amount; nothing for an account outside any group."""
    group_id = book.accounts[present(event.account_id, "a loan names its account")].related_group
    recorded = event.group_limit
    if recorded is None and group_id is None:
        return
    out.check("related group", None if recorded is None else recorded.group_id, group_id, "journal")
    if recorded is None or group_id is None:
        return
    members = sorted(book.related_groups[group_id])
    out.check("group members", ", ".join(recorded.members), ", ".join(members), "journal")
    before = book.group_loans(group_id)
    out.lines.append(
        f"group loans after = Σ the members' loans in the journal before seq {event.seq} + the "
        f"amount = {_n(before)} + {_n(event.amount)} = {_n(before + event.amount)}"
    )
    out.check("group loans after", recorded.group_loans_after, _n(before + event.amount), "journal")
    out.lines.append(
        f"group max = {_n(policy.shareholders_funds)} * {_n(policy.max_client_loan_share)}"
    )
    out.check("group loan max", recorded.group_loan_max, _n(group_loan_max(policy)))


def _firm_loans_lines(
    event: je.LoanDrawn | je.LoanDrawRejected | je.DebitFinanced,
    limits: je.LoanLimits,
    book: Book,
    out: Explanation,
) -> None:
    """The firm's total after the draw, recomputed from the journal: every client's loan
    (principal and accrued interest) as the journal left it before the event, summed
    afresh rather than taken from the book's running total, plus the amount."""
    borrowers = [a.loan for a in book.clients() if not a.loan.is_zero()]
    before = sum(borrowers, ZERO)
    after = before + event.amount
    plural = "" if len(borrowers) == 1 else "s"
    out.lines += [
        f"firm loans before = Σ the clients' loans in the journal before seq {event.seq} "
        f"= {_n(before)} ({len(borrowers)} borrower{plural})",
        f"firm loans after = {_n(before)} + {_n(event.amount)} = {_n(after)}",
    ]
    out.check("firm loans after", limits.firm_loans_after, _n(after), source="journal")


def _explain_without_figures(
    event: je.FundingSettled | je.WithdrawalRejected | je.LoanRepaid | je.BadDebtRecorded,
    policy: Policy,
    book: Book | None,
    out: Explanation,
    *,
    fill: FillDeficit | None = None,
) -> None:
    """Decisions that record no risk figures, recomputed from what they record and checked
    against the book the journal built before them."""
    match event:
        case je.FundingSettled():
            _explain_funding(event, policy, book, out)
        case je.WithdrawalRejected():  # refused before any figure was computed
            _explain_refusal(event, policy, book, out)
        case je.LoanRepaid():
            _explain_repayment(event, book, out)
        case je.BadDebtRecorded():
            _explain_bad_debt(event, book, out, fill)
        case _:
            assert_never(event)


def _explain_bad_debt(
    event: je.BadDebtRecorded, book: Book | None, out: Explanation, fill: FillDeficit | None
) -> None:
    """What a client's liquidation could not cover, as the journal left the account once its
    steps, the fund's draw and the reductions were booked: the USD still below zero (cash),
    and the loan when no USD is left to repay it (docs/risk-model.md "Liquidation")."""
    account = None if book is None else book.accounts.get(event.account_id or "")
    if account is not None and not account.is_client and fill is not None:
        out.lines.append(
            "cash written off = the venue fill's loss less the fund's draw and what was "
            f"deleveraged = {_n(fill.left)}"
        )
        out.check(
            "cash written off", event.cash_written_off, _in_value(fill.left, event.cash_written_off)
        )
        out.check(
            "loan written off", event.loan_written_off, _in_value(ZERO, event.loan_written_off)
        )
        return
    if account is None or not account.is_client:
        out.lines.append("(the fill this bad debt covers was not read: not recomputed)")
        return
    usd = account.balance(REPORTING_ASSET)
    out.lines.append(
        f"after the liquidation (journal): {event.account_id} holds {_n(usd)} USD and owes "
        f"{_n(account.loan)} USD"
    )
    cash = max(ZERO, -usd)
    loan = account.loan if usd <= ZERO else ZERO
    # Compared in value: a zero is written 0 or 0.00 by the paths that reach it.
    out.lines.append(f"cash written off = the USD below zero = {_n(cash)}")
    out.check("cash written off", event.cash_written_off, _in_value(cash, event.cash_written_off))
    out.lines.append(f"loan written off = the loan, no USD left to repay it = {_n(loan)}")
    out.check("loan written off", event.loan_written_off, _in_value(loan, event.loan_written_off))


def _in_value(computed: Decimal, recorded: Decimal) -> Decimal:
    """`computed`, written as `recorded` when the two are the same number."""
    return recorded if computed == recorded else computed


def _explain_refusal(
    event: je.WithdrawalRejected | je.LoanDrawRejected,
    policy: Policy,
    book: Book | None,
    out: Explanation,
) -> None:
    """A request refused before any figure was computed, checked against the account as the
    journal booked it: the call it had open, or the balance it held."""
    out.lines.append(f"refused before any figure was computed: {event.reason_code}: {event.detail}")
    if book is None or event.account_id not in book.accounts:
        return
    account = book.accounts[event.account_id]
    if event.reason_code == ReasonCode.MARGIN_CALL_OPEN:
        call = account.margin_call
        out.lines.append(
            "rule: no advance (withdrawal, loan draw) while a margin call is open, unless the"
            " policy's advances_during_call allows it"
        )
        out.check("advances during a call (policy)", False, policy.advances_during_call)
        if call is not None:
            out.lines.append(
                f"  the journal has call {call.call_id} open, issued {call.issued_at} for "
                f"{_n(call.amount)} USD, deadline {format_timestamp(call.deadline)}"
            )
        out.check("a margin call open", True, call is not None, "journal")
    elif event.reason_code == ReasonCode.INSUFFICIENT_BALANCE and isinstance(
        event, je.WithdrawalRejected
    ):
        held = account.balance(event.asset)
        out.lines.append(
            f"rule: a withdrawal needs the balance: {event.account_id} holds {_n(held)} "
            f"{event.asset} in the journal before seq {event.seq}, and asked for {_n(event.amount)}"
        )
        out.check("the balance below the amount asked", True, held < event.amount, "journal")


def _explain_repayment(event: je.LoanRepaid, book: Book | None, out: Explanation) -> None:
    """A repayment settles the accrued interest first, then the principal (docs/risk-model.md)."""
    out.lines.append("rule: a repayment settles accrued interest first, then principal")
    if book is None or event.account_id not in book.accounts:
        return
    account = book.accounts[event.account_id]
    interest, principal = account.interest_first(event.amount)
    out.lines.append(
        f"loan before (journal): principal {_n(account.loan_principal)}, accrued interest "
        f"{_n(account.loan_interest)}; repaid {_n(event.amount)}"
    )
    out.check("repaid at most the loan", True, event.amount <= account.loan, "journal")
    out.lines.append(
        f"interest paid = min({_n(event.amount)}, {_n(account.loan_interest)}) = "
        f"{_n(interest)}; principal paid = {_n(event.amount)} - {_n(interest)} = {_n(principal)}"
    )
    out.check("interest paid", _n(event.interest_paid), _n(interest))
    out.check("principal paid", _n(event.principal_paid), _n(principal))


def _explain_interest(
    event: je.InterestAccrued,
    policy: Policy,
    out: Explanation,
    day_ends: Mapping[str, Decimal] | None,
) -> None:
    """`day_ends`: the account's day-end principals before the close (from the journal),
    to check each day's principal against."""
    out.check("annual rate (policy)", event.annual_rate, _n(policy.loan_annual_rate))
    first = event.first_date or event.business_date
    out.lines.append(f"calendar days {first} to {event.business_date}: {event.days}")
    if event.first_date is not None:
        span = date.fromisoformat(event.business_date) - date.fromisoformat(event.first_date)
        out.check("days", event.days, span.days + 1)
    principals = event.daily_principals or {first: event.principal}
    if day_ends is not None and event.first_date is not None:
        start = date.fromisoformat(event.first_date)
        for offset in range(event.days):
            day = (start + timedelta(days=offset)).isoformat()
            recorded = principals.get(day, event.principal)
            journal = principal_at_end_of(day_ends, day)
            out.check(f"{day}'s principal", _n(recorded), _n(journal), source="journal")
    if event.daily_principals is not None:
        out.check("a principal for each day", len(principals), event.days)
        out.check("the last day's is the principal", _n(principals[event.business_date]),
                  _n(event.principal))  # fmt: skip
    days = 1 if event.daily_principals is not None else event.days
    for day, principal in principals.items():
        interest = risk.daily_interest(principal, policy)
        out.lines.append(
            f"{day}: a day's interest = {_n(principal)} * {_n(event.annual_rate)} / "
            f"{event.day_count}, rounded half-even to {USD_SCALE} places = {_n(interest)}"
            + ("" if days == 1 else f", for each of the {days} days")
        )
    each_day = [p for p in principals.values() for _ in range(days)]
    amount = risk.interest_for_days(each_day, policy)
    out.lines.append(f"interest = the sum over the days = {_n(amount)}")
    out.check("amount", event.amount, _n(amount))


def _explain_waiting(event: je.MarginDecisionWaiting, policy: Policy, out: Explanation) -> None:
    if not event.stale_marks:
        out.lines.append("the wait ended: the decision is taken on fresh marks, or not needed")
        return
    now = datetime.fromisoformat(event.recorded_at)
    limit = timedelta(minutes=policy.mark_max_age_minutes)
    out.lines.append(
        f"rule: no margin decision on a mark older than {limit} at {event.recorded_at}"
    )
    if event.limit_call:
        out.lines.append(
            "a limit call waits too: the freshly marked collateral lends less than both the"
            " credit limit and the loan, so a stale mark could change it"
        )
    for instrument in event.stale_marks:
        observed = event.mark_times.get(instrument)
        age = None if observed is None else now - datetime.fromisoformat(observed)
        out.lines.append(f"{instrument}: observed {observed}, {age} old")
        out.check(f"{instrument} stale", True, age is not None and age > limit)


def _explain_reversal(
    event: je.TradeReversed | je.DepositReversed, book: Book | None, out: Explanation
) -> None:
    """A correction undoes the original's postings; the figures come from the original."""
    out.lines.append(f"reverses seq {event.original_seq} exactly, because: {event.reason}")
    if book is None:
        return
    if isinstance(event, je.DepositReversed):
        original = book.deposits[event.reference]
        out.check("amount = the deposit's", event.amount, original.amount)
        return
    trade = present(book.booked_trade(event.trade_id), f"trade {event.trade_id} never booked")
    out.check("original seq", event.original_seq, trade.seq)
    out.check("fee refunded = the trade's fee", event.fee_refunded, trade.fee)
    if trade.perpetual:
        house = book.accounts[HOUSE].positions.get(trade.instrument)
        signed = Decimal(trade.quantity) * (1 if trade.side == "buy" else -1)
        effect = risk.trade_realisation(
            house.size if house else ZERO,
            house.entry_price if house else ZERO,
            signed,
            Decimal(trade.price),
        )
        realised = quantize(effect.realised_pnl, USD_SCALE)
        out.lines.append(
            f"the house trades {_n(signed)} back at {trade.price}: realised {_n(realised)}"
        )
        out.check("house realised PnL", event.house_realized_pnl, _n(realised))
        out.check("position restored", event.size_after, _n(trade.size_before))


def _explain_funding(
    event: je.FundingSettled, policy: Policy, book: Book | None, out: Explanation
) -> None:
    mark, rate = event.mark_price, event.rate
    bound = policy.market(event.market).max_funding_rate
    out.lines.append(f"rule: |f| ≤ the policy's bound {_n(bound)}; each position pays s * M * f")
    out.check("rate within the bound", True, abs(rate) <= bound)
    total = ZERO
    for payment in event.payments:
        amount = quantize(DECIMAL_CONTEXT.multiply(payment.size * mark, rate), USD_SCALE)
        out.lines.append(
            f"{payment.account_id}: s * M * f = {_n(payment.size)} * {_n(mark)} * "
            f"{_n(rate)} = {_n(amount)}"
        )
        out.check(f"{payment.account_id} pays", payment.amount, _n(amount))
        total += payment.amount
    out.lines.append(f"payments sum to {_n(total)}; residue to the house {_n(event.residue)}")
    out.check("payments sum to the residue", event.residue, _n(total))
    if book is not None:
        _funding_against_journal(event, book, out)


def _funding_against_journal(event: je.FundingSettled, book: Book, out: Explanation) -> None:
    """The payments recompute from their recorded sizes and mark; these are the journal's:
    the market's mark, and every position open in it (each paid once, at its size)."""
    market = event.market
    observed = book.mark_times.get(market)
    out.lines.append(
        f"recorded inputs against the journal before seq {event.seq}:\n"
        f"  mark {market} {_n(book.marks.get(market))}: "
        + ("never marked" if observed is None else f"observed {format_timestamp(observed)}")
    )
    out.check(f"mark {market}", event.mark_price, book.marks.get(market), "journal")
    open_sizes = {
        account.account_id: account.positions[market].size
        for account in book.accounts.values()
        if market in account.positions
    }
    paid = {payment.account_id: payment.size for payment in event.payments}
    for account_id in sorted(paid.keys() | open_sizes.keys()):
        out.check(
            f"{account_id}'s {market} position paid on",
            _n(paid.get(account_id)),
            _n(open_sizes.get(account_id)),
            "journal",
        )


def _step_line(step: je.LiquidationStep, number: int) -> str:
    return (
        f"  step {number} {step.kind} {step.instrument}: quantity {_n(step.quantity)} at "
        f"{_n(step.price)}, proceeds {_n(step.proceeds)}, fee {_n(step.fee)}, "
        f"loan repaid {_n(step.loan_repaid)}"
    )


def _apply_steps(
    trigger: je.LiquidationTriggered,
    steps: list[je.LiquidationStep],
    policy: Policy,
    out: Explanation,
) -> risk.AccountHoldings:
    """The trigger's holdings after the steps, each step's proceeds and fee recomputed."""
    holdings, marks = _holdings(trigger.inputs)
    balances = dict(holdings.balances)
    positions = {p.market: p for p in holdings.positions}
    loan = holdings.loan
    cash = balances.get(REPORTING_ASSET, ZERO)
    for number, step in enumerate(steps, start=1):
        out.lines.append(_step_line(step, number))
        quantity, price = step.quantity, step.price
        if step.kind == "close_position":
            held = positions.pop(step.instrument)
            realised = quantize(quantity * (price - held.entry_price), USD_SCALE)
            out.check(f"step {number} realised = s * (price - e)", step.proceeds, _n(realised))
            cash += step.proceeds
            left = risk.AccountHoldings(
                {**balances, REPORTING_ASSET: cash}, loan, tuple(positions.values())
            )
            equity_left = risk.margin_figures(
                left, marks, policy, with_liquidation_prices=False
            ).equity
            rate = policy.market(step.instrument).liquidation_fee_rate
            fee = risk.liquidation_fee(abs(quantity) * price, rate, equity_left)
            out.check(
                f"step {number} fee = min(|s| * price * {_n(rate)}, equity left "
                f"{_n(equity_left)}, at least 0)",
                step.fee,
                _n(fee),
            )
            cash -= step.fee
        elif step.kind == "sell_collateral":
            balances[step.instrument] = balances[step.instrument] - quantity
            proceeds = quantize(quantity * price, USD_SCALE)
            out.check(f"step {number} proceeds = q * price", step.proceeds, _n(proceeds))
            cash += step.proceeds - step.loan_repaid
        else:
            cash -= step.loan_repaid
        loan -= step.loan_repaid
    balances[REPORTING_ASSET] = cash
    return risk.AccountHoldings(balances, loan, tuple(positions.values()))


def _explain_completed(
    event: je.LiquidationCompleted,
    trigger: je.LiquidationTriggered | None,
    policy: Policy,
    out: Explanation,
) -> None:
    if trigger is None:
        out.lines.extend(_step_line(s, n) for n, s in enumerate(event.steps, start=1))
        out.lines.append("(its liquidation_triggered is not in the journal read)")
        return
    _require_policy(trigger.inputs.policy_version, policy, trigger.seq)
    out.lines.append(
        f"from the holdings recorded at liquidation_triggered (seq {trigger.seq}), the steps:"
    )
    after = _apply_steps(trigger, event.steps, policy, out)
    marks = dict(trigger.inputs.marks)
    recomputed = figures_record(risk.margin_figures(after, marks, policy))
    out.lines.append("figures after, recorded against recomputed:")
    for name in _FIGURE_NAMES:
        out.check(name, getattr(event.figures_after, name), getattr(recomputed, name))


def _explain_fill(event: je.LiquidationFilled, book: Book | None, out: Explanation) -> None:
    lot = None if book is None else book.lot(event.liquidation_id, event.instrument)
    if lot is None:
        out.lines.append("(the liquidation this fill executes is not in the journal read)")
        return
    quantity, price, fee = event.quantity, event.price, event.fee
    out.lines.append(
        f"liquidation {lot.liquidation_id} of {lot.account_id} left {_n(lot.remaining)} "
        f"{lot.instrument} to execute, taken over at {_n(lot.takeover_price)}"
    )
    out.check("takeover price", event.takeover_price, _n(lot.takeover_price))
    out.check("side (toward 0)", event.side, lot.closing_side)
    left = abs(lot.remaining) - quantity
    out.lines.append(f"left after = |{_n(lot.remaining)}| - {_n(event.quantity)} = {_n(left)}")
    out.check("left after", abs(event.remaining_after), left)
    quote = None
    if lot.kind == "sell_collateral":
        quote = quantize(DECIMAL_CONTEXT.multiply(quantity, price), USD_SCALE)
    gross, cost = fill_result(lot, quantity, price, quote)
    if cost is None:
        out.lines.append(
            f"gross result = closed * (fill price - takeover price) = ±{_n(event.quantity)} * "
            f"({_n(event.price)} - {_n(event.takeover_price)}), rounded half-even = {_n(gross)}"
        )
    else:
        out.lines.append(
            f"gross result = quote {_n(quote)} - takeover cost {_n(cost)} "
            f"({'what is left of the cost' if left.is_zero() else 'quantity * takeover price'})"
            f" = {_n(gross)}"
        )
        out.check("takeover cost", event.takeover_cost, _n(cost))
    out.check("gross result", event.gross_result, _n(gross))
    out.lines.append(
        f"result = gross result - fee = {_n(gross)} - {_n(event.fee)} = {_n(gross - fee)}"
    )
    out.check("result", event.result, _n(gross - fee))
    out.check(
        "paid into the insurance fund (a gain)",
        event.insurance_fund_paid,
        _n(max(gross - fee, ZERO)),
    )


def _explain_trade(
    event: je.PerpTradeBooked | je.SpotTradeBooked, book: Book | None, out: Explanation
) -> None:
    """A trade is a fact, but what it booked is arithmetic: a spot trade's quote, a perpetual
    trade's position after it and its realised PnL."""
    if isinstance(event, je.SpotTradeBooked):
        quote = quantize(DECIMAL_CONTEXT.multiply(event.quantity, event.price), USD_SCALE)
        out.lines.append(
            f"quote = quantity * price = {_n(event.quantity)} * {_n(event.price)}, rounded "
            f"half-even to the cent = {_n(quote)}"
        )
        out.check("quote amount", event.quote_amount, _n(quote))
    elif book is not None:
        _explain_perp_trade(event, book, out)


def _explain_perp_trade(event: je.PerpTradeBooked, book: Book, out: Explanation) -> None:
    """A trade on the position the journal holds before it (docs/risk-model.md "Rules")."""
    held = book.account(present(event.account_id, "a trade names its account")).positions
    before = held.get(event.market)
    size, entry = (before.size, before.entry_price) if before else (ZERO, ZERO)
    signed = event.quantity if event.side == "buy" else -event.quantity
    effect = risk.trade_realisation(size, entry, signed, event.price)
    out.lines += [
        f"position before (journal): size s = {_n(size)}, entry e = {_n(entry)}; "
        f"trade q = {_n(signed)} at p = {_n(event.price)}",
        "rule: growing, e' = (s * e + q * p) / (s + q); reducing, realised = -q * (p - e) "
        "and e kept; flipping, realised = s * (p - e) and e' = p",
    ]
    out.check("size after", event.size_after, _n(effect.new_size))
    out.check("entry price after", event.entry_price_after, _n(effect.new_entry_price))
    realised = quantize(effect.realised_pnl, USD_SCALE)
    out.check("realised PnL, to the cent", event.realized_pnl, _n(realised))


def _explain_draw(
    event: je.InsuranceFundDrawn,
    book: Book | None,
    fill: je.LiquidationFilled | None,
    out: Explanation,
) -> None:
    """The fund covers, as far as it holds, what a liquidation left uncovered: a client's
    USD below zero after its liquidation's steps, or the loss of a venue fill on the
    liquidation account (the fill just before, of the same input)."""
    if book is None or (event.account_id == LIQUIDATION and fill is None):
        out.lines.append("(what this draw covers is not in the journal read)")
        return
    if fill is not None and event.account_id == LIQUIDATION:
        wanted = -fill.result
        owed = f"the loss of the fill at seq {fill.seq} = -({_n(fill.result)})"
    else:
        cash = book.account(present(event.account_id, "a draw names its account")).balance(
            REPORTING_ASSET
        )
        wanted = max(ZERO, -cash)
        owed = f"{event.account_id}'s USD below zero after the steps = -({_n(cash)})"
    fund = book.account(INSURANCE_FUND).balance(REPORTING_ASSET)
    drawn = min(wanted, max(fund, ZERO))
    out.lines += [
        f"wanted = {owed} = {_n(wanted)}",
        f"the fund held {_n(fund)} before; drawn = min(wanted, what it held) = {_n(drawn)}",
    ]
    out.check("amount", event.amount, _n(drawn))
    out.check("fund balance after", event.fund_balance_after, _n(fund - drawn))


def _explain_deleveraging(
    event: je.AutoDeleveraged,
    policy: Policy,
    book: Book | None,
    deleveraged_before: Set[str],
    out: Explanation,
    *,
    fill: FillDeficit | None,
) -> None:
    recorded = event.ranking
    if recorded is None or book is None:
        out.lines.append("(no ranking recorded, or the journal before it was not read)")
        return
    winner_sign = -1 if event.size_reduced > ZERO else 1
    excluded = {event.bankrupt_account_id, *deleveraged_before}
    queue = deleveraging_queue(book, policy, event.market, winner_sign, excluded)
    side = "short" if winner_sign < 0 else "long"
    out.lines.append(
        f"queue: the {side} positions of {event.market} in profit at the mark "
        f"{_n(event.mark_price)}, but {', '.join(sorted(excluded))}, by score, highest first:"
    )
    for queued in queue[:_QUEUE_LINES_MAX]:
        rank = queued.rank
        out.lines.append(
            f"  {queued.account_id}: size {_n(queued.size)} from {_n(queued.entry_price)}, "
            f"U = {_n(rank.unrealized_pnl)}, score {_n(rank.score)}"
        )
    if not queue:
        out.check("account deleveraged", event.account_id, None)
        return
    expected = ranking_record(queue[0], len(deleveraged_before) + 1)
    out.check("account deleveraged (first in the queue)", event.account_id, queue[0].account_id)
    out.lines += [
        f"pnl ratio = U / (|s| * e) = {_n(expected.unrealized_pnl)} / (|{_n(expected.size)}| * "
        f"{_n(expected.entry_price)}) = {_n(expected.pnl_ratio)}",
        f"effective leverage = N / E = {_n(expected.notional)} / {_n(expected.equity)} = "
        f"{_n(expected.effective_leverage)} (none when E <= 0: after every scored one)",
        f"score = pnl ratio * effective leverage = {_n(expected.pnl_ratio)} * "
        f"{_n(expected.effective_leverage)} = {_n(expected.score)}",
    ]
    for name in je.DeleveragingRank.__struct_fields__:
        out.check(name, getattr(recorded, name), getattr(expected, name))
    _deleveraging_amounts(event, book, queue[0].size, not deleveraged_before, out, fill=fill)


def _deleveraging_amounts(
    event: je.AutoDeleveraged,
    book: Book,
    winner_size: Decimal,
    first: bool,
    out: Explanation,
    *,
    fill: FillDeficit | None,
) -> None:
    """A deficit deleveraged (docs/risk-model.md "Auto-deleveraging", "Venue fills"): a
    client's is its USD below zero, priced from the mark `M`; a venue fill's is its loss
    less the fund's draw and what was absorbed before, priced from the lot's takeover price
    `P_t`. The units left are the liquidation's lot in the market, as the journal booked it
    before this reduction; the bankruptcy price `B = base + deficit / units left` (the first
    reduction's); each winner gives up `u * |B - base|`, the last one what is left."""
    bankrupt = book.accounts.get(event.bankrupt_account_id)
    lot = book.lot(event.liquidation_id, event.market)
    if bankrupt is None or lot is None or lot.remaining.is_zero():
        out.lines.append("(no lot left in the journal to deleverage: amounts not recomputed)")
        return
    mark, price = event.mark_price, event.bankruptcy_price
    if bankrupt.is_client:
        deficit = max(ZERO, -bankrupt.balance(REPORTING_ASSET))
        base, base_name = mark, "M"
        source = f"{event.bankrupt_account_id}'s USD below zero (journal)"
    elif fill is not None:
        deficit, first = fill.left, not fill.reduced_before
        base, base_name = lot.takeover_price, "P_t"
        source = "the fill's loss less the fund's draw and what was absorbed before"
    else:
        out.lines.append("(the fill this reduction covers was not read: amounts not recomputed)")
        return
    out.lines.append(
        f"deficit left = {source} = {_n(deficit)}; units left = the lot of {event.market} "
        f"(journal) = {_n(lot.remaining)}"
    )
    out.check(f"mark {event.market}", mark, book.marks.get(event.market), "journal")
    if first:
        bankruptcy = quantize(
            DECIMAL_CONTEXT.add(base, DECIMAL_CONTEXT.divide(deficit, lot.remaining)),
            DERIVED_FIGURE_SCALE,
        )
        out.lines.append(
            f"bankruptcy price B = {base_name} + deficit / s = {_n(base)} + {_n(deficit)} / "
            f"{_n(lot.remaining)} = {_n(bankruptcy)}"
        )
        out.check("bankruptcy price", price, _n(bankruptcy))
    units = min(abs(winner_size), abs(lot.remaining))
    out.lines.append(
        f"units = min(|winner's size| {_n(abs(winner_size))}, units left) = {_n(units)}"
    )
    out.check("units reduced", _n(abs(event.size_reduced)), _n(units))
    give_up = quantize(units * abs(price - base), USD_SCALE)
    last = units == abs(lot.remaining)
    absorbed = deficit if last else min(deficit, give_up)
    each = f"u * |B - {base_name}|"
    rule = "the deficit left (the last units)" if last else f"min(deficit left, {each})"
    out.lines.append(
        f"absorbed = {rule} = {_n(absorbed)} "
        f"({each} = {_n(units)} * |{_n(price)} - {_n(base)}| = {_n(give_up)})"
    )
    out.check("absorbed", event.absorbed, _n(absorbed))


def explain_event(
    event: je.JournalEventType,
    policy: Policy,
    *,
    book_before: Book | None = None,
    trigger: je.LiquidationTriggered | None = None,
    deleveraged_before: Set[str] = frozenset(),
    marks_applied: Mapping[str, je.MarkPriceApplied] | None = None,
    fill_before: je.LiquidationFilled | None = None,
    day_ends_before_close: Mapping[str, Mapping[str, Decimal]] | None = None,
    fill_deficit: FillDeficit | None = None,
) -> Explanation:
    """Recompute one decision: `book_before` (the book right before the event) lets a loan
    draw's lending value be recomputed and a decision's recorded marks and holdings be
    compared with the journal's (`marks_applied`: each instrument's latest mark, when
    tracked); `trigger` is a completion's liquidation_triggered; `fill_before` the event
    before a draw, when it is a fill of the same input; `day_ends_before_close` each
    account's day-end loan principals right before the latest day_closed, for interest;
    `fill_deficit` the loss of the venue fill the event was decided from, still uncovered."""
    journal = None if book_before is None else _JournalBefore(book_before, marks_applied or {})
    out = Explanation(event.seq, _tag(event))
    out.lines.append(
        f"seq {event.seq} {out.type} at {event.recorded_at}, caused by {event.causation_id}"
        + (f", account {event.account_id}" if event.account_id else "")
    )
    inputs = _recorded_inputs(event)
    match event:
        case _ if inputs is not None:
            _explain_inputs(event, inputs, policy, out, journal)
        case je.LoanDrawn() | je.LoanDrawRejected() | je.DebitFinanced():
            _explain_loan(event, policy, book_before, out)
        case je.InterestAccrued():
            day_ends = day_ends_before_close
            account_ends = None if day_ends is None else day_ends.get(event.account_id or "", {})
            _explain_interest(event, policy, out, account_ends)
        case je.MarginDecisionWaiting():
            _explain_waiting(event, policy, out)
        case je.TradeReversed() | je.DepositReversed():
            _explain_reversal(event, book_before, out)
        case je.FundingSettled() | je.WithdrawalRejected() | je.LoanRepaid() | je.BadDebtRecorded():
            _explain_without_figures(event, policy, book_before, out, fill=fill_deficit)
        case je.LiquidationCompleted():
            _explain_completed(event, trigger, policy, out)
        case je.PerpTradeBooked() | je.SpotTradeBooked():
            _explain_trade(event, book_before, out)
        case je.LiquidationFilled():
            _explain_fill(event, book_before, out)
        case je.InsuranceFundDrawn():
            _explain_draw(event, book_before, fill_before, out)
        case je.AutoDeleveraged():
            _explain_deleveraging(
                event, policy, book_before, deleveraged_before, out, fill=fill_deficit
            )
        case _:
            out.lines.append("not a decision taken on figures: nothing to recompute")
    return out


DECISION_TYPES = (
    je.WithdrawalApproved,
    je.WithdrawalRejected,
    je.MarginCallIssued,
    je.MarginCallCleared,
    je.LiquidationTriggered,
    je.LiquidationCompleted,
    je.LoanDrawn,
    je.LoanDrawRejected,
    je.LoanRepaid,
    je.DebitFinanced,
    je.InterestAccrued,
    je.MarginDecisionWaiting,
    je.TradeReversed,
    je.DepositReversed,
    je.FundingSettled,
    je.PerpTradeBooked,
    je.SpotTradeBooked,
    je.LiquidationFilled,
    je.InsuranceFundDrawn,
    je.AutoDeleveraged,
    je.BadDebtRecorded,
)


def _recorded_inputs(event: je.JournalEventType) -> je.DecisionInputs | None:
    """What a decision taken on an account's figures recorded it was taken on."""
    match event:
        case je.WithdrawalApproved():
            return event.inputs_after
        case je.WithdrawalRejected() | je.MarginCallIssued() | je.MarginCallCleared():
            return event.inputs
        case je.LiquidationTriggered():
            return event.inputs
        case _:
            return None


def _fill_of(
    previous: je.JournalEventType | None, event: je.JournalEventType
) -> je.LiquidationFilled | None:
    """The fill a draw covers: the event just before it, decided from the same input."""
    if isinstance(previous, je.LiquidationFilled) and isinstance(event, je.InsuranceFundDrawn):
        same = previous.causation_id == event.causation_id
        return previous if same and previous.liquidation_id == event.liquidation_id else None
    return None


def _same_cause(
    uncovered: tuple[str, FillDeficit] | None, event: je.JournalEventType
) -> FillDeficit | None:
    return uncovered[1] if uncovered and uncovered[0] == event.causation_id else None


def _uncovered_after(
    uncovered: tuple[str, FillDeficit] | None, event: je.JournalEventType
) -> tuple[str, FillDeficit] | None:
    """A venue fill's loss still uncovered after `event`: set by a losing fill, less each
    draw of the fund and each reduction decided from the same fill (docs/risk-model.md)."""
    match event:
        case je.LiquidationFilled() if event.result < ZERO:
            return event.causation_id, FillDeficit(-event.result, reduced_before=False)
        case je.InsuranceFundDrawn() if event.account_id == LIQUIDATION:
            left = _same_cause(uncovered, event)
            if left is not None:
                return event.causation_id, FillDeficit(
                    left.left - event.amount, left.reduced_before
                )
        case je.AutoDeleveraged() if event.bankrupt_account_id == LIQUIDATION:
            left = _same_cause(uncovered, event)
            if left is not None:
                return event.causation_id, FillDeficit(left.left - event.absorbed, True)
        case _:
            pass
    return uncovered


def explain(store: LedgerStore, identifier: str, policies: AdoptedPolicies) -> list[Explanation]:
    """Explain every event `identifier` names, replaying the journal once for the context
    (the book before each decision, the trigger of each liquidation, where each mark was
    applied), each with the policy in force at its seq."""
    wanted = {event.seq: event for event in find_events(store, identifier)}
    triggers: dict[str, je.LiquidationTriggered] = {}
    deleveraged: dict[str, set[str]] = {}  # liquidation id -> accounts deleveraged so far
    marks_applied: dict[str, je.MarkPriceApplied] = {}  # each instrument's latest
    previous: je.JournalEventType | None = None
    book = Book()
    day_ends: dict[str, dict[str, Decimal]] = {}  # each account's, before the latest close
    uncovered: tuple[str, FillDeficit] | None = None  # a fill's loss: its cause, what is left
    found: list[Explanation] = []
    for event in _events(store):
        if event.seq > max(wanted):
            break
        if isinstance(event, je.LiquidationTriggered):
            triggers[event.liquidation_id] = event
        before = (
            deleveraged.setdefault(event.liquidation_id, set())
            if isinstance(event, je.AutoDeleveraged)
            else set()
        )
        if event.seq in wanted:
            trigger = (
                triggers.get(event.liquidation_id)
                if isinstance(event, je.LiquidationCompleted)
                else None
            )
            found.append(
                explain_event(
                    event,
                    policies.in_force(book),
                    book_before=book,
                    trigger=trigger,
                    deleveraged_before=frozenset(before),
                    marks_applied=marks_applied,
                    fill_before=_fill_of(previous, event),
                    day_ends_before_close=day_ends,
                    fill_deficit=_same_cause(uncovered, event),
                )
            )
        if isinstance(event, je.DayClosed):  # the close folds them: interest needs them before
            accounts = book.accounts.values()
            day_ends = {a.account_id: dict(a.principal_day_ends) for a in accounts}
        book.apply(event)
        if isinstance(event, je.MarkPriceApplied):
            marks_applied[event.instrument] = event
        previous = event
        uncovered = _uncovered_after(uncovered, event)
        if isinstance(event, je.AutoDeleveraged) and event.account_id is not None:
            before.add(event.account_id)
    return found
