"""The margin loan's limits (docs/risk-model.md "Rules"), and client debits financed by the loan.

Every loan, asked for or not, is held to the same four limits: the account's
`credit_limit`, its lending value, the firm's total of margin loans (`max_total_loans_multiple`
times `shareholders_funds`) and one client's share of them (`max_client_loan_share`).

A request (`loan_draw_requested`) past a limit is refused. A booked fact (a spot buy, a fee,
a funding payment, a realised loss, a liquidation fee) cannot be refused: when it takes more
USD than the client holds, `finance_debits` draws the shortfall on the client's margin loan
in the same decision (`debit_financed`, naming the journal event that caused it), so no
client's USD is ever negative. When that draw leaves the loan above the credit limit or the
lending value, the account gets a margin call at once, whose trigger names the limit and
whose amount is what the loan exceeds it by, rounded up to the cent.

The firm's and one client's limits are the firm's to hold, not the client's to restore in a
deadline: a financed debit that breaks one of them (or, for an account in a related-client
group, the group's total, `ledger/groups.py`) names it in `limits_broken`, with the group's
figures, and calls no margin; the `lending-limits` view flags the breach and every later
loan draw past it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger import journal_events as je
from ledger import risk
from ledger.book import Account
from ledger.desk import Desk
from ledger.groups import group_limit_checks, group_loan_limit
from ledger.money import DECIMAL_CONTEXT, REPORTING_ASSET, USD_SCALE, Rounding, quantize
from ledger.rejections import ReasonCode


@dataclass(frozen=True)
class LimitBreach:
    """The account's loan is above `limit`; the trigger of the margin call it gets."""

    trigger: je.LimitCallTrigger
    limit: Decimal
    loan: Decimal


def limit_call_amount(loan: Decimal, limit: Decimal) -> Decimal:
    """A limit call's amount: what the loan exceeds the limit by, rounded up to the cent."""
    return quantize(DECIMAL_CONTEXT.subtract(loan, limit), USD_SCALE, Rounding.CEILING)


def loan_limits(desk: Desk, account: Account, amount: Decimal, lending: Decimal) -> je.LoanLimits:
    """The lending figures of a draw of `amount` on `account`, `lending` its lending value."""
    policy = desk.policy
    return je.LoanLimits(
        loan_before=account.loan,
        loan_after=account.loan + amount,
        credit_limit=account.credit_limit,
        lending_value=lending,
        firm_loans_after=desk.book.total_loans + amount,
        firm_loans_max=policy.shareholders_funds * policy.max_total_loans_multiple,
        client_loan_max=policy.shareholders_funds * policy.max_client_loan_share,
    )


def loan_limit_checks(limits: je.LoanLimits) -> list[tuple[ReasonCode, Decimal, Decimal, str]]:
    """(reason, figure, bound, what) for every lending limit of docs/risk-model.md, in the
    order checked."""
    after = limits.loan_after
    return [
        (ReasonCode.CREDIT_LIMIT_EXCEEDED, after, limits.credit_limit, "credit limit"),
        (ReasonCode.LENDING_VALUE_EXCEEDED, after, limits.lending_value, "lending value"),
        (
            ReasonCode.FIRM_LENDING_LIMIT_EXCEEDED,
            limits.firm_loans_after,
            limits.firm_loans_max,
            "firm's total margin lending limit",
        ),
        (
            ReasonCode.CLIENT_LOAN_LIMIT_EXCEEDED,
            after,
            limits.client_loan_max,
            "per-client share of shareholders' funds",
        ),
    ]


def broken_limits(limits: je.LoanLimits, group: je.GroupLoanLimit | None) -> list[ReasonCode]:
    """The limits a draw with these figures breaks, the group's (if any) last."""
    checks = loan_limit_checks(limits) + group_limit_checks(group)
    return [reason for reason, figure, bound, _ in checks if figure > bound]


def marked_lending_value(
    desk: Desk, account: Account, leaving_out: frozenset[str] = frozenset()
) -> Decimal:
    """The lending value counting only collateral that has a mark (and is not `leaving_out`):
    a fact is financed whether or not every asset is priced, and an unpriced asset lends
    nothing."""
    marks = desk.book.marks
    priced = {a: b for a, b in account.balances.items() if a in marks and a not in leaving_out}
    return risk.lending_value(priced, marks, desk.policy)


def limit_waits_for_marks(desk: Desk, account: Account) -> bool:
    """Whether a stale mark could change the account's limit call (docs/risk-model.md
    "Stale marks"). The limit is the smaller of the credit limit and the lending value,
    and a stale asset adds zero or more to the lending value: when the freshly marked
    collateral alone lends at least the credit limit or the loan, no price of the stale
    ones changes whether the loan is above a limit, nor by how much."""
    stale = frozenset(desk.stale_marks(account))
    if not stale:
        return False
    fresh = marked_lending_value(desk, account, leaving_out=stale)
    if fresh == marked_lending_value(desk, account):
        return False  # no stale asset lends anything (a position's mark, an ineligible asset)
    return fresh < account.credit_limit and fresh < account.loan


def limit_breach(desk: Desk, account: Account) -> LimitBreach | None:
    """The account's credit limit or lending value, whichever the loan exceeds by more."""
    loan = account.loan
    if loan.is_zero():
        return None
    lending = marked_lending_value(desk, account)
    bounds: tuple[tuple[Decimal, je.LimitCallTrigger], ...] = (
        (account.credit_limit, "credit_limit_exceeded"),
        (lending, "lending_value_exceeded"),
    )
    limit, trigger = min(bounds, key=lambda bound: bound[0])
    return LimitBreach(trigger, limit, loan) if loan > limit else None


def finance_debits(desk: Desk) -> list[str]:
    """Draw each overdrawn client's USD shortfall on its margin loan, in account order;
    returns the accounts financed (their margin is reviewed next)."""
    book = desk.book
    financed = sorted(book.overdrawn)
    for account_id in financed:
        cause, cause_seq = book.overdrawn[account_id]
        account = book.accounts[account_id]
        amount = -account.balance(REPORTING_ASSET)
        limits = loan_limits(desk, account, amount, marked_lending_value(desk, account))
        group_limit = group_loan_limit(book, desk.policy, account, amount)
        desk.record(
            je.DebitFinanced(
                **desk.common(account_id),
                amount=amount,
                cause=cause,
                cause_seq=cause_seq,
                limits=limits,
                limits_broken=broken_limits(limits, group_limit),
                marks=desk.held_marks(account),
                policy_version=desk.policy.version,
                group_limit=group_limit,
            )
        )
    return financed
