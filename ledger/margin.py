"""When a margin call is issued, cleared, or turns into a liquidation (docs/risk-model.md "Rules").

After every input that changes an account's equity or requirements, `review` compares
equity with the three requirements:

- `E >= maintenance_requirement`: healthy; an open margin call is cleared as met.
- `liquidation_requirement <= E < maintenance_requirement`: a margin call is issued once,
  for `maintenance_requirement - E`, due `deadline_hours` after the ledger clock.
- `E < liquidation_requirement`: liquidation at once.

A margin loan drawn for a client debit past the account's credit limit or lending value
(`ledger.lending`) also gets a call, when the equity alone would not: its trigger names the
limit, and it is met only once the account is healthy and its loan within both limits.

The first input at or after a call's deadline that finds it still open (checked after
that input is applied, so a deposit that arrives with it counts) triggers liquidation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from ledger import journal_events as je
from ledger import risk
from ledger.book import EQUITY_CALL_TRIGGER, Account, OpenMarginCall
from ledger.desk import Desk
from ledger.invariants import present
from ledger.journal import format_timestamp
from ledger.lending import LimitBreach, limit_breach, limit_call_amount, limit_waits_for_marks
from ledger.liquidation import liquidate
from ledger.rejections import Refusal


def review(desk: Desk, account_ids: Iterable[str], financed: Iterable[str] = ()) -> None:
    """Revalue each client account (in account order) and take the decisions it calls for;
    the `financed` ones (a debit drawn on their loan just now) are held to their limits."""
    if not account_ids and not financed:
        return  # most inputs: nothing touched, nothing financed (decide asks twice per input)
    drawn = frozenset(financed)
    for account_id in sorted(drawn.union(account_ids)):
        account = desk.book.accounts[account_id]
        if account.is_client:
            _review_one(desk, account, account_id in drawn)


def after_cash_moved(desk: Desk, account_ids: Iterable[str]) -> list[str]:
    """Of accounts whose USD or loan alone an input moved (a USD deposit or withdrawal,
    funding, a loan drawn or repaid), those a review could decide anything for.

    The others have no call open, wait for no mark and are healthy without revaluing
    (`Watchlist.still_healthy`: their slack did not shrink since their bands were set):
    their review would record nothing and only re-centre bands that stay valid as they
    are."""
    accounts, waiting = desk.book.accounts, desk.book.waiting
    return [
        account_id
        for account_id in account_ids
        if accounts[account_id].margin_call is not None
        or account_id in waiting
        or not desk.watchlist.still_healthy(accounts[account_id])
    ]


def review_due_calls(desk: Desk) -> None:
    """Liquidate every account whose margin call deadline has passed and is still open."""
    if not desk.watchlist.deadlines:
        return  # no margin call open: the common case, once per input
    now = present(desk.now, "margin calls reviewed before any input set the ledger clock")
    for account_id, call_id in desk.watchlist.due(now):
        account = desk.book.accounts[account_id]
        call = account.margin_call
        if call is None or call.call_id != call_id:
            continue
        figures = _figures_or_none(desk, account)
        if figures is None:
            continue
        if figures.status is risk.MarginStatus.HEALTHY and _met(desk, account, call):
            _clear(desk, account, figures, "met")
        elif not _waits_for_marks(desk, account, needed=True):
            liquidate(desk, account, figures, "margin_call_deadline")
            _after_liquidation(desk, account)


def watch_all(desk: Desk) -> None:
    """After a replay: give every client account its bands and every open call its deadline,
    and make every account whose decision waits for a fresh mark wait for it again."""
    for account_id, stale in desk.book.waiting.items():
        desk.watchlist.wait_for_marks(account_id, stale)
    for account in sorted(desk.book.clients(), key=lambda a: a.account_id):
        figures = None if _cannot_fall_short(account) else _figures_or_none(desk, account)
        if figures is not None:
            desk.watchlist.watch(account, figures, desk.book.marks)
        if account.margin_call is not None:
            call = account.margin_call
            desk.watchlist.expect_deadline(call.deadline, account.account_id, call.call_id)


def _review_one(desk: Desk, account: Account, financed: bool) -> None:
    figures = None
    if account.margin_call is not None or not _cannot_fall_short(account):
        figures = _figures_or_none(desk, account)
    if figures is None:
        _waits_for_marks(desk, account, needed=False)
        desk.watchlist.forget(account.account_id)
        return
    status = figures.status
    call = account.margin_call
    healthy = status is risk.MarginStatus.HEALTHY
    # Held to the loan's limits: right after a financed debit, or when the limit call such
    # a debit called for waited for fresh marks (this review may end the wait).
    limits_due = (
        healthy
        and call is None
        and (financed or account.account_id in desk.book.limit_calls_waiting)
    )
    if not _needs_marks(desk, account, figures):
        if limits_due and limit_waits_for_marks(desk, account):
            _waits_for_marks(desk, account, needed=True, limit_call=True)
        else:
            _waits_for_marks(desk, account, needed=False)
            if healthy and call is not None and _met(desk, account, call):
                _clear(desk, account, figures, "met")
            elif limits_due:
                breach = limit_breach(desk, account)
                if breach is not None:
                    _issue(desk, account, figures, breach)
    elif not _waits_for_marks(desk, account, needed=True):
        if status is risk.MarginStatus.MARGIN_CALL and call is None:
            _issue(desk, account, figures, None)
        else:
            due = call is not None and status is not risk.MarginStatus.LIQUIDATING
            liquidate(
                desk,
                account,
                figures,
                "margin_call_deadline" if due else "below_liquidation_requirement",
            )
            _after_liquidation(desk, account)
            return
    desk.watchlist.watch(account, figures, desk.book.marks)


def _needs_marks(desk: Desk, account: Account, figures: risk.MarginFigures) -> bool:
    """Whether the account calls for a decision taken on its marks: a margin call to issue,
    a liquidation, or an open call past its deadline (one that waited for a fresh mark)."""
    status, call = figures.status, account.margin_call
    if status is risk.MarginStatus.LIQUIDATING:
        return True
    if call is None:
        return status is risk.MarginStatus.MARGIN_CALL
    clock = desk.book.clock
    past_deadline = clock is not None and clock >= call.deadline
    healthy = status is risk.MarginStatus.HEALTHY
    return past_deadline and not (healthy and _met(desk, account, call))


def _waits_for_marks(desk: Desk, account: Account, needed: bool, limit_call: bool = False) -> bool:
    """No margin call or liquidation on a stale mark: when one is `needed` and a mark the
    account holds is stale, the account waits for a fresh one. A change of the wait (it
    starts, its stale marks change, a limit call joins it, or it ends) is journalled; a
    limit call stays in the wait until it ends."""
    stale = desk.stale_marks(account) if needed else []
    account_id = account.account_id
    if stale:
        desk.watchlist.wait_for_marks(account_id, stale)
    book = desk.book
    limit_waits = bool(stale) and (limit_call or account_id in book.limit_calls_waiting)
    if book.waiting.get(account_id, []) != stale or (
        limit_waits and account_id not in book.limit_calls_waiting
    ):
        times = book.mark_times
        desk.record(
            je.MarginDecisionWaiting(
                **desk.common(account_id),
                stale_marks=stale,
                mark_times={i: format_timestamp(times[i]) for i in stale},
                limit_call=limit_waits,
            )
        )
    return bool(stale)


def _met(desk: Desk, account: Account, call: OpenMarginCall) -> bool:
    """A healthy account meets an equity call; a limit call needs the loan within limits."""
    return call.trigger == EQUITY_CALL_TRIGGER or limit_breach(desk, account) is None


def _issue(
    desk: Desk, account: Account, figures: risk.MarginFigures, breach: LimitBreach | None
) -> None:
    """A call on the equity (`breach` None) or on the loan limit `breach` names."""
    now = present(desk.now, "a margin call issued before any input set the ledger clock")
    deadline = now + timedelta(hours=desk.policy.deadline_hours)
    call_id = f"{desk.cause}:call:{account.account_id}"
    common = desk.common(account.account_id)
    inputs = desk.inputs(account, figures)
    if breach is None:
        event = je.MarginCallIssued(
            **common,
            call_id=call_id,
            amount=risk.margin_call_amount(figures),
            deadline=format_timestamp(deadline),
            inputs=inputs,
        )
    else:
        event = je.MarginCallIssued(
            **common,
            call_id=call_id,
            amount=limit_call_amount(breach.loan, breach.limit),
            deadline=format_timestamp(deadline),
            inputs=inputs,
            trigger=breach.trigger,
            limit=breach.limit,
        )
    desk.record(event)
    desk.watchlist.expect_deadline(deadline, account.account_id, call_id)


def _clear(
    desk: Desk, account: Account, figures: risk.MarginFigures, outcome: je.CallOutcome
) -> None:
    call = present(account.margin_call, f"{account.account_id} has no margin call to clear")
    desk.record(
        je.MarginCallCleared(
            **desk.common(account.account_id),
            call_id=call.call_id,
            outcome=outcome,
            inputs=desk.inputs(account, figures),
        )
    )


def _after_liquidation(desk: Desk, account: Account) -> None:
    figures = _figures_or_none(desk, account)
    if figures is None:
        return
    if account.margin_call is not None:
        _clear(desk, account, figures, "liquidated")
    desk.watchlist.watch(account, figures, desk.book.marks)


def _cannot_fall_short(account: Account) -> bool:
    """Healthy at any marks: with no loan, no position and no negative balance,
    `E = sum b*m >= sum b*m*haircut = maintenance_requirement`, as haircuts are at most 1."""
    return (
        account.loan.is_zero()
        and not account.positions
        and all(balance >= 0 for balance in account.balances.values())
    )


def _figures_or_none(desk: Desk, account: Account) -> risk.MarginFigures | None:
    """Figures, or None while an asset the account holds has no mark to be valued at."""
    figures = desk.figures(account)
    return None if isinstance(figures, Refusal) else figures
