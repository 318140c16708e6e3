"""What the ledger does with each inbox record (docs/events.md, docs/risk-model.md "Rules").

`decide` runs one decoded record against the desk: it records the journal events the
record causes, then reviews the margin of every account the record touched. It returns
one of three outcomes, as TigerBeetle's `create_transfer` returns a result code:

- `Booked`: the record's journal events are recorded;
- `Rejected`: a request the rules refuse, recorded as its `*_rejected` journal event and
  kept as a reject;
- `Refused`: an input that cannot be booked at all; nothing is recorded, the book is
  untouched, and the input is kept as a reject.

Every rule returns its outcome the same way: a handler returns the accounts it touched, a
`Rejected` or a `Refused`, and a helper that can refuse (`Desk.client`, `fills.lot_to_fill`,
the corrections) returns a `Refusal` value for its caller to switch on. An exception out of
`decide` is a bug or a fault, never a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import assert_never

from ledger import corrections, fills, inbox, risk
from ledger import journal_events as je
from ledger.book import (
    DEPOSITABLE_PLATFORM_ACCOUNTS,
    HOUSE,
    LIQUIDATION,
    Account,
    LiquidationLot,
    is_reserved,
)
from ledger.desk import Desk
from ledger.groups import group_loan_limit, group_loan_refusal, related_group_set
from ledger.invariants import InvariantViolation, require
from ledger.journal import format_timestamp
from ledger.lending import finance_debits, loan_limit_checks, loan_limits
from ledger.margin import after_cash_moved, review, review_due_calls
from ledger.money import REPORTING_ASSET, USD_SCALE, ZERO, format_decimal, quantize
from ledger.rejections import ReasonCode, Refusal

Touched = Iterable[str]


@dataclass(frozen=True, slots=True)
class Booked:
    """The record is booked: its journal events are recorded."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request the rules refuse: recorded as its `*_rejected` journal event."""

    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Refused:
    """An input the ledger will not book: nothing is recorded."""

    refusal: Refusal


Decision = Booked | Rejected | Refused
BOOKED = Booked()
# What a rule returns: the accounts whose margin it may have changed, or its refusal.
Handled = Touched | Rejected | Refused


def decide(desk: Desk, record: inbox.InboxRecordType) -> Decision:
    """Decide one record and return its outcome; a refusal is returned, never raised."""
    recorded_before = len(desk.pending)
    handled = _dispatch(desk, record)
    if isinstance(handled, Refused):
        require(len(desk.pending) == recorded_before, "a refused input recorded journal events")
        return handled
    review(desk, () if isinstance(handled, Rejected) else handled, finance_debits(desk))
    review_due_calls(desk)
    # A liquidation may leave a client's USD below zero (a loss it realised on closing):
    # that too is financed, and the account reviewed again for the limits it breaks.
    review(desk, (), finance_debits(desk))
    return handled if isinstance(handled, Rejected) else BOOKED


def decide_marks_together(desk: Desk, records: Iterable[inbox.MarkPrice]) -> None:
    """Marks that move at one moment (a stress test's shock, `ledger.stress`): each is
    applied, then every client account is reviewed once on all of them, as `decide` reviews
    after one input. Deciding them one after the other would liquidate an account on some
    marks moved and others not: a position closed at its market's old mark, whose move then
    falls on the liquidation account, in no figure of the account."""
    for record in records:
        _mark_price(desk, record)
    clients = [account.account_id for account in desk.book.clients()]
    review(desk, clients, finance_debits(desk))
    review_due_calls(desk)
    review(desk, (), finance_debits(desk))


def _refused(reason_code: ReasonCode, detail: str) -> Refused:
    return Refused(Refusal(reason_code, detail))


def _dispatch(  # noqa: PLR0912  # one arm per inbox type
    desk: Desk, record: inbox.InboxRecordType
) -> Handled:
    match record:
        case inbox.AccountOpened():
            return _account_opened(desk, record)
        case inbox.CreditLimitSet():
            return _credit_limit_set(desk, record)
        case inbox.Deposit():
            return _deposit(desk, record)
        case inbox.WithdrawalRequested():
            return _withdrawal(desk, record)
        case inbox.LoanDrawRequested():
            return _loan_draw(desk, record)
        case inbox.LoanRepayment():
            return _loan_repayment(desk, record)
        case inbox.SpotTrade():
            return _spot_trade(desk, record)
        case inbox.PerpTrade():
            return _perp_trade(desk, record)
        case inbox.MarkPrice():
            return _mark_price(desk, record)
        case inbox.FundingRate():
            return _funding_rate(desk, record)
        case inbox.DayClosed():
            return _day_closed(desk, record)
        case inbox.TradeBusted():
            return _refused_or_touched(corrections.trade_busted(desk, record))
        case inbox.DepositReturned():
            return _refused_or_touched(corrections.deposit_returned(desk, record))
        case inbox.RelatedGroupSet():
            return _refused_or_touched(related_group_set(desk, record))
        case inbox.DailyStatementsSet():
            return _daily_statements_set(desk, record)
        case _:
            assert_never(record)


def _refused_or_touched(done: Touched | Refusal) -> Touched | Refused:
    return Refused(done) if isinstance(done, Refusal) else done


def _amount(desk: Desk, amount: Decimal, asset: str = "USD") -> Decimal:
    """A booked amount at its asset's scale: `15000` is booked as `15000.00`."""
    scale = desk.policy.asset_scale(asset)
    if scale is None:
        raise InvariantViolation(f"{asset} reached a decision unknown to the policy")
    return quantize(amount, scale)


def _account_opened(desk: Desk, record: inbox.AccountOpened) -> Handled:
    if is_reserved(record.account_id):
        return _refused(
            ReasonCode.RESERVED_ACCOUNT,
            f"{record.account_id!r} is reserved for the platform: choose another account_id",
        )
    if record.account_id in desk.book.accounts:
        return _refused(
            ReasonCode.ACCOUNT_ALREADY_EXISTS,
            f"account {record.account_id} is already open: send credit_limit_set to change it",
        )
    desk.record(
        je.AccountOpened(
            **desk.common(record.account_id),
            investor_class=record.investor_class,
            credit_limit=_amount(desk, record.credit_limit),
        )
    )
    return ()


def _daily_statements_set(desk: Desk, record: inbox.DailyStatementsSet) -> Handled:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return Refused(account)
    if record.daily_statements == "waived" and account.investor_class != "professional":
        return _refused(
            ReasonCode.NOT_PROFESSIONAL_INVESTOR,
            f"{record.account_id} is a retail account: only a professional investor may waive "
            "daily statements",
        )
    desk.record(
        je.DailyStatementsSet(
            **desk.common(record.account_id),
            daily_statements=record.daily_statements,
            previous="waived" if account.daily_statements_waived else "sent",
        )
    )
    return ()


def _credit_limit_set(desk: Desk, record: inbox.CreditLimitSet) -> Handled:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return Refused(account)
    desk.record(
        je.CreditLimitSet(
            **desk.common(record.account_id),
            credit_limit=_amount(desk, record.credit_limit),
            previous_credit_limit=account.credit_limit,
        )
    )
    return ()


def _deposit(desk: Desk, record: inbox.Deposit) -> Handled:
    if record.account_id not in DEPOSITABLE_PLATFORM_ACCOUNTS:
        unknown = desk.client(record.account_id)
        if isinstance(unknown, Refusal):
            return Refused(unknown)
    desk.record(
        je.DepositCredited(
            **desk.common(record.account_id),
            asset=record.asset,
            amount=_amount(desk, record.amount, record.asset),
            reference=record.reference,
        )
    )
    if record.asset == REPORTING_ASSET:
        return after_cash_moved(desk, (record.account_id,))
    return (record.account_id,)


def _withdrawal(desk: Desk, record: inbox.WithdrawalRequested) -> Handled:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return Refused(account)
    no_advance = _no_advance_during_call(desk, account)
    if no_advance is not None:
        return _withdrawal_rejected(desk, record, no_advance.reason_code, no_advance.detail, None)
    balance = account.balance(record.asset)
    if balance < record.amount:
        detail = (
            f"{record.account_id} holds {format_decimal(balance)} {record.asset}, "
            f"less than the {format_decimal(record.amount)} asked for"
        )
        return _withdrawal_rejected(desk, record, ReasonCode.INSUFFICIENT_BALANCE, detail, None)
    with _balance_set(account, record.asset, balance - record.amount):
        figures = desk.figures(account)
        if isinstance(figures, Refusal):
            return Refused(figures)
        inputs = desk.inputs(account, figures)
    if figures.equity < figures.initial_requirement:
        detail = (
            f"after it, equity {format_decimal(figures.equity)} USD would fall below the "
            f"initial requirement {format_decimal(figures.initial_requirement)} USD: "
            "withdraw less, or deposit collateral first"
        )
        return _withdrawal_rejected(
            desk, record, ReasonCode.BELOW_INITIAL_REQUIREMENT, detail, inputs
        )
    desk.record(
        je.WithdrawalApproved(
            **desk.common(record.account_id),
            asset=record.asset,
            amount=_amount(desk, record.amount, record.asset),
            inputs_after=inputs,
        )
    )
    if record.asset == REPORTING_ASSET:
        return after_cash_moved(desk, (record.account_id,))
    return (record.account_id,)


@contextmanager
def _balance_set(account: Account, asset: str, balance: Decimal) -> Iterator[None]:
    """The account as it would be with `balance` of `asset`, for a what-if valuation."""
    before = account.balances.get(asset)
    account.balances[asset] = balance
    try:
        yield
    finally:
        if before is None:
            del account.balances[asset]
        else:
            account.balances[asset] = before


def _withdrawal_rejected(
    desk: Desk,
    record: inbox.WithdrawalRequested,
    reason: ReasonCode,
    detail: str,
    inputs: je.DecisionInputs | None,
) -> Rejected:
    desk.record(
        je.WithdrawalRejected(
            **desk.common(record.account_id),
            asset=record.asset,
            amount=_amount(desk, record.amount, record.asset),
            reason_code=reason,
            detail=detail,
            inputs=inputs,
        )
    )
    return Rejected(Refusal(reason, detail))


def _loan_draw(desk: Desk, record: inbox.LoanDrawRequested) -> Handled:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return Refused(account)
    # The booked amount, `15000` as `15000.00`: the limits' figures are those booked.
    amount = _amount(desk, record.amount)
    no_advance = _no_advance_during_call(desk, account)
    if no_advance is not None:
        desk.record(
            je.LoanDrawRejected(
                **desk.common(record.account_id),
                amount=amount,
                reason_code=no_advance.reason_code,
                detail=no_advance.detail,
                policy_version=desk.policy.version,
            )
        )
        return Rejected(no_advance)
    lending_value = _lending_value(desk, account)
    if isinstance(lending_value, Refusal):
        return Refused(lending_value)
    common = desk.common(record.account_id)
    policy = desk.policy
    limits = loan_limits(desk, account, amount, lending_value)
    group_limit = group_loan_limit(desk.book, policy, account, amount)
    refusal = _loan_limit_refusal(limits) or group_loan_refusal(group_limit)
    marks = desk.held_marks(account)
    if refusal is None:
        desk.record(
            je.LoanDrawn(
                **common,
                amount=amount,
                limits=limits,
                marks=marks,
                policy_version=policy.version,
                group_limit=group_limit,
            )
        )
        return after_cash_moved(desk, (record.account_id,))
    desk.record(
        je.LoanDrawRejected(
            **common,
            amount=amount,
            reason_code=refusal.reason_code,
            detail=refusal.detail,
            limits=limits,
            marks=marks,
            policy_version=policy.version,
            group_limit=group_limit,
        )
    )
    return Rejected(refusal)


def _no_advance_during_call(desk: Desk, account: Account) -> Refusal | None:
    """The SFC's margin-financing practice: no further advance while a call is open."""
    call = account.margin_call
    if call is None or desk.policy.advances_during_call:
        return None
    return Refusal(
        ReasonCode.MARGIN_CALL_OPEN,
        f"{account.account_id} has margin call {call.call_id} open for "
        f"{format_decimal(call.amount)} USD: meet it (deposit or repay) before asking again",
    )


def _lending_value(desk: Desk, account: Account) -> Decimal | Refusal:
    try:
        return risk.lending_value(account.balances, desk.book.marks, desk.policy)
    except risk.MissingMark as missing:
        return Refusal(
            ReasonCode.NO_MARK_PRICE,
            f"{missing.args[0]} has no mark_price yet: the lending value cannot be computed",
        )


def _loan_limit_refusal(limits: je.LoanLimits) -> Refusal | None:
    for reason, figure, bound, what in loan_limit_checks(limits):
        if figure > bound:
            return Refusal(
                reason,
                f"the loan would reach {format_decimal(figure)} USD, above the {what} of "
                f"{format_decimal(quantize(bound, USD_SCALE))} USD: ask for less",
            )
    return None


def _loan_repayment(desk: Desk, record: inbox.LoanRepayment) -> Handled:
    account = desk.client(record.account_id)
    if isinstance(account, Refusal):
        return Refused(account)
    if record.amount > account.loan:
        return _refused(
            ReasonCode.REPAYMENT_EXCEEDS_LOAN,
            f"{record.account_id} owes {format_decimal(account.loan)} USD (interest included), "
            f"less than the {format_decimal(record.amount)} repaid: repay at most that",
        )
    cash = account.balance("USD")
    if record.amount > cash:
        # Repaying with cash the account does not hold would only move the debt out of the
        # loan, where interest, the credit limit and the firm's lending limits see it.
        return _refused(
            ReasonCode.INSUFFICIENT_BALANCE,
            f"{record.account_id} holds {format_decimal(cash)} USD, less than the "
            f"{format_decimal(record.amount)} repaid: deposit the cash first",
        )
    interest, principal = account.interest_first(record.amount)
    desk.record(
        je.LoanRepaid(
            **desk.common(record.account_id),
            amount=_amount(desk, record.amount),
            interest_paid=interest,
            principal_paid=_amount(desk, principal),
        )
    )
    return after_cash_moved(desk, (record.account_id,))


def _spot_trade(desk: Desk, record: inbox.SpotTrade) -> Handled:
    base = record.symbol.split("/")[0]
    trader = _trader(desk, record, base)
    if isinstance(trader, Refusal):
        return Refused(trader)
    account, lot = trader
    held = account.balance(base)
    if record.side == "sell" and held < record.quantity:
        # Collateral is held in custody: an account cannot sell more than it holds, so a
        # venue reporting such a sale has the wrong account or a missing deposit.
        return _refused(
            ReasonCode.INSUFFICIENT_BALANCE,
            f"{record.account_id} holds {format_decimal(held)} {base}, less than the "
            f"{format_decimal(record.quantity)} sold: book the deposit first",
        )
    quote_amount = quantize(record.quantity * record.price, USD_SCALE)
    desk.record(
        je.SpotTradeBooked(
            **desk.common(account.account_id),
            trade_id=record.trade_id,
            symbol=record.symbol,
            side=record.side,
            quantity=record.quantity,
            price=record.price,
            fee=_amount(desk, record.fee),
            quote_amount=quote_amount,
            liquidation_id=record.liquidation_id,
        )
    )
    return _traded(desk, record, lot, quote_amount)


def _perp_trade(desk: Desk, record: inbox.PerpTrade) -> Handled:
    signed = record.quantity if record.side == "buy" else -record.quantity
    trader = _trader(desk, record, record.market)
    if isinstance(trader, Refusal):
        return Refused(trader)
    account, lot = trader
    held = account.positions.get(record.market)
    size = held.size if held else ZERO
    if lot is None and account.investor_class != "professional" and abs(size + signed) > abs(size):
        return _refused(
            ReasonCode.NOT_PROFESSIONAL_INVESTOR,
            f"{record.account_id} is a retail account: perpetual exposure may only be "
            "reduced, and this trade increases it",
        )
    _book_perp(desk, account=account, record=record, signed=signed, fee=record.fee)
    # The platform's house is the counterparty of every client trade (a pre-trade check's
    # desk may leave its side out: ledger/pretrade.py says why the answer is the same).
    if not desk.leaves_counterparty_out(je.PerpTradeBooked):
        house_side: inbox.Side = "sell" if record.side == "buy" else "buy"
        _book_perp(
            desk,
            account=desk.book.accounts[HOUSE],
            record=record,
            signed=-signed,
            fee=ZERO,
            side=house_side,
        )
    return _traded(desk, record, lot)


def _trader(
    desk: Desk, record: inbox.SpotTrade | inbox.PerpTrade, instrument: str
) -> tuple[Account, LiquidationLot | None] | Refusal:
    """The client who traded; for the venue's execution of a liquidation, the liquidation
    account (it trades, not the client) and the lot the fill executes."""
    if record.liquidation_id is None:
        client = desk.client(record.account_id)
        return client if isinstance(client, Refusal) else (client, None)
    lot = fills.lot_to_fill(desk, record, instrument)
    return lot if isinstance(lot, Refusal) else (desk.book.accounts[LIQUIDATION], lot)


def _traded(
    desk: Desk,
    record: inbox.SpotTrade | inbox.PerpTrade,
    lot: LiquidationLot | None,
    quote_amount: Decimal | None = None,
) -> Touched:
    """A client's trade touches its account; a liquidation's fill settles its lot."""
    if lot is None:
        return (record.account_id,)
    fills.settle_fill(desk, lot, record, quote_amount)
    return ()


def _book_perp(
    desk: Desk,
    *,
    account: Account,
    record: inbox.PerpTrade,
    signed: Decimal,
    fee: Decimal,
    side: inbox.Side | None = None,
) -> None:
    held = account.positions.get(record.market)
    effect = risk.trade_realisation(
        held.size if held else ZERO, held.entry_price if held else ZERO, signed, record.price
    )
    desk.record(
        je.PerpTradeBooked(
            **desk.common(account.account_id),
            trade_id=record.trade_id,
            market=record.market,
            side=side or record.side,
            quantity=record.quantity,
            price=record.price,
            fee=fee,
            size_after=effect.new_size,
            entry_price_after=effect.new_entry_price,
            realized_pnl=quantize(effect.realised_pnl, USD_SCALE),
            liquidation_id=record.liquidation_id,
        )
    )


def _mark_price(desk: Desk, record: inbox.MarkPrice) -> Handled:
    previous = desk.book.marks.get(record.instrument)
    alert = previous is not None and risk.mark_moved_beyond(
        previous, record.price, desk.policy.mark_alert_move
    )
    desk.record(
        je.MarkPriceApplied(
            **desk.common(),
            instrument=record.instrument,
            price=record.price,
            observed_at=(
                format_timestamp(record.occurred_at)
                if desk.now is not None and record.occurred_at < desk.now
                else None
            ),
            alert=alert,
            previous_price=previous if alert and previous is not None else None,
        )
    )
    crossed = desk.watchlist.crossed(record.instrument, record.price)
    # Accounts that waited for a fresh mark of this instrument are decided now.
    return [*crossed, *desk.watchlist.fresh_mark(record.instrument)]


def _funding_rate(desk: Desk, record: inbox.FundingRate) -> Handled:
    unsettled = _funding_refusal(desk, record)
    if unsettled is not None:
        return Refused(unsettled)
    mark = desk.book.marks.get(record.market)
    if mark is None:
        return _refused(
            ReasonCode.NO_MARK_PRICE,
            f"{record.market} has no mark_price yet: funding is settled at the mark",
        )
    sizes = {
        account_id: account.positions[record.market].size
        for account_id, account in desk.book.accounts.items()
        if record.market in account.positions
    }
    payments, residue = risk.funding_payments(sizes, mark, record.rate, USD_SCALE)
    desk.record(
        je.FundingSettled(
            **desk.common(),
            market=record.market,
            rate=record.rate,
            mark_price=mark,
            funding_time=format_timestamp(record.funding_time),
            payments=[
                je.FundingPayment(account_id=a, size=sizes[a], amount=amount)
                for a, amount in payments.items()
            ],
            residue=-residue,
        )
    )
    return after_cash_moved(desk, payments.keys())


def _funding_refusal(desk: Desk, record: inbox.FundingRate) -> Refusal | None:
    """Funding taken on trust no more: once per interval, and within the policy's bound."""
    bound = desk.policy.market(record.market).max_funding_rate
    if abs(record.rate) > bound:
        return Refusal(
            ReasonCode.FUNDING_RATE_OUT_OF_BOUNDS,
            f"the {record.market} funding rate {format_decimal(record.rate)} is beyond the "
            f"policy's bound of {format_decimal(bound)} either way: check the rate's source",
        )
    funding_time = format_timestamp(record.funding_time)
    if (record.market, funding_time) in desk.book.funding_settled:
        return Refusal(
            ReasonCode.FUNDING_ALREADY_SETTLED,
            f"{record.market} funding for {funding_time} is already settled: "
            "each funding interval settles once",
        )
    return None


def _day_closed(desk: Desk, record: inbox.DayClosed) -> Handled:
    """Accrue interest for every calendar day since the last close, up to this one."""
    closing = record.business_date
    to_accrue = _days_to_accrue(desk.book.business_date, closing)
    if isinstance(to_accrue, Refusal):
        return Refused(to_accrue)
    days, first_day = to_accrue
    dates = [(first_day + timedelta(days=day)).isoformat() for day in range(days)]
    # Each day on the principal at its end, found before the close is applied (applying it
    # folds the days closed into one).
    accruals: list[tuple[str, list[Decimal], Decimal]] = []
    for account in sorted(desk.book.clients(), key=lambda a: a.account_id):
        if not account.principal_day_ends:
            continue  # never lent since the last close, nor before it
        principals = [account.principal_at_end_of(day) for day in dates]
        amount = risk.interest_for_days(principals, desk.policy)
        if amount > ZERO:
            accruals.append((account.account_id, principals, amount))
    business_date = closing.isoformat()
    desk.record(je.DayClosed(**desk.common(), business_date=business_date))
    for account_id, principals, amount in accruals:
        desk.record(
            je.InterestAccrued(
                **desk.common(account_id),
                business_date=business_date,
                principal=principals[-1],
                annual_rate=desk.policy.loan_annual_rate,
                day_count=desk.policy.loan_day_count,
                amount=amount,
                days=days,
                first_date=first_day.isoformat(),
                daily_principals=None
                if len(set(principals)) == 1
                else dict(zip(dates, principals, strict=True)),
            )
        )
    return [account_id for account_id, _, _ in accruals]


def _days_to_accrue(last_closed: str, closing: date) -> tuple[int, date] | Refusal:
    """(calendar days, first of them) from the day after `last_closed` to `closing`; the
    first close of the ledger accrues its own day only."""
    if not last_closed:
        return 1, closing
    previous = date.fromisoformat(last_closed)
    if closing <= previous:
        return Refusal(
            ReasonCode.DAY_ALREADY_CLOSED,
            f"business day {closing.isoformat()} is not after the last day closed, "
            f"{last_closed}: close each day once, in order",
        )
    return (closing - previous).days, previous + timedelta(days=1)
