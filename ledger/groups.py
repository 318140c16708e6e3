"""Related-client groups: accounts a compliance team knows to be related (one beneficial
owner, one family, one group of companies) are held together to the per-client loan limit.

`related_group_set` puts an account in a group or takes it out. Joining is a fact, never
refused, even when the group's loans already exceed the limit: the `lending-limits` view
flags the breach, and every later loan draw of a member is refused
`group_loan_limit_exceeded` while the group's total would stay above it.
"""

from __future__ import annotations

from decimal import Decimal

from ledger import inbox
from ledger import journal_events as je
from ledger.book import Account, Book
from ledger.desk import Desk
from ledger.money import USD_SCALE, format_decimal, quantize
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal


def group_loan_max(policy: Policy) -> Decimal:
    """A group's loans at most what one client may borrow: `max_client_loan_share *
    shareholders_funds` (docs/risk-model.md)."""
    return policy.shareholders_funds * policy.max_client_loan_share


def related_group_set(desk: Desk, record: inbox.RelatedGroupSet) -> list[str] | Refusal:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return account
    desk.record(
        je.RelatedGroupSet(
            **desk.common(record.account_id),
            group_id=record.group_id,
            previous_group_id=account.related_group,
        )
    )
    return []


def group_loan_limit(
    book: Book, policy: Policy, account: Account, amount: Decimal
) -> je.GroupLoanLimit | None:
    """The group figures of a draw of `amount` by `account`; None outside any group."""
    group_id = account.related_group
    if group_id is None:
        return None
    return je.GroupLoanLimit(
        group_id=group_id,
        members=sorted(book.related_groups[group_id]),
        group_loans_after=book.group_loans(group_id) + amount,
        group_loan_max=group_loan_max(policy),
    )


def group_limit_checks(
    limit: je.GroupLoanLimit | None,
) -> list[tuple[ReasonCode, Decimal, Decimal, str]]:
    """(reason, figure, bound, what) of the group limit, checked after the limits of
    `decisions.loan_limit_checks`; none for an account outside any group."""
    if limit is None:
        return []
    after, bound = limit.group_loans_after, limit.group_loan_max
    return [(ReasonCode.GROUP_LOAN_LIMIT_EXCEEDED, after, bound, "related group's loan limit")]


def group_loan_refusal(limit: je.GroupLoanLimit | None) -> Refusal | None:
    if limit is None:
        return None
    for reason, after, bound, what in group_limit_checks(limit):
        if after > bound:
            return Refusal(
                reason,
                f"the loans of related group {limit.group_id} ({len(limit.members)} accounts) "
                f"would reach {format_decimal(after)} USD, above the {what} of "
                f"{format_decimal(quantize(bound, USD_SCALE))} USD (one client's share of "
                "shareholders' funds): ask for less",
            )
    return None
