"""The closed list of reasons for which the ledger refuses an input."""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Literal

import msgspec


class ReasonCode(StrEnum):
    # Found by decoding alone (ledger/inbox.py).
    RECORD_TOO_LARGE = "record_too_large"
    INVALID_ENCODING = "invalid_encoding"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    INVALID_EVENT_ID = "invalid_event_id"
    INVALID_TIMESTAMP = "invalid_timestamp"
    NUMBER_NOT_STRING = "number_not_string"
    INVALID_DECIMAL = "invalid_decimal"
    NOT_POSITIVE = "not_positive"
    AMOUNT_TOO_LARGE = "amount_too_large"
    TOO_MANY_DECIMALS = "too_many_decimals"
    UNKNOWN_ASSET = "unknown_asset"
    UNKNOWN_MARKET = "unknown_market"
    INVALID_SYMBOL = "invalid_symbol"
    TOO_DEEP = "too_deep"
    DUPLICATE_KEY = "duplicate_key"
    INVALID_IDENTIFIER = "invalid_identifier"
    # Found against the ledger's state (ledger/decisions.py).
    EVENT_ID_CONFLICT = "event_id_conflict"
    UNKNOWN_ACCOUNT = "unknown_account"
    ACCOUNT_ALREADY_EXISTS = "account_already_exists"
    NOT_PROFESSIONAL_INVESTOR = "not_professional_investor"
    NO_MARK_PRICE = "no_mark_price"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    BELOW_INITIAL_REQUIREMENT = "below_initial_requirement"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    LENDING_VALUE_EXCEEDED = "lending_value_exceeded"
    FIRM_LENDING_LIMIT_EXCEEDED = "firm_lending_limit_exceeded"
    CLIENT_LOAN_LIMIT_EXCEEDED = "client_loan_limit_exceeded"
    GROUP_LOAN_LIMIT_EXCEEDED = "group_loan_limit_exceeded"
    REPAYMENT_EXCEEDS_LOAN = "repayment_exceeds_loan"
    RESERVED_ACCOUNT = "reserved_account"
    UNKNOWN_LIQUIDATION = "unknown_liquidation"
    LIQUIDATION_OVERFILLED = "liquidation_overfilled"
    LIQUIDATION_SIDE_MISMATCH = "liquidation_side_mismatch"
    DAY_ALREADY_CLOSED = "day_already_closed"
    MARGIN_CALL_OPEN = "margin_call_open"
    FUNDING_ALREADY_SETTLED = "funding_already_settled"
    FUNDING_RATE_OUT_OF_BOUNDS = "funding_rate_out_of_bounds"
    UNKNOWN_TRADE = "unknown_trade"
    TRADE_ALREADY_BUSTED = "trade_already_busted"
    TRADE_NOT_REVERSIBLE = "trade_not_reversible"
    UNKNOWN_DEPOSIT = "unknown_deposit"
    DEPOSIT_ALREADY_RETURNED = "deposit_already_returned"
    # Recorded by an operator (`ledger inbox skip`), never by a decision.
    SKIPPED_BY_OPERATOR = "skipped_by_operator"


class Refusal(Exception):
    """An input the ledger will not book: a stable code and a sentence a person can act on.

    A decision returns it as a value (`ledger.decisions`: `Rejected`, `Refused`); only the
    inbox decoder raises it, for a record that is not a well-formed input at all."""

    def __init__(self, reason_code: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


# How a reject keeps the refused record and its key: text, or base64 when not UTF-8.
ValueEncoding = Literal["utf-8", "base64"]


class RejectRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One refused input as the rejects stream keeps it: why, and the record itself.

    Written as canonical JSON (ledger/application.py); `number`
    runs 1, 2, 3 ... without a gap, as the journal's `seq` does.
    """

    number: int
    recorded_at: str | None  # the ledger clock when refused; None before any input
    reason_code: ReasonCode
    detail: str
    topic: str
    partition: int | None  # None for a file ingested from disk (offset: its line number)
    offset: int | None
    key: str | None
    value: str  # the record as received, written as `value_encoding` says
    # Fields added later carry defaults, so that older rejects still read.
    event_id: str | None = None  # None when refused before its id could be read
    value_encoding: ValueEncoding = "utf-8"
    # Only for a record over `reject_value_bytes_max`: `value` keeps its first bytes.
    value_bytes: int | None = None  # the whole record's length
    value_sha256: str | None = None  # the whole record's SHA-256, hex
    key_encoding: ValueEncoding = "utf-8"  # written only when `key` is base64

    def key_bytes(self) -> bytes | None:
        """The refused record's Kafka key, its bytes as they arrived."""
        if self.key is None:
            return None
        if self.key_encoding == "base64":
            return base64.b64decode(self.key, validate=True)
        return self.key.encode("utf-8")


_reject_decoder = msgspec.json.Decoder(RejectRecord)


def decode_reject_record(record: bytes) -> RejectRecord:
    return _reject_decoder.decode(record)
