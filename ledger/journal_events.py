"""The journal event contract: every event the ledger records, as msgspec Structs.

Decimal figures are JSON strings written by `money.format_decimal`; timestamps are
written by `journal.format_timestamp`. A record read back from the store or the journal
topic decodes into the same Structs, tolerating fields a newer ledger added.
"""

from __future__ import annotations

import msgspec


class JournalEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """Fields every journal record has; `seq`, `prev_hash` and `hash` are set by sealing."""

    recorded_at: str
    causation_id: str
    account_id: str | None = None
    # Set on the first event an inbox record caused: lets a replay rebuild the
    # event_id index that makes a redelivered record a no-op.
    input_digest: str | None = None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""


class PositionHolding(msgspec.Struct, frozen=True, kw_only=True):
    market: str
    size: str
    entry_price: str


class Holdings(msgspec.Struct, frozen=True, kw_only=True):
    """An account's balances, loan and positions: the inputs of the risk model."""

    balances: dict[str, str]
    loan: str
    positions: list[PositionHolding]


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """The risk model's figures for one account (docs/risk-model.md "Valuation")."""

    market_value: str
    unrealized_pnl: str
    loan: str
    equity: str
    initial_requirement: str
    maintenance_requirement: str
    liquidation_requirement: str
    excess: str
    available: str
    margin_level: str | None
    ltv: str | None
    status: str


class DecisionInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What a decision was taken on, so that `audit explain` can recompute it."""

    holdings: Holdings
    marks: dict[str, str]
    policy_version: str
    figures: Figures


class PolicyAdopted(JournalEvent, tag="policy_adopted", frozen=True):
    version: str
    digest: str


class AccountOpened(JournalEvent, tag="account_opened", frozen=True):
    investor_class: str
    credit_limit: str


class CreditLimitSet(JournalEvent, tag="credit_limit_set", frozen=True):
    credit_limit: str
    previous_credit_limit: str


class DepositCredited(JournalEvent, tag="deposit_credited", frozen=True):
    asset: str
    amount: str
    reference: str | None = None


class WithdrawalApproved(JournalEvent, tag="withdrawal_approved", frozen=True):
    asset: str
    amount: str
    inputs_after: DecisionInputs


class WithdrawalRejected(JournalEvent, tag="withdrawal_rejected", frozen=True):
    asset: str
    amount: str
    reason_code: str
    detail: str
    inputs: DecisionInputs | None = None


class LoanLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The lending figures a loan draw is decided on (docs/risk-model.md "Rules")."""

    loan_before: str
    loan_after: str
    credit_limit: str
    lending_value: str
    firm_loans_after: str
    firm_loans_max: str
    client_loan_max: str


class GroupLoanLimit(msgspec.Struct, frozen=True, kw_only=True):
    """The related-client group a loan draw's account belongs to, held to the per-client
    loan limit for the group's total (RISK.md "Rules", docs/risk-tools.md)."""

    group_id: str
    members: list[str]  # the group's accounts, in account order
    group_loans_after: str  # every member's loan (interest included), this draw included
    group_loan_max: str  # max_client_loan_share * shareholders_funds


class LoanDrawn(JournalEvent, tag="loan_drawn", frozen=True):
    amount: str
    limits: LoanLimits
    marks: dict[str, str]
    policy_version: str
    group_limit: GroupLoanLimit | None = None  # only for an account in a group


class LoanDrawRejected(JournalEvent, tag="loan_draw_rejected", frozen=True):
    amount: str
    reason_code: str
    detail: str
    limits: LoanLimits | None = None
    marks: dict[str, str] = {}
    policy_version: str = ""
    group_limit: GroupLoanLimit | None = None  # only for an account in a group


class RelatedGroupSet(JournalEvent, tag="related_group_set", frozen=True):
    """The account joins a group of related clients (`group_id`), or leaves its group (None)."""

    group_id: str | None
    previous_group_id: str | None


class DebitFinanced(JournalEvent, tag="debit_financed", frozen=True):
    """A booked fact took more USD than the client held: the shortfall is drawn on the
    client's margin loan in the same decision. A fact cannot be refused, so the draw is
    made even past a limit; `limits_broken` names each limit it broke (reason codes)."""

    amount: str
    cause: str  # the journal event type whose debit took the USD below zero
    cause_seq: int
    limits: LoanLimits
    marks: dict[str, str]
    policy_version: str
    limits_broken: list[str] = []


class DailyStatementsSet(JournalEvent, tag="daily_statements_set", frozen=True):
    """Whether the account gets daily statements: `sent`, or `waived` (professional only)."""

    daily_statements: str
    previous: str


class LoanRepaid(JournalEvent, tag="loan_repaid", frozen=True):
    amount: str
    interest_paid: str
    principal_paid: str


class InterestAccrued(JournalEvent, tag="interest_accrued", frozen=True):
    business_date: str
    principal: str
    annual_rate: str
    day_count: int
    amount: str
    days: int = 1  # calendar days accrued, `first_date` to `business_date` inclusive
    first_date: str | None = None  # None in journals written before it was recorded


class SpotTradeBooked(JournalEvent, tag="spot_trade_booked", frozen=True):
    trade_id: str
    symbol: str
    side: str
    quantity: str
    price: str
    fee: str
    quote_amount: str
    liquidation_id: str | None = None  # a venue's sale of collateral a liquidation took over


class PerpTradeBooked(JournalEvent, tag="perp_trade_booked", frozen=True):
    trade_id: str
    market: str
    side: str
    quantity: str
    price: str
    fee: str
    size_after: str
    entry_price_after: str
    realized_pnl: str
    liquidation_id: str | None = None


class TradeReversed(JournalEvent, tag="trade_reversed", frozen=True):
    """A busted trade reversed exactly: every posting of the original (seq
    `original_seq`) undone, nothing edited or deleted. For a spot trade: the base back to
    the house, the quote and the fee back to the client. For a perpetual trade: the
    client's position back to what it was before (`size_after`, `entry_price_after`), its
    realised PnL and fee undone; the house, its counterparty, trades the opposite back at
    the original price (`house_realized_pnl`)."""

    trade_id: str
    reason: str
    original_seq: int
    original_type: str  # spot_trade_booked or perp_trade_booked
    fee_refunded: str
    realized_pnl_reversed: str = "0"
    size_after: str | None = None
    entry_price_after: str | None = None
    house_realized_pnl: str | None = None


class DepositReversed(JournalEvent, tag="deposit_reversed", frozen=True):
    """A returned deposit reversed exactly: the amount back to custody."""

    reference: str
    reason: str
    original_seq: int
    asset: str
    amount: str


class MarkPriceApplied(JournalEvent, tag="mark_price_applied", frozen=True):
    instrument: str
    price: str
    # The mark's own occurred_at, when earlier than the ledger clock (`recorded_at`): a
    # mark's age is counted from when it was observed.
    observed_at: str | None = None
    # Set when the mark moved more than the policy's mark_alert_move from the previous one.
    alert: bool = False
    previous_price: str | None = None


class FundingPayment(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    size: str
    amount: str  # paid by the account; negative when it receives


class FundingSettled(JournalEvent, tag="funding_settled", frozen=True):
    market: str
    rate: str
    mark_price: str
    funding_time: str
    payments: list[FundingPayment]
    residue: str  # credited to the house so that funding sums to zero


class DayClosed(JournalEvent, tag="day_closed", frozen=True):
    business_date: str


class MarginCallIssued(JournalEvent, tag="margin_call_issued", frozen=True):
    call_id: str
    amount: str
    deadline: str
    inputs: DecisionInputs
    # "below_maintenance_requirement", or the lending limit a financed debit broke
    # ("credit_limit_exceeded", "lending_value_exceeded"): then `amount = loan - limit`.
    trigger: str = "below_maintenance_requirement"
    limit: str | None = None


class MarginDecisionWaiting(JournalEvent, tag="margin_decision_waiting", frozen=True):
    """A margin call or liquidation the account calls for waits: a mark it would be
    decided on is older than the policy's `mark_max_age_minutes`. Recorded when the
    stale marks change; an empty `stale_marks` ends the wait (the decision is taken, or
    no longer called for)."""

    stale_marks: list[str]
    mark_times: dict[str, str]  # when each stale mark was observed


class MarginCallCleared(JournalEvent, tag="margin_call_cleared", frozen=True):
    call_id: str
    outcome: str  # "met" when the account is healthy again, "liquidated" when closed by one
    inputs: DecisionInputs


class LiquidationTriggered(JournalEvent, tag="liquidation_triggered", frozen=True):
    liquidation_id: str
    trigger: str  # "below_liquidation_requirement" or "margin_call_deadline"
    inputs: DecisionInputs


class LiquidationStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a liquidation, booked against the platform's liquidation account."""

    kind: str  # "close_position", "cash_to_loan", "sell_collateral"
    instrument: str
    quantity: str  # signed: what left the account (positions: the size closed)
    price: str
    proceeds: str  # USD credited to the account (realised PnL for a position)
    fee: str  # to the insurance fund
    loan_repaid: str


class LiquidationCompleted(JournalEvent, tag="liquidation_completed", frozen=True):
    liquidation_id: str
    steps: list[LiquidationStep]
    figures_after: Figures


class LiquidationFilled(JournalEvent, tag="liquidation_filled", frozen=True):
    """A venue fill executing part of what a liquidation took over, booked on the platform's
    liquidation account (`account_id`), and its result settled against the insurance fund.

    `result = gross_result - fee`: for a closed position `gross_result` is the quantity
    closed times (fill price - takeover price), signed like the position taken over; for
    collateral it is the sale's quote amount less `takeover_cost`, the USD the liquidation
    paid the account for that quantity. A positive result is paid into the fund in this
    event (`insurance_fund_paid`); a loss follows as `insurance_fund_drawn`, and what the
    fund cannot cover as `bad_debt_recorded`, both on the liquidation account."""

    liquidation_id: str
    liquidated_account_id: str
    trade_id: str
    instrument: str
    kind: str  # the step that took the instrument over: close_position or sell_collateral
    side: str  # the liquidation account's side
    quantity: str
    price: str
    takeover_price: str
    fee: str
    gross_result: str
    result: str
    insurance_fund_paid: str
    remaining_after: str
    takeover_cost: str | None = None  # collateral only


class InsuranceFundDrawn(JournalEvent, tag="insurance_fund_drawn", frozen=True):
    liquidation_id: str
    amount: str
    fund_balance_after: str


class DeleveragingRank(msgspec.Struct, frozen=True, kw_only=True):
    """Why this position was next in the auto-deleveraging queue (docs/risk-model.md)."""

    rank: int  # 1 = first deleveraged
    size: str  # the position before it was reduced
    entry_price: str
    unrealized_pnl: str
    pnl_ratio: str
    notional: str
    equity: str
    effective_leverage: str | None
    score: str | None


class AutoDeleveraged(JournalEvent, tag="auto_deleveraged", frozen=True):
    """A profitable opposite position reduced at the bankrupt account's bankruptcy price."""

    liquidation_id: str
    bankrupt_account_id: str
    market: str
    size_reduced: str
    bankruptcy_price: str
    mark_price: str
    absorbed: str
    ranking: DeleveragingRank | None = None


class BadDebtRecorded(JournalEvent, tag="bad_debt_recorded", frozen=True):
    """What neither collateral, the insurance fund nor auto-deleveraging could cover."""

    liquidation_id: str
    loan_written_off: str  # the margin loan's shortfall: the broker's credit loss
    cash_written_off: str  # a perpetuals deficit no profitable position could absorb


JournalEventType = (
    PolicyAdopted
    | AccountOpened
    | CreditLimitSet
    | DepositCredited
    | WithdrawalApproved
    | WithdrawalRejected
    | LoanDrawn
    | LoanDrawRejected
    | DebitFinanced
    | LoanRepaid
    | InterestAccrued
    | SpotTradeBooked
    | PerpTradeBooked
    | TradeReversed
    | DepositReversed
    | MarkPriceApplied
    | FundingSettled
    | DayClosed
    | MarginCallIssued
    | MarginCallCleared
    | MarginDecisionWaiting
    | LiquidationTriggered
    | LiquidationCompleted
    | LiquidationFilled
    | InsuranceFundDrawn
    | AutoDeleveraged
    | BadDebtRecorded
    | RelatedGroupSet
    | DailyStatementsSet
)

journal_decoder: msgspec.json.Decoder[JournalEventType] = msgspec.json.Decoder(JournalEventType)


def decode_journal_record(record: bytes) -> JournalEventType:
    return journal_decoder.decode(record)
