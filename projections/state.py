"""The projection's state: the ledger's own `Book`, plus the registers the views need that
the book does not keep (calls, liquidations, funding totals, custody flows, statements),
and what the current batch touched.

The book is changed only by `Book.apply`, the function the ledger itself replays with, so
the views show the state the ledger decided on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import assert_never

from ledger import journal_events as je
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import PLATFORM_ACCOUNTS, Account, Book
from ledger.invariants import present
from ledger.money import ZERO
from ledger.policy import Policy
from projections import rows
from projections.records import (
    CallRecord,
    FundingTotals,
    LiquidationRecord,
    PendingStatement,
    Touched,
)
from projections.tables import Row

# The events only the book keeps (no register here): the trades, the most frequent of all,
# and the `pass` arm of `_register`'s match. Their exact type is looked up before that
# match: `isinstance` of a Struct that is not one costs ~150 ns (its metaclass), and a loan
# repaid tried 27 class patterns before its arm (docs/performance.md).
_BOOK_ONLY = frozenset(
    {
        je.SpotTradeBooked,
        je.PerpTradeBooked,
        je.AccountOpened,
        je.CreditLimitSet,
        je.WithdrawalRejected,
        je.LoanDrawn,
        je.DebitFinanced,
        je.MarginDecisionWaiting,
        je.TradeReversed,
        je.LoanDrawRejected,
        je.LoanRepaid,
        je.RelatedGroupSet,
        je.DailyStatementsSet,
    }
)


@dataclass
class ProjectionState:
    # Each seq is valued with the policy in force there (`policy`): the one the latest
    # `policy_adopted` names, its document found among these by digest.
    policies: AdoptedPolicies
    # A reader's book: no client trade or deposit kept on booking, the original of each
    # reversal handed to it from the store's journal (`ProjectionRunner.follow`).
    book: Book = field(default_factory=lambda: Book(keeps_originals=False))
    recorded_at: str = ""
    calls: dict[str, CallRecord] = field(default_factory=dict)
    liquidations: dict[str, LiquidationRecord] = field(default_factory=dict)
    last_liquidation: dict[str, str] = field(default_factory=dict)  # account -> id
    funding: dict[str, FundingTotals] = field(default_factory=dict)
    custody_in: dict[str, Decimal] = field(default_factory=dict)
    custody_out: dict[str, Decimal] = field(default_factory=dict)
    interest: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (date, account)
    # Statement rows of the business dates closed since the last batch was written.
    statement_rows: dict[str, list[Row]] = field(default_factory=dict)
    pending_statement: PendingStatement | None = None
    touched: Touched = field(default_factory=Touched)
    policy: Policy = field(init=False)  # in force at the book's seq

    def __post_init__(self) -> None:
        self.policy = self.policies.in_force(self.book)

    @property
    def last_seq(self) -> int:
        return self.book.last_seq

    def apply(self, event: je.JournalEventType) -> None:
        """Apply one journal event (the book checks seq and hash chain)."""
        pending = self.pending_statement
        if pending is not None and event.causation_id != pending.causation_id:
            self._write_statements(pending)
            self.pending_statement = None
        self.book.apply(event)
        self.recorded_at = event.recorded_at
        touched = self.touched
        touched.any_event = True
        if event.account_id is not None:
            touched.accounts.add(event.account_id)
        # Exact types first: the events with no register (trades first), then marks.
        if type(event) in _BOOK_ONLY:
            return
        if type(event) is je.MarkPriceApplied:
            touched.marked.add(event.instrument)
        else:
            self._register(event)

    def _write_statements(self, closing: PendingStatement) -> None:
        """Every client's statement for the closing: the state after its input's events."""
        date = closing.business_date
        self.statement_rows[date] = rows.statement_rows(
            self.book, self.policy, self.interest, (date, closing.closed_seq, closing.closed_at)
        )
        self.touched.statements.add(date)

    def _register(self, event: je.JournalEventType) -> None:  # noqa: PLR0912  # one arm per type
        # A class pattern is an isinstance test, tried in order: the most frequent first
        # (trades and marks, the most frequent of all, are `apply`'s).
        match event:
            case je.PolicyAdopted():
                self.policy = self.policies.adopted(event)
            case je.DepositCredited():
                _add(self.custody_in, event.asset, event.amount)
            case je.WithdrawalApproved() | je.DepositReversed():
                _add(self.custody_out, event.asset, event.amount)
            case je.FundingSettled():
                self._funding(event)
            case je.InterestAccrued():
                key = (event.business_date, _account_of(event))
                self.interest[key] = self.interest.get(key, ZERO) + event.amount
            case je.DayClosed():
                self.pending_statement = PendingStatement(
                    event.business_date, event.causation_id, event.seq, event.recorded_at
                )
            case je.MarginCallIssued():
                self._call_issued(event)
            case je.MarginCallCleared():
                self._call_cleared(event)
            case je.LiquidationTriggered():
                self._liquidation_triggered(event)
            case je.LiquidationCompleted():
                record = self._liquidation(event.liquidation_id)
                record.steps = list(event.steps)
                record.figures_after = event.figures_after
            case je.LiquidationFilled():
                record = self._liquidation(event.liquidation_id)
                record.fills += 1
                record.fills_paid_to_fund += event.insurance_fund_paid
            case je.InsuranceFundDrawn():
                self._liquidation(event.liquidation_id).insurance_fund_drawn += event.amount
            case je.AutoDeleveraged():
                self.touched.accounts.add(event.bankrupt_account_id)
                self._liquidation(event.liquidation_id).auto_deleveraged += event.absorbed
            case je.BadDebtRecorded():
                record = self._liquidation(event.liquidation_id)
                record.bad_debt_loan += event.loan_written_off
                record.bad_debt_cash += event.cash_written_off
            case (  # `_BOOK_ONLY` and marks, `apply`'s: listed so that the match is whole
                je.SpotTradeBooked()
                | je.PerpTradeBooked()
                | je.MarkPriceApplied()
                | je.AccountOpened()
                | je.CreditLimitSet()
                | je.WithdrawalRejected()
                | je.LoanDrawn()
                | je.DebitFinanced()
                | je.MarginDecisionWaiting()
                | je.TradeReversed()
                | je.LoanDrawRejected()
                | je.LoanRepaid()
                | je.RelatedGroupSet()
                | je.DailyStatementsSet()
            ):
                pass
            case _:
                assert_never(event)

    def _funding(self, event: je.FundingSettled) -> None:
        totals = self.funding.setdefault(event.market, FundingTotals())
        for payment in event.payments:
            amount = payment.amount
            if amount > ZERO:
                totals.paid += amount
            else:
                totals.received -= amount
            self.touched.accounts.add(payment.account_id)
        totals.residue += event.residue

    def _call_issued(self, event: je.MarginCallIssued) -> None:
        self.calls[event.call_id] = CallRecord(
            call_id=event.call_id,
            account_id=_account_of(event),
            issued_seq=event.seq,
            issued_at=event.recorded_at,
            amount=event.amount,
            deadline=event.deadline,
            figures=event.inputs.figures,
            trigger=event.trigger,
            limit=event.limit,
        )
        self.touched.calls.add(event.call_id)

    def _call_cleared(self, event: je.MarginCallCleared) -> None:
        record = self.calls[event.call_id]
        record.outcome = event.outcome
        record.closed_seq = event.seq
        record.closed_at = event.recorded_at
        if event.outcome == "liquidated":
            record.liquidation_id = self.last_liquidation.get(record.account_id)
        self.touched.calls.add(event.call_id)

    def _liquidation_triggered(self, event: je.LiquidationTriggered) -> None:
        account_id = _account_of(event)
        self.liquidations[event.liquidation_id] = LiquidationRecord(
            liquidation_id=event.liquidation_id,
            account_id=account_id,
            triggered_seq=event.seq,
            triggered_at=event.recorded_at,
            trigger=event.trigger,
            inputs=event.inputs,
        )
        self.last_liquidation[account_id] = event.liquidation_id
        self.touched.liquidations.add(event.liquidation_id)

    def _liquidation(self, liquidation_id: str) -> LiquidationRecord:
        self.touched.liquidations.add(liquidation_id)
        return self.liquidations[liquidation_id]

    def forget_touched(self) -> None:
        """Drop what was touched so far: those events are already in the views."""
        self.touched = Touched()
        self.statement_rows.clear()

    def end_batch(self) -> Touched:
        """What the batch touched, with the accounts revalued by new marks, the platform's
        accounts (every booking moves one of them) and accounts with an open call (its age
        grows with the clock); the next batch starts afresh."""
        touched = self.touched
        if touched.any_event:
            touched.accounts.update(PLATFORM_ACCOUNTS)
        for account in self.book.accounts.values():
            if (account.margin_call is not None and touched.any_event) or _holds(
                account, touched.marked
            ):
                touched.accounts.add(account.account_id)
        if self.pending_statement is not None and touched.any_event:
            # Provisional until the closing input's last event: rewritten if more come.
            self._write_statements(self.pending_statement)
        self.touched = Touched()
        return touched


def _holds(account: Account, instruments: set[str]) -> bool:
    """Whether the account holds any of `instruments` (a balance or a position)."""
    return bool(instruments) and (
        not instruments.isdisjoint(account.positions)
        or any(not account.balance(i).is_zero() for i in instruments)
    )


def _add(totals: dict[str, Decimal], asset: str, amount: Decimal) -> None:
    totals[asset] = totals.get(asset, ZERO) + amount


def _account_of(event: je.JournalEventType) -> str:
    return present(event.account_id, f"a {type(event).__name__} names its account")
