"""The journal event contract: every event the ledger records, as msgspec Structs.

Figures are `Decimal` in the Structs and fixed-point JSON strings in the journal
(`money.format_decimal`, never `1E-8`): `journal_body` writes them at the boundary and
msgspec reads a string back into a `Decimal` field. Closed sets are `Literal`s or
StrEnums. Timestamps are text written by `journal.format_timestamp`. A record read back
from the store or the journal topic decodes into the same Structs, tolerating fields a
newer ledger added.
"""

from __future__ import annotations

import re
from decimal import Decimal
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from ledger.inbox import InvestorClass, Side
from ledger.invariants import require
from ledger.journal import HASH_STAND_IN, seal, seal_draft
from ledger.money import format_decimal
from ledger.rejections import ReasonCode
from ledger.risk import MarginStatus

# "met" when the account is healthy again, "liquidated" when a liquidation closed it.
CallOutcome = Literal["met", "liquidated"]
LiquidationTrigger = Literal["below_liquidation_requirement", "margin_call_deadline"]
# What a margin call answers: equity below the maintenance requirement, or the lending limit
# a financed debit broke (then the call's `amount = loan - limit`).
MarginCallTrigger = Literal[
    "below_maintenance_requirement", "credit_limit_exceeded", "lending_value_exceeded"
]
LimitCallTrigger = Literal["credit_limit_exceeded", "lending_value_exceeded"]
LiquidationStepKind = Literal["close_position", "cash_to_loan", "sell_collateral"]
DailyStatements = Literal["sent", "waived"]


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
    size: Decimal
    entry_price: Decimal


class Holdings(msgspec.Struct, frozen=True, kw_only=True):
    """An account's balances, loan and positions: the inputs of the risk model."""

    balances: dict[str, Decimal]
    loan: Decimal
    positions: list[PositionHolding]


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """The risk model's figures for one account (docs/risk-model.md "Valuation")."""

    market_value: Decimal
    unrealized_pnl: Decimal
    loan: Decimal
    equity: Decimal
    initial_requirement: Decimal
    maintenance_requirement: Decimal
    liquidation_requirement: Decimal
    excess: Decimal
    available: Decimal
    margin_level: Decimal | None
    ltv: Decimal | None
    status: MarginStatus


class DecisionInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What a decision was taken on, so that `audit explain` can recompute it."""

    holdings: Holdings
    marks: dict[str, Decimal]
    policy_version: str
    figures: Figures


class PolicyAdopted(JournalEvent, tag="policy_adopted", frozen=True):
    version: str
    digest: str


class AccountOpened(JournalEvent, tag="account_opened", frozen=True):
    investor_class: InvestorClass
    credit_limit: Decimal


class CreditLimitSet(JournalEvent, tag="credit_limit_set", frozen=True):
    credit_limit: Decimal
    previous_credit_limit: Decimal


class DepositCredited(JournalEvent, tag="deposit_credited", frozen=True):
    asset: str
    amount: Decimal
    reference: str | None = None


class WithdrawalApproved(JournalEvent, tag="withdrawal_approved", frozen=True):
    asset: str
    amount: Decimal
    inputs_after: DecisionInputs


class WithdrawalRejected(JournalEvent, tag="withdrawal_rejected", frozen=True):
    asset: str
    amount: Decimal
    reason_code: ReasonCode
    detail: str
    inputs: DecisionInputs | None = None


class LoanLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The lending figures a loan draw is decided on (docs/risk-model.md "Rules")."""

    loan_before: Decimal
    loan_after: Decimal
    credit_limit: Decimal
    lending_value: Decimal
    firm_loans_after: Decimal
    firm_loans_max: Decimal
    client_loan_max: Decimal


class GroupLoanLimit(msgspec.Struct, frozen=True, kw_only=True):
    """The related-client group a loan draw's (or a financed debit's) account belongs to,
    held to the per-client loan limit for the group's total (docs/risk-model.md,
    docs/risk-tools.md)."""

    group_id: str
    members: list[str]  # the group's accounts, in account order
    group_loans_after: Decimal  # every member's loan (interest included), this draw included
    group_loan_max: Decimal  # max_client_loan_share * shareholders_funds


class LoanDrawn(JournalEvent, tag="loan_drawn", frozen=True):
    amount: Decimal
    limits: LoanLimits
    marks: dict[str, Decimal]
    policy_version: str
    group_limit: GroupLoanLimit | None = None  # only for an account in a group


class LoanDrawRejected(JournalEvent, tag="loan_draw_rejected", frozen=True):
    amount: Decimal
    reason_code: ReasonCode
    detail: str
    limits: LoanLimits | None = None
    marks: dict[str, Decimal] = {}
    policy_version: str = ""
    group_limit: GroupLoanLimit | None = None  # only for an account in a group


class RelatedGroupSet(JournalEvent, tag="related_group_set", frozen=True):
    """The account joins a group of related clients (`group_id`), or leaves its group (None)."""

    group_id: str | None
    previous_group_id: str | None


class DebitFinanced(JournalEvent, tag="debit_financed", frozen=True):
    """A booked fact took more USD than the client held: the shortfall is drawn on the
    client's margin loan in the same decision. A fact cannot be refused, so the draw is
    made even past a limit; `limits_broken` names each limit it broke (reason codes), the
    related-client group's total among them for an account in a group."""

    amount: Decimal
    cause: str  # the journal event type whose debit took the USD below zero
    cause_seq: int
    limits: LoanLimits
    marks: dict[str, Decimal]
    policy_version: str
    limits_broken: list[ReasonCode] = []
    group_limit: GroupLoanLimit | None = None  # only for an account in a group


class DailyStatementsSet(JournalEvent, tag="daily_statements_set", frozen=True):
    """Whether the account gets daily statements: `sent`, or `waived` (professional only)."""

    daily_statements: DailyStatements
    previous: DailyStatements


class LoanRepaid(JournalEvent, tag="loan_repaid", frozen=True):
    amount: Decimal
    interest_paid: Decimal
    principal_paid: Decimal


class InterestAccrued(JournalEvent, tag="interest_accrued", frozen=True):
    business_date: str
    principal: Decimal
    annual_rate: Decimal
    day_count: int
    amount: Decimal
    days: int = 1  # calendar days accrued, `first_date` to `business_date` inclusive
    first_date: str | None = None  # None in journals written before it was recorded
    # Each day's principal (ISO date -> the principal at that day's end) when the days
    # accrued had different ones; None when `principal` stood for every day.
    daily_principals: dict[str, Decimal] | None = None


class SpotTradeBooked(JournalEvent, tag="spot_trade_booked", frozen=True):
    trade_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    quote_amount: Decimal
    liquidation_id: str | None = None  # a venue's sale of collateral a liquidation took over


class PerpTradeBooked(JournalEvent, tag="perp_trade_booked", frozen=True):
    trade_id: str
    market: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    size_after: Decimal
    entry_price_after: Decimal
    realized_pnl: Decimal
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
    original_type: Literal["spot_trade_booked", "perp_trade_booked"]
    fee_refunded: Decimal
    realized_pnl_reversed: Decimal | None = None  # None (omitted) for a spot trade
    size_after: Decimal | None = None
    entry_price_after: Decimal | None = None
    house_realized_pnl: Decimal | None = None


class DepositReversed(JournalEvent, tag="deposit_reversed", frozen=True):
    """A returned deposit reversed exactly: the amount back to custody."""

    reference: str
    reason: str
    original_seq: int
    asset: str
    amount: Decimal


class MarkPriceApplied(JournalEvent, tag="mark_price_applied", frozen=True):
    instrument: str
    price: Decimal
    # The mark's own occurred_at, when earlier than the ledger clock (`recorded_at`): a
    # mark's age is counted from when it was observed.
    observed_at: str | None = None
    # Set when the mark moved more than the policy's mark_alert_move from the previous one.
    alert: bool = False
    previous_price: Decimal | None = None


class FundingPayment(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    size: Decimal
    amount: Decimal  # paid by the account; negative when it receives


class FundingSettled(JournalEvent, tag="funding_settled", frozen=True):
    market: str
    rate: Decimal
    mark_price: Decimal
    funding_time: str
    payments: list[FundingPayment]
    residue: Decimal  # credited to the house so that funding sums to zero


class DayClosed(JournalEvent, tag="day_closed", frozen=True):
    business_date: str


class MarginCallIssued(JournalEvent, tag="margin_call_issued", frozen=True):
    call_id: str
    amount: Decimal
    deadline: str
    inputs: DecisionInputs
    trigger: MarginCallTrigger = "below_maintenance_requirement"
    limit: Decimal | None = None


class MarginDecisionWaiting(JournalEvent, tag="margin_decision_waiting", frozen=True):
    """A margin call (on the equity or the loan's limits) or liquidation the account calls
    for waits: a mark it would be
    decided on is older than the policy's `mark_max_age_minutes`. Recorded when the
    stale marks change; an empty `stale_marks` ends the wait (the decision is taken, or
    no longer called for)."""

    stale_marks: list[str]
    mark_times: dict[str, str]  # when each stale mark was observed
    # The decision waiting is a limit call after a financed debit (`ledger.lending`): its
    # lending value counts collateral whose mark is stale, and that mark could change it.
    limit_call: bool = False


class MarginCallCleared(JournalEvent, tag="margin_call_cleared", frozen=True):
    call_id: str
    outcome: CallOutcome
    inputs: DecisionInputs


class LiquidationTriggered(JournalEvent, tag="liquidation_triggered", frozen=True):
    liquidation_id: str
    trigger: LiquidationTrigger
    inputs: DecisionInputs


class LiquidationStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a liquidation, booked against the platform's liquidation account."""

    kind: LiquidationStepKind
    instrument: str
    quantity: Decimal  # signed: what left the account (positions: the size closed)
    price: Decimal
    proceeds: Decimal  # USD credited to the account (realised PnL for a position)
    fee: Decimal  # to the insurance fund
    loan_repaid: Decimal


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
    kind: LiquidationStepKind  # the step that took the instrument over
    side: Side  # the liquidation account's side
    quantity: Decimal
    price: Decimal
    takeover_price: Decimal
    fee: Decimal
    gross_result: Decimal
    result: Decimal
    insurance_fund_paid: Decimal
    remaining_after: Decimal
    takeover_cost: Decimal | None = None  # collateral only


class InsuranceFundDrawn(JournalEvent, tag="insurance_fund_drawn", frozen=True):
    liquidation_id: str
    amount: Decimal
    fund_balance_after: Decimal


class DeleveragingRank(msgspec.Struct, frozen=True, kw_only=True):
    """Why this position was next in the auto-deleveraging queue (docs/risk-model.md)."""

    rank: int  # 1 = first deleveraged
    size: Decimal  # the position before it was reduced
    entry_price: Decimal
    unrealized_pnl: Decimal
    pnl_ratio: Decimal
    notional: Decimal
    equity: Decimal
    effective_leverage: Decimal | None
    score: Decimal | None


class AutoDeleveraged(JournalEvent, tag="auto_deleveraged", frozen=True):
    """A profitable opposite position reduced at the bankrupt account's bankruptcy price."""

    liquidation_id: str
    bankrupt_account_id: str
    market: str
    size_reduced: Decimal
    bankruptcy_price: Decimal
    mark_price: Decimal
    absorbed: Decimal
    ranking: DeleveragingRank | None = None


class BadDebtRecorded(JournalEvent, tag="bad_debt_recorded", frozen=True):
    """What neither collateral, the insurance fund nor auto-deleveraging could cover."""

    liquidation_id: str
    loan_written_off: Decimal  # the margin loan's shortfall: the broker's credit loss
    cash_written_off: Decimal  # a perpetuals deficit no profitable position could absorb


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


_encode_struct_sorted = msgspec.json.Encoder(order="sorted", decimal_format="string").encode
# msgspec writes a Decimal as `str(Decimal)`: fixed-point text, the journal's form, except
# with an exponent (`1E-8`, `1E+2`: an `E` and a sign) or as negative zero (`-0.00`).
# One search for a whole negative-zero text: a short position's `"-0.25"` is common, and
# looking at every `"-0` one by one cost more than the search. The exponent too is one
# search: on a record of 600 bytes it took a third of the time of `b"E-" in` and `b"E+" in`.
_NEGATIVE_ZERO_TEXT = re.compile(rb'"-0(?:0*|\.0*)"')
_EXPONENT_TEXT = re.compile(rb"E[-+]")


def _fixed_point(draft: bytes) -> bool:
    """Whether every figure of `draft` is fixed-point text (a text of the record that
    merely looks like an exponent or a negative zero only sends it the long way)."""
    return _EXPONENT_TEXT.search(draft) is None and _NEGATIVE_ZERO_TEXT.search(draft) is None


def _figure_field_names(event_types: tuple[type[msgspec.Struct], ...]) -> frozenset[bytes]:
    """The names of the fields that hold a `Decimal` (or None) in the journal's Structs,
    nested ones too, leaving out any name another field uses for a value of another type:
    in a draft, `"name":"0E-8"` is then a figure, never a text."""
    figures: set[str] = set()
    others: set[str] = set()
    pending, seen = list(event_types), set()
    while pending:
        struct = pending.pop()
        if struct in seen:
            continue
        seen.add(struct)
        for field in msgspec.structs.fields(struct):
            kinds = _kinds(field.type)
            (figures if kinds <= {Decimal, type(None)} else others).add(field.name)
            pending.extend(
                k for k in kinds if isinstance(k, type) and issubclass(k, msgspec.Struct)
            )
    return frozenset(name.encode("ascii") for name in figures - others)


def _kinds(annotation: Any) -> set[Any]:
    """The types an annotation is made of (`list[Rank] | None`: list, Rank, NoneType)."""
    arguments = get_args(annotation)
    if not arguments:
        return {annotation}
    origin = get_origin(annotation)
    kinds: set[Any] = set() if origin in (Union, UnionType) else {origin}
    for argument in arguments:
        kinds |= _kinds(argument)
    return kinds


# A zero figure with an exponent (`0E-8`: what quantizing a zero leaves) is the one kind of
# figure of the ledger's decisions that msgspec does not write fixed-point: about 4% of the
# journal's events, which the long way took three to four times as long to seal
# (docs/performance.md). Written as `format_decimal` writes it (`0.00000000`), the text
# reads back as the very same `Decimal` (zero, exponent -8), so the event stays the one a
# replay decodes. Only under a field name that holds a figure in every Struct: a text
# field's `"0E-8"` is left as it is (and the record goes the long way).
_FIGURE_FIELD_NAMES = _figure_field_names(get_args(JournalEventType))
_ZERO_VALUE_START = b'":"0E-'


def _zeros_fixed_point(draft: bytes) -> bytes:
    """`draft` with each `"name":"0E-n"` of a figure field written `"name":"0.000..."`. Found
    with `bytes.find` (a record holds one or two): a regular expression over the record
    took 2 to 7 us."""
    pieces: list[bytes] = []
    start = 0
    at = draft.find(_ZERO_VALUE_START)
    while at >= 0:
        digits_at = at + len(_ZERO_VALUE_START)
        end = draft.find(b'"', digits_at)
        digits = draft[digits_at:end]
        name = draft[draft.rfind(b'"', 0, at) + 1 : at]
        if name in _FIGURE_FIELD_NAMES and digits.isdigit() and not digits.startswith(b"0"):
            pieces += (draft[start:at], b'":"0.', b"0" * int(digits))
            start = end
        at = draft.find(_ZERO_VALUE_START, end)
    return b"".join((*pieces, draft[start:])) if pieces else draft


class SealedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A sealed journal record and its event exactly as a replay decodes it."""

    record: bytes
    event: JournalEventType


def seal_event(event: JournalEventType, seq: int, prev_hash: str) -> SealedEvent:
    """`journal.seal(journal_body(event), seq, prev_hash)`, from one encode of the Struct
    (`journal.seal_draft`); the long way when a figure would not be written fixed-point.

    On the short way every figure is `str(Decimal)`, which reads back as the very same
    `Decimal` (sign, digits and exponent), so the Struct with its seq and hashes is the
    event a replay decodes, without decoding it; on the long way it is decoded."""
    require(
        event.seq == 0 and not event.prev_hash and not event.hash,
        "an event to seal must not carry seq/prev_hash/hash",
    )
    linked = msgspec.structs.replace(event, seq=seq, prev_hash=prev_hash, hash=HASH_STAND_IN)
    draft = _encode_struct_sorted(linked)
    if not _fixed_point(draft):
        draft = _zeros_fixed_point(draft)
    sealed = seal_draft(draft, seq, prev_hash) if _fixed_point(draft) else None
    if sealed is None:
        record = seal(journal_body(event), seq, prev_hash).record
        return SealedEvent(record=record, event=decode_journal_record(record))
    # `linked` is this function's own copy, seen by nothing else yet: its hash is set in
    # place rather than copied once more.
    msgspec.structs.force_setattr(linked, "hash", sealed.hash)
    return SealedEvent(record=sealed.record, event=linked)


def journal_body(event: JournalEventType) -> dict[str, object]:
    """The event as the journal writes it (the body `journal.seal` takes): JSON-native
    values with every figure as fixed-point text. msgspec alone would write `str(Decimal)`,
    which can be `1E-8` or `-0`."""
    body: dict[str, object] = msgspec.to_builtins(event, builtin_types=(Decimal,))
    return _figures_as_text(body)


def _figures_as_text(value: dict[str, object]) -> dict[str, object]:
    return {key: _figure_as_text(item) for key, item in value.items()}


def _figure_as_text(value: object) -> object:
    kind = type(value)
    if kind is Decimal:
        return format_decimal(value)  # type: ignore[call-overload]  # kind is Decimal
    if kind is dict:
        return _figures_as_text(value)  # type: ignore[arg-type]  # kind is dict
    if kind is list:
        return [_figure_as_text(item) for item in value]  # type: ignore[attr-defined]  # a list
    return value
