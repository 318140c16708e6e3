"""Pre-trade checks: would the ledger accept this record, and what would the account look like?

An upstream system (the trading system before it sends an order to the venue, the cashier
before it releases a withdrawal) proposes an inbox record: a `perp_trade` or `spot_trade`
as it would be booked if the order filled, a `withdrawal_requested` or a
`loan_draw_requested`. `check` decodes it exactly as the inbox does and decides it with the
ledger's own decision code on a scratch copy of the book (`ledger/scratch.py`): nothing is
booked, nothing is written to the store, and the answer names the journal seq it was
computed at so that a caller can tell a stale answer.

The verdict:

- a record the inbox would refuse, or a decision would refuse (`*_rejected`, or refused
  into the rejects), is `refused` with the ledger's own reason code and sentence;
- an `event_id` the ledger already booked is a `duplicate` (same content: the ledger would
  ignore it) or refused `event_id_conflict` (other content);
- a trade the ledger would book is still `refused` `below_initial_requirement` when it
  leaves the account's available margin (`E - initial_requirement`) negative AND lower than
  before: a trade the venue reports is booked whatever it does to the margin, but the SFC
  wants margin collected before an order is accepted, so the check answers for the order.
  A trade that reduces the account's risk (available no lower than before) passes.
- a trade after which the ledger would liquidate the account at once is `refused`
  `below_initial_requirement` too: its figures after the liquidation may show margin to
  spare, but the order took the equity below the liquidation requirement.
- a trade whose USD debit the ledger would finance on the margin loan past a lending limit
  (the account's credit limit or lending value, the firm's total, one client's share, the
  related group's total) is `refused` with that limit's reason code: the ledger books such
  a fill and names the limit in `debit_financed.limits_broken`, but an order should not
  be sent that breaks it.
- anything else is `accepted`.

The house's side of a perpetual order. The ledger books a client's perpetual trade twice:
the client's side, then the house's, its counterparty. A check leaves the house's side out
(about a tenth of a check's CPU; its entry in `would_record` keeps its place), because
nothing the answer says depends on it: the trade's refusals all come before either side is
booked (an unknown account, the retail rule); the house's event moves only the house's
position and the USD of the house and `platform:perp_settlement`, reserved accounts that
are never overdrawn, financed or reviewed (`Book.overdrawn`, `margin.review`); the client's
figures are of its own holdings at the marks, the lending limits of the clients' loans. The
one decision that reads other accounts' positions is auto-deleveraging, inside a
liquidation (`liquidation.deleveraging_queue`, where the house's position may stand): a
check whose decision records anything but the trade, a financed debit and the margin
review's calls and waits (`HOUSE_BLIND`) is decided again with the house's side booked. A
test checks every order of a simulated day both ways.

The figures before and after are those of `ledger query margin` (`reporting.margin_view`);
the figures after are those the record's margin review computed when it valued the
account (`scratch.ValuingDesk`), and computed here only when no decision valued it.
A long-lived caller (the API) passes one `FiguresBefore` to every check: an account's
figures before a record change only when the book takes a journal event that changes what
they are computed from, so they are computed once per account and such change, not once
per check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec

from ledger import inbox, reporting, risk
from ledger import journal_events as je
from ledger.book import Book
from ledger.decisions import Booked, Decision, decide
from ledger.inbox import decode_digested
from ledger.journal import JournalEntry
from ledger.money import format_decimal
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal
from ledger.scratch import ValuingDesk, valuing_desk
from ledger.store import LedgerStore

CHECKABLE_TYPES = (
    inbox.PerpTrade,
    inbox.SpotTrade,
    inbox.WithdrawalRequested,
    inbox.LoanDrawRequested,
)
DEBIT_FINANCED = str(je.DebitFinanced.__struct_config__.tag)
LIQUIDATION_TRIGGERED = str(je.LiquidationTriggered.__struct_config__.tag)
# What a trade's decision may record that no platform account's position or balance
# enters: the trade, a financed debit, the margin review's calls and waits. Anything else
# (a liquidation) and the check is decided again with the house's side of the trade booked.
HOUSE_BLIND = frozenset(
    str(kind.__struct_config__.tag)
    for kind in (
        je.PerpTradeBooked,
        je.DebitFinanced,
        je.MarginCallIssued,
        je.MarginDecisionWaiting,
        je.MarginCallCleared,
    )
)
CHECKABLE_TAGS = tuple(str(t.__struct_config__.tag) for t in CHECKABLE_TYPES)
CheckableRecord = (
    inbox.PerpTrade | inbox.SpotTrade | inbox.WithdrawalRequested | inbox.LoanDrawRequested
)


class CheckError(ValueError):
    """A request the check cannot answer: a record type it does not take, or a record for
    another account than the one asked about. The caller's mistake, not a verdict."""


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


class PreTradeCheck(msgspec.Struct, frozen=True, kw_only=True):  # one a check: a fast init
    account_id: str
    journal_seq: int  # the last journal seq of the book the check was decided on
    record_type: str | None  # None when the record could not be decoded
    event_id: str | None
    outcome: Outcome
    refusal: Refusal | None
    would_record: tuple[str, ...]  # the journal event types the ledger would record
    before: dict[str, Any] | None  # `ledger query margin`'s figures; None when unvalued
    after: dict[str, Any] | None  # the same after the record; None unless it would be booked

    def document(self, policy_version: str) -> dict[str, Any]:
        """The answer as JSON-ready values (decimals as strings)."""
        return {
            "account_id": self.account_id,
            "journal_seq": self.journal_seq,
            "policy_version": policy_version,
            "record_type": self.record_type,
            "event_id": self.event_id,
            "outcome": str(self.outcome),
            "accepted": self.outcome is Outcome.ACCEPTED,
            "reason_code": None if self.refusal is None else str(self.refusal.reason_code),
            "detail": None if self.refusal is None else self.refusal.detail,
            "would_record": list(self.would_record),
            "before": self.before,
            "after": self.after,
        }


class _KeptFigures(msgspec.Struct):
    """An account's figures document, the journal seq it was last known good at, and what
    it was computed from (`_valued_from`)."""

    seq: int
    inputs: tuple[object, ...]
    document: dict[str, Any] | None


@dataclass
class FiguresBefore:
    """Each account's figures, kept while the journal moves on by events that change none
    of what they are computed from (another account's trade, a mark of an instrument it
    does not hold): under live booking the seq moves between most checks, and computing
    them again cost a check about a fifth more. Bounded by the book's own accounts; the
    documents are shared, never changed."""

    book: Book | None = None
    documents: dict[str, _KeptFigures] = field(default_factory=dict)

    def of(self, book: Book, policy: Policy, account_id: str) -> dict[str, Any] | None:
        if book is not self.book:
            self.book = book
            self.documents.clear()
        kept = self.documents.get(account_id)
        if kept is not None and kept.seq == book.last_seq:
            return kept.document
        inputs = _valued_from(book, account_id)
        if kept is None or not _same_objects(inputs, kept.inputs):
            document = _figures_document(book, policy, account_id)
            kept = self.documents[account_id] = _KeptFigures(book.last_seq, inputs, document)
        kept.seq = book.last_seq
        return kept.document


def _valued_from(book: Book, account_id: str) -> tuple[object, ...]:
    """What `reporting.margin_view` of the account reads: the account, its balances, loan,
    positions and margin call, the marks of what it holds (and the policy, the caller's
    own). The book puts a new object in place of each one it changes."""
    account = book.accounts.get(account_id)
    if account is None:
        return ()
    marks = book.marks
    balances, positions = account.balances, account.positions
    return (
        account,
        account.loan_principal,
        account.loan_interest,
        account.margin_call,
        *balances,
        *balances.values(),
        *positions,
        *positions.values(),
        *[marks.get(held) for held in balances],
        *[marks.get(held) for held in positions],
    )


def _same_objects(these: tuple[object, ...], those: tuple[object, ...]) -> bool:
    """The same objects, not equal ones: `Decimal("1.5") == Decimal("1.50")`, but the two
    are written differently, and so are the figures computed from them."""
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def check(
    book: Book,
    policy: Policy,
    account_id: str,
    raw: bytes,
    figures_before: FiguresBefore | None = None,
    *,
    store: LedgerStore,
) -> PreTradeCheck:
    """Decide the proposed record `raw` for `account_id` on a scratch copy of `book`, which
    stands at a seq of `store`'s journal: `store` says whether the ledger has seen the
    record's event id by then (no book keeps the inputs seen)."""
    before = (figures_before or FiguresBefore()).of(book, policy, account_id)
    verdict = _Verdict(account_id, book.last_seq, before)
    try:
        decoded = decode_digested(raw, policy)
    except Refusal as undecodable:
        return verdict.refused(None, undecodable)
    record, digest = _checkable(decoded.record, account_id), decoded.digest
    seen = store.input_seen(record.event_id, book.last_seq)
    if seen is not None:
        if seen == digest:
            return verdict.of(record, Outcome.DUPLICATE, None)
        conflict = Refusal(
            ReasonCode.EVENT_ID_CONFLICT,
            f"event_id {record.event_id!r} was already booked with different content: "
            "give a new fact a new event_id",
        )
        return verdict.refused(record, conflict)
    desk, decision = _decided(book, policy, record, digest, leaves_house_out=True)
    if desk.left_house_out and not HOUSE_BLIND.issuperset(e.type for e in desk.pending):
        desk, decision = _decided(book, policy, record, digest, leaves_house_out=False)
    recorded = tuple(entry.type for entry in desk.pending)
    if not isinstance(decision, Booked):
        return verdict.refused(record, decision.refusal, recorded)
    account = desk.book.accounts.get(account_id)
    # The review has valued the account after the record, in most checks: its figures.
    valued = None if account is None else desk.kept_figures(account)
    after = _figures_document(desk.book, policy, account_id, valued)
    trade = isinstance(record, inbox.PerpTrade | inbox.SpotTrade)
    refusal = (
        (
            _financing_refusal(desk.pending)
            or _liquidation_refusal(recorded)
            or _margin_refusal(before, after)
        )
        if trade
        else None
    )
    if refusal is not None:
        return verdict.refused(record, refusal, recorded, after)
    return verdict.of(record, Outcome.ACCEPTED, None, recorded, after)


def _decided(
    book: Book, policy: Policy, record: CheckableRecord, digest: str, *, leaves_house_out: bool
) -> tuple[ValuingDesk, Decision]:
    """`record` (of input digest `digest`) decided on a scratch desk of `book` (the module
    docstring says when the house's side of a trade may be left out), and the decision."""
    desk = valuing_desk(book, policy, record.account_id, leaves_house_out=leaves_house_out)
    desk.begin(record.event_id, record.occurred_at, digest)
    return desk, decide(desk, record)


class _Verdict(msgspec.Struct, frozen=True):
    """What every answer of one check shares."""

    account_id: str
    journal_seq: int
    before: dict[str, Any] | None

    def of(
        self,
        record: CheckableRecord | None,
        outcome: Outcome,
        refusal: Refusal | None,
        recorded: tuple[str, ...] = (),
        after: dict[str, Any] | None = None,
    ) -> PreTradeCheck:
        return PreTradeCheck(
            account_id=self.account_id,
            journal_seq=self.journal_seq,
            record_type=None if record is None else str(record.__struct_config__.tag),
            event_id=None if record is None else record.event_id,
            outcome=outcome,
            refusal=refusal,
            would_record=recorded,
            before=self.before,
            after=after,
        )

    def refused(
        self,
        record: CheckableRecord | None,
        refusal: Refusal,
        recorded: tuple[str, ...] = (),
        after: dict[str, Any] | None = None,
    ) -> PreTradeCheck:
        return self.of(record, Outcome.REFUSED, refusal, recorded, after)


def _checkable(record: inbox.InboxRecordType, account_id: str) -> CheckableRecord:
    if not isinstance(record, CHECKABLE_TYPES):
        tag = record.__struct_config__.tag
        raise CheckError(f"a check takes a proposed {', '.join(CHECKABLE_TAGS)} record, not {tag}")
    if record.account_id != account_id:
        raise CheckError(
            f"the record is for account {record.account_id}, not {account_id}: "
            "check it under its own account"
        )
    return record


def _figures_document(
    book: Book, policy: Policy, account_id: str, figures: risk.MarginFigures | None = None
) -> dict[str, Any] | None:
    """`ledger query margin`'s figures without its position fields (the check names them);
    None for an account that is not open or cannot be valued (a held asset has no mark).
    `figures`, the account's full figures in `book` when a decision computed them, are
    not computed again."""
    account = book.accounts.get(account_id)
    if account is None or not account.is_client:
        return None
    try:
        document = reporting.margin_view(book, policy, account_id, figures)
    except risk.MissingMark:
        return None
    del document["account_id"], document["as_of_seq"]
    return document


def _financing_refusal(pending: list[JournalEntry]) -> Refusal | None:
    """The first lending limit a financed debit of the trade would break, as a refusal."""
    for entry in pending:
        if entry.type != DEBIT_FINANCED:
            continue
        financed = je.decode_journal_record(entry.record)
        if isinstance(financed, je.DebitFinanced) and financed.limits_broken:
            reason = financed.limits_broken[0]
            return Refusal(
                reason,
                f"the trade would draw {format_decimal(financed.amount)} USD on the margin "
                f"loan, breaking {', '.join(financed.limits_broken)}: trade less, or deposit "
                "USD first",
            )
    return None


def _liquidation_refusal(recorded: tuple[str, ...]) -> Refusal | None:
    """`below_initial_requirement` for a trade after which the ledger would liquidate the
    account at once (its review after the trade: the one account a check's desk reviews).
    The figures after the liquidation may show margin to spare; the order left the equity
    below the liquidation requirement, so below the initial one too."""
    if LIQUIDATION_TRIGGERED not in recorded:
        return None
    return Refusal(
        ReasonCode.BELOW_INITIAL_REQUIREMENT,
        "after it, the account's equity would be below its liquidation requirement and the "
        "ledger would liquidate it at once: trade less, or deposit collateral first",
    )


def _margin_refusal(before: dict[str, Any] | None, after: dict[str, Any] | None) -> Refusal | None:
    """`below_initial_requirement` for a trade that leaves the available margin negative and
    lower than it was; `no_mark_price` when the account cannot be valued after the trade.
    The figures are the documents' exact decimal strings."""
    if after is None:
        return Refusal(
            ReasonCode.NO_MARK_PRICE,
            "an asset or market the account holds has no mark price yet, so the trade's "
            "margin cannot be checked: publish a mark first",
        )
    available_after = Decimal(after["available"])
    if available_after >= 0:
        return None
    if before is not None and available_after >= Decimal(before["available"]):
        return None
    return Refusal(
        ReasonCode.BELOW_INITIAL_REQUIREMENT,
        f"after it, the available margin would be {format_decimal(available_after)} USD: "
        "equity would fall below the initial requirement; trade less, or deposit collateral "
        "first",
    )
