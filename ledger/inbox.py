"""The inbox contract (docs/events.md "Inbox records") and its decoding.

The records below are the decoded shape handed to the rest of the ledger: amounts,
prices, quantities and rates are `Decimal`, timestamps are UTC. On the wire those
figures are JSON strings, and msgspec would happily turn a JSON number (or `"1e5"`, or
`"NaN"`) into a `Decimal`; so each record class has a generated *wire* twin whose
decimal fields are plain `str`, and every figure passes through `_parse_figure`, the one
place that checks form, sign, bound and scale. How a figure is checked is declared on
its annotation (`Figure`), and which policy entry a code must name (`Reference`), so the
field lists are written once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, NoReturn, TypeAlias, get_args, get_origin

import msgspec

from ledger import limits
from ledger.identifiers import identifier_problem
from ledger.invariants import InvariantViolation, present
from ledger.money import REPORTING_ASSET, format_decimal, parse_decimal_text
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal


class Sign(Enum):
    POSITIVE = "greater than zero"
    NOT_NEGATIVE = "zero or more"
    ANY = "any sign"


class ScaleOf(Enum):
    """Where a figure's allowed decimal places come from, when it is not a fixed number."""

    REPORTING_ASSET = "the scale of the reporting currency (USD)"
    ASSET_FIELD = "the scale of the record's `asset`"
    SYMBOL_BASE = "the scale of the base asset of `symbol`"


@dataclass(frozen=True)
class Figure:
    """How a decimal field is checked: its sign and its decimal places."""

    sign: Sign
    places: int | ScaleOf


@dataclass(frozen=True)
class Identifier:
    """A text field under the identifier rule (ledger/identifiers.py)."""


class Reference(Enum):
    """A code field that must name something the policy knows."""

    ASSET = "asset"
    MARKET = "market"
    SYMBOL = "symbol"
    INSTRUMENT = "instrument"


EventId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=limits.event_id_chars_max), Identifier()
]
AccountId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=limits.account_id_chars_max), Identifier()
]
TradeId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=limits.trade_id_chars_max), Identifier()
]
GroupId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=limits.group_id_chars_max), Identifier()
]
# Free text that reports print: the identifier rule, bounded by the record's size only.
Text = Annotated[str, Identifier()]
LiquidationId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=limits.liquidation_id_chars_max), Identifier()
]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
AssetCode = Annotated[str, Reference.ASSET]
MarketCode = Annotated[str, Reference.MARKET]
SpotSymbol = Annotated[str, Reference.SYMBOL]
Instrument = Annotated[str, Reference.INSTRUMENT]
Side = Literal["buy", "sell"]
InvestorClass = Literal["professional", "retail"]
DailyStatements = Literal["sent", "waived"]

AssetAmount = Annotated[Decimal, Figure(Sign.POSITIVE, ScaleOf.ASSET_FIELD)]
UsdAmount = Annotated[Decimal, Figure(Sign.POSITIVE, ScaleOf.REPORTING_ASSET)]
UsdLimit = Annotated[Decimal, Figure(Sign.NOT_NEGATIVE, ScaleOf.REPORTING_ASSET)]
Fee = Annotated[Decimal, Figure(Sign.NOT_NEGATIVE, ScaleOf.REPORTING_ASSET)]
SpotQuantity = Annotated[Decimal, Figure(Sign.POSITIVE, ScaleOf.SYMBOL_BASE)]
PerpQuantity = Annotated[Decimal, Figure(Sign.POSITIVE, limits.perp_quantity_decimal_places_max)]
Price = Annotated[Decimal, Figure(Sign.POSITIVE, limits.price_decimal_places_max)]
Rate = Annotated[Decimal, Figure(Sign.ANY, limits.price_decimal_places_max)]


class InboxRecord(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    """Fields common to every inbox record."""

    event_id: EventId
    occurred_at: Timestamp
    source: Text | None = None


class AccountOpened(InboxRecord, tag="account_opened", frozen=True):
    """Opens a client account."""

    account_id: AccountId
    investor_class: InvestorClass
    credit_limit: UsdLimit = Decimal(0)


class CreditLimitSet(InboxRecord, tag="credit_limit_set", frozen=True):
    """The credit team's approved margin limit, in USD."""

    account_id: AccountId
    credit_limit: UsdLimit


class Deposit(InboxRecord, tag="deposit", frozen=True):
    """Credits the account with an asset."""

    account_id: AccountId
    asset: AssetCode
    amount: AssetAmount
    reference: Text | None = None


class WithdrawalRequested(InboxRecord, tag="withdrawal_requested", frozen=True):
    """Asks to withdraw an asset; approved or rejected."""

    account_id: AccountId
    asset: AssetCode
    amount: AssetAmount


class LoanDrawRequested(InboxRecord, tag="loan_draw_requested", frozen=True):
    """Asks for a USD margin loan draw; approved or rejected."""

    account_id: AccountId
    amount: UsdAmount


class LoanRepayment(InboxRecord, tag="loan_repayment", frozen=True):
    """Repays accrued interest first, then principal, in USD."""

    account_id: AccountId
    amount: UsdAmount


class SpotTrade(InboxRecord, tag="spot_trade", frozen=True):
    """A spot trade that happened on the venue: `symbol` is `BASE/USD`."""

    account_id: AccountId
    trade_id: TradeId
    symbol: SpotSymbol
    side: Side
    quantity: SpotQuantity
    price: Price
    fee: Fee
    # Set by the venue on its sale of collateral a liquidation of the ledger took over.
    liquidation_id: LiquidationId | None = None


class PerpTrade(InboxRecord, tag="perp_trade", frozen=True):
    """A perpetual trade that happened on the venue."""

    account_id: AccountId
    trade_id: TradeId
    market: MarketCode
    side: Side
    quantity: PerpQuantity
    price: Price
    fee: Fee
    # Set by the venue on its execution of a position a liquidation of the ledger took over.
    liquidation_id: LiquidationId | None = None


class MarkPrice(InboxRecord, tag="mark_price", frozen=True):
    """The USD mark of an asset or a perpetual market."""

    instrument: Instrument
    price: Price


class FundingRate(InboxRecord, tag="funding_rate", frozen=True):
    """The funding rate of a market for one interval."""

    market: MarketCode
    rate: Rate
    funding_time: Timestamp


class RelatedGroupSet(InboxRecord, tag="related_group_set", frozen=True):
    """Puts the account in a group of related clients, or out of its group (null)."""

    account_id: AccountId
    group_id: GroupId | None


class DailyStatementsSet(InboxRecord, tag="daily_statements_set", frozen=True):
    """A professional investor waives daily statements, or asks for them again."""

    account_id: AccountId
    daily_statements: DailyStatements


class DayClosed(InboxRecord, tag="day_closed", frozen=True):
    """The business day `business_date` (YYYY-MM-DD) is over."""

    business_date: date


class TradeBusted(InboxRecord, tag="trade_busted", frozen=True):
    """The venue busted (cancelled) a trade the ledger booked: it is reversed exactly."""

    trade_id: TradeId
    reason: Text


class DepositReturned(InboxRecord, tag="deposit_returned", frozen=True):
    """A deposit came back (a bank return, a recall): it is reversed exactly."""

    reference: Text
    reason: Text


InboxRecordType: TypeAlias = (
    AccountOpened
    | CreditLimitSet
    | Deposit
    | WithdrawalRequested
    | LoanDrawRequested
    | LoanRepayment
    | SpotTrade
    | PerpTrade
    | MarkPrice
    | FundingRate
    | DayClosed
    | RelatedGroupSet
    | DailyStatementsSet
    | TradeBusted
    | DepositReturned
)
INBOX_RECORD_TYPES: tuple[type[InboxRecordType], ...] = get_args(InboxRecordType)


@dataclass(frozen=True)
class _Plan:
    """What decoding one record type takes beyond msgspec's own checks."""

    record_type: type[InboxRecordType]
    identifiers: tuple[str, ...]
    references: tuple[tuple[str, Reference], ...]
    figures: tuple[tuple[str, Figure], ...]
    timestamps: tuple[str, ...]


def _metadata(annotation: object, kind: type[Any]) -> Any:
    if get_origin(annotation) is Annotated:
        for item in annotation.__metadata__:  # type: ignore[attr-defined]  # Annotated alias
            if isinstance(item, kind):
                return item
    return None


def _is_identifier(annotation: object) -> bool:
    """An `Identifier` field, alone or as the text of an optional field (`Text | None`)."""
    candidates = get_args(annotation) if get_origin(annotation) is not Annotated else ()
    return any(
        _metadata(candidate, Identifier) is not None for candidate in (annotation, *candidates)
    )


def _plan(record_type: type[InboxRecordType]) -> _Plan:
    fields = msgspec.structs.fields(record_type)
    return _Plan(
        record_type=record_type,
        identifiers=tuple(field.name for field in fields if _is_identifier(field.type)),
        references=tuple(
            (field.name, _metadata(field.type, Reference))
            for field in fields
            if _metadata(field.type, Reference) is not None
        ),
        figures=tuple(
            (field.name, _metadata(field.type, Figure))
            for field in fields
            if _metadata(field.type, Figure) is not None
        ),
        timestamps=tuple(
            field.name
            for field in fields
            if field.type is datetime or get_args(field.type)[:1] == (datetime,)
        ),
    )


def _wire_field(field: msgspec.structs.FieldInfo) -> tuple[Any, ...]:
    """A field as it travels: a decimal is a plain string, everything else unchanged."""
    kind, default = field.type, field.default
    if _metadata(field.type, Figure) is not None:
        kind = str
        default = format_decimal(default) if isinstance(default, Decimal) else default
    return (field.name, kind) if default is msgspec.NODEFAULT else (field.name, kind, default)


def _wire_type(record_type: type[InboxRecordType]) -> type[msgspec.Struct]:
    """The record's twin that msgspec decodes: same tag, same fields, figures as strings."""
    return msgspec.defstruct(
        f"{record_type.__name__}Wire",
        [_wire_field(field) for field in msgspec.structs.fields(record_type)],
        tag_field="type",
        tag=record_type.__struct_config__.tag,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
    )


_PLANS: dict[type[msgspec.Struct], _Plan] = {
    _wire_type(record_type): _plan(record_type) for record_type in INBOX_RECORD_TYPES
}
_WIRE_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    functools.reduce(operator.or_, _PLANS), strict=True
)
_ZERO = Decimal(0)
_AMOUNT_BOUND = Decimal(limits.amount_exclusive_max)
_FIGURE_FIELDS = frozenset(name for plan in _PLANS.values() for name, _ in plan.figures)
_TIMESTAMP_FIELDS = frozenset(name for plan in _PLANS.values() for name in plan.timestamps)


class DigestedRecord(msgspec.Struct, frozen=True):
    """An inbox record as decoded, and its digest: the SHA-256 hex of its canonical JSON,
    figures in their normal form (`"1.50"` and `"1.5"`, or `08:00+08:00` and `00:00Z`,
    are the same figure and the same moment, so they give the same digest)."""

    record: InboxRecordType
    digest: str


def decode_inbox(raw: bytes, policy: Policy) -> InboxRecordType:
    """Decode one inbox record value, or raise `Refusal` saying what is wrong with it."""
    return decode_digested(raw, policy).record


def decode_digested(raw: bytes, policy: Policy) -> DigestedRecord:
    """`decode_inbox` and the record's digest, computed from the texts the decode reads."""
    if len(raw) > limits.inbox_record_bytes_max:
        _refuse(
            ReasonCode.RECORD_TOO_LARGE,
            f"the record is {len(raw)} bytes; an inbox record may hold at most "
            f"{limits.inbox_record_bytes_max} bytes",
        )
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            _refuse(
                ReasonCode.INVALID_ENCODING,
                f"the record is not valid UTF-8 (byte {error.start}); write it as UTF-8 JSON",
            )
    depth = _nesting_depth(raw)
    if depth > limits.inbox_json_depth_max:
        _refuse(
            ReasonCode.TOO_DEEP,
            f"the record nests arrays or objects {depth} deep; an inbox record is one flat "
            f"JSON object (at most {limits.inbox_json_depth_max} deep is even read)",
        )
    try:
        wire = _WIRE_DECODER.decode(raw)
    except msgspec.ValidationError as error:
        raise _validation_refusal(str(error)) from None
    except msgspec.DecodeError as error:
        if not raw:  # the reader's "Input data was truncated" names no cause
            _refuse(
                ReasonCode.MALFORMED_JSON,
                "the record is empty (a Kafka record without a value, such as a tombstone): "
                "send one JSON object",
            )
        _refuse(ReasonCode.MALFORMED_JSON, f"the record is not valid JSON ({error}).")
    duplicate = _duplicate_key(raw)
    if duplicate is not None:
        _refuse(
            ReasonCode.DUPLICATE_KEY,
            f"the record holds the key {duplicate!r} more than once; readers disagree on "
            "which value counts, so write each field once",
        )
    return _build(wire, _PLANS[type(wire)], policy)


_OPENERS = (b"[", b"{")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: no backtracking
_BRACKET = re.compile(rb"[\[\]{}]")
_FLAT_DECODER = msgspec.json.Decoder(dict[str, str | None])


def _nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest, outside strings. Counted before msgspec reads
    the record: its recursion on a deep value depends on the caller's stack."""
    if raw.count(b"{") + raw.count(b"[") <= limits.inbox_json_depth_max:
        return 1  # the common case: too few brackets to nest too deep
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub(b"", raw)):
        depth += 1 if bracket[0] in _OPENERS else -1
        deepest = max(deepest, depth)
    return deepest


def _duplicate_key(raw: bytes) -> str | None:
    """The first key the record holds twice, compared after unescaping; None if none.

    Called on a record msgspec decoded into a record type, so one flat object of strings
    and nulls. msgspec, like many JSON readers, keeps the last of duplicate keys, others
    the first. Without a backslash every `"` delimits a key or a string value, so the
    quotes add up exactly when each key is there once; otherwise (or to name the key)
    the standard library's reader lists every pair."""
    if b"\\" not in raw:
        fields = _FLAT_DECODER.decode(raw)
        strings = len(fields) - list(fields.values()).count(None)
        if raw.count(b'"') == 2 * (len(fields) + strings):
            return None
    seen: set[str] = set()
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        for key, _ in items:
            if key in seen:
                repeated.append(key)
            seen.add(key)

    json.loads(raw, object_pairs_hook=pairs)
    return repeated[0] if repeated else None


def _build(wire: msgspec.Struct, plan: _Plan, policy: Policy) -> DigestedRecord:
    values = msgspec.structs.asdict(wire)
    for name in plan.identifiers:
        text = values[name]
        problem = None if text is None else identifier_problem(text)
        if problem is not None:
            _refuse(
                ReasonCode.INVALID_IDENTIFIER,
                f"`{name}` {problem}; ids are printable NFC text (docs/upstream.md)",
            )
    for name, reference in plan.references:
        _check_reference(name, values[name], reference, policy)
    normal: dict[str, object] = {"type": plan.record_type.__struct_config__.tag}
    for name, figure in plan.figures:
        text = values[name]
        values[name] = _parse_figure(name, text, figure, values, policy)
        normal[name] = _normal_text(text, values[name])
    for name in plan.timestamps:
        moment: datetime = values[name]
        if moment.tzinfo is not UTC:
            values[name] = moment.astimezone(UTC)
    digest = hashlib.sha256(_DIGEST_ENCODER.encode({**values, **normal})).hexdigest()
    return DigestedRecord(plan.record_type(**values), digest)


_DIGEST_ENCODER = msgspec.json.Encoder(order="sorted")
# A text of at most this many characters has at most this many digits, the precision of the
# default context that `Decimal.normalize` rounds to: the digest's figures were written
# `format_decimal(value.normalize())`, and a longer text keeps that path (a stored input's
# digest must not change).
_NORMAL_TEXT_CHARS_MAX = 28


def _normal_text(text: str, value: Decimal) -> str:
    """`format_decimal(value.normalize())` of a figure read from the plain decimal `text`:
    the text without the zeros ending its fraction (nor a bare point), `0` for a negative
    zero; in a third of the time."""
    if len(text) > _NORMAL_TEXT_CHARS_MAX:
        return format_decimal(value.normalize())
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _parse_figure(
    name: str, text: str, figure: Figure, values: dict[str, Any], policy: Policy
) -> Decimal:
    """The one place a decimal of the inbox is read: form, sign, bound, then scale."""
    try:
        value = parse_decimal_text(text)
    except ValueError:
        _refuse(
            ReasonCode.INVALID_DECIMAL,
            f'`{name}` is {text[:40]!r}; write a plain decimal such as "1250.50" '
            "(no exponent, NaN, Infinity, spaces, leading '+' or leading zeros)",
        )
    if (
        value <= _ZERO
        and figure.sign is not Sign.ANY
        and (figure.sign is Sign.POSITIVE or value.is_signed())
    ):
        _refuse(ReasonCode.NOT_POSITIVE, f"`{name}` is {text}; it must be {figure.sign.value}")
    if not -_AMOUNT_BOUND < value < _AMOUNT_BOUND:
        _refuse(ReasonCode.AMOUNT_TOO_LARGE, f"`{name}` is {text}; it must be below 10^18")
    point = text.find(".")
    places = 0 if point < 0 else len(text) - point - 1  # the text is plain: digits after '.'
    allowed = (
        figure.places if isinstance(figure.places, int) else _scale(figure.places, values, policy)
    )
    if places > allowed:
        _refuse(
            ReasonCode.TOO_MANY_DECIMALS,
            f"`{name}` is {text}, which has {places} decimal places; at most {allowed} are "
            f"allowed{_scale_origin(figure.places)}",
        )
    return value


def _scale(scale_of: ScaleOf, values: dict[str, Any], policy: Policy) -> int:
    match scale_of:
        case ScaleOf.REPORTING_ASSET:
            code = REPORTING_ASSET
        case ScaleOf.ASSET_FIELD:
            code = values["asset"]
        case ScaleOf.SYMBOL_BASE:
            code = values["symbol"].partition("/")[0]
    scale = policy.asset_scale(code)
    if scale is None:
        raise InvariantViolation(f"asset {code!r} was checked against the policy before")
    return scale


def _scale_origin(places: int | ScaleOf) -> str:
    return "" if isinstance(places, int) else f" by {places.value}"


def _check_reference(name: str, code: str, reference: Reference, policy: Policy) -> None:
    match reference:
        case Reference.ASSET:
            if policy.asset_scale(code) is None:
                _refuse(ReasonCode.UNKNOWN_ASSET, f"`{name}` names {code!r}, an unknown asset")
        case Reference.MARKET:
            if code not in policy.markets:
                _refuse(
                    ReasonCode.UNKNOWN_MARKET,
                    f"`{name}` names {code!r}; known markets: {', '.join(sorted(policy.markets))}",
                )
        case Reference.SYMBOL:
            base, slash, quote = code.partition("/")
            if (
                not slash
                or quote != REPORTING_ASSET
                or base == REPORTING_ASSET
                or (policy.asset_scale(base) is None)
            ):
                _refuse(
                    ReasonCode.INVALID_SYMBOL,
                    f"`{name}` is {code!r}; write BASE/USD with a known base asset, as in BTC/USD",
                )
        case Reference.INSTRUMENT:
            _check_instrument(name, code, policy)


def _check_instrument(name: str, code: str, policy: Policy) -> None:
    if code in policy.markets:
        return
    if code == REPORTING_ASSET:
        _refuse(
            ReasonCode.INVALID_FIELD,
            f"`{name}` is {REPORTING_ASSET}, the reporting currency, whose mark is always 1",
        )
    if policy.asset_scale(code) is None:
        if code.endswith("-PERP"):
            _refuse(ReasonCode.UNKNOWN_MARKET, f"`{name}` names {code!r}, an unknown market")
        _refuse(
            ReasonCode.UNKNOWN_ASSET,
            f"`{name}` names {code!r}, which is neither a known asset nor a known market",
        )


_VALIDATION_MESSAGE = re.compile(r"^(?P<problem>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.S)
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]*)`")


def _validation_refusal(message: str) -> Refusal:
    """Map msgspec's validation message (`problem - at `$.field``) to a reason code."""
    parsed = present(_VALIDATION_MESSAGE.match(message), "the pattern matches any text")
    problem, path = parsed["problem"], parsed["path"] or ""
    field = path.split(".", 1)[0].split("[", 1)[0]
    named = _NAMED_FIELD.search(problem)
    if problem.startswith("Object missing required field") and named:
        if named["field"] == "type":
            return Refusal(ReasonCode.UNKNOWN_TYPE, "the record has no `type`; " + _TYPES_HINT)
        return Refusal(ReasonCode.MISSING_FIELD, f"the record lacks the field `{named['field']}`")
    if problem.startswith("Object contains unknown field") and named:
        return Refusal(
            ReasonCode.UNKNOWN_FIELD,
            f"the record has the field `{named['field']}`, which its type does not define",
        )
    return _field_refusal(field, problem)


def _is_json_number(field: str, problem: str) -> bool:
    return field in _FIGURE_FIELDS and (
        "got `int`" in problem or "got `float`" in problem or problem.startswith("Number")
    )


_TYPES_HINT = "it must be one of " + ", ".join(
    str(record_type.__struct_config__.tag) for record_type in INBOX_RECORD_TYPES
)

# (applies to (field, problem), reason code, detail with {field} and {problem}); first match.
_FIELD_PROBLEMS: tuple[tuple[Callable[[str, str], bool], ReasonCode, str], ...] = (
    (
        lambda field, problem: not field and problem.startswith("Expected `object`"),
        ReasonCode.NOT_AN_OBJECT,
        "the record must be a JSON object ({problem})",
    ),
    (
        lambda field, _: field == "type",
        ReasonCode.UNKNOWN_TYPE,
        "`type` is not known ({problem}); " + _TYPES_HINT,
    ),
    (
        lambda field, _: field == "event_id",
        ReasonCode.INVALID_EVENT_ID,
        f"`event_id` must be a string of 1 to {limits.event_id_chars_max} characters ({{problem}})",
    ),
    (
        lambda field, _: field in _TIMESTAMP_FIELDS,
        ReasonCode.INVALID_TIMESTAMP,
        "`{field}` must be an RFC 3339 timestamp with an offset, such as "
        "2026-11-24T03:12:00Z ({problem})",
    ),
    (
        _is_json_number,
        ReasonCode.NUMBER_NOT_STRING,
        '`{field}` is a JSON number; write it as a string, such as "0.25"',
    ),
    (
        lambda _, problem: "encoded date" in problem,
        ReasonCode.INVALID_FIELD,
        "`{field}` must be a calendar date written YYYY-MM-DD",
    ),
    (
        lambda _, __: True,
        ReasonCode.INVALID_FIELD,
        "`{field}` is not valid: {problem}",
    ),
)


def _field_refusal(field: str, problem: str) -> Refusal:
    for applies, reason_code, detail in _FIELD_PROBLEMS:
        if applies(field, problem):
            return Refusal(reason_code, detail.format(field=field or "record", problem=problem))
    raise InvariantViolation("the last rule applies to every problem")  # pragma: no cover


def _refuse(reason_code: ReasonCode, detail: str) -> NoReturn:
    raise Refusal(reason_code, detail)


_REFERENCE_DESCRIPTIONS = {
    Reference.ASSET: "An asset code the ledger knows: USD, HKD, USDT, BTC, ETH, or a listed "
    "security written VENUE:CODE, such as SEHK:0700.",
    Reference.MARKET: "A perpetual market of the policy, such as BTC-PERP.",
    Reference.SYMBOL: "A spot pair BASE/USD with a known base asset, such as BTC/USD.",
    Reference.INSTRUMENT: "An asset other than USD, or a perpetual market, such as BTC or "
    "BTC-PERP.",
}


def inbox_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of inbox records, for upstream teams."""
    schema: dict[str, Any] = msgspec.json.schema(InboxRecordType)
    for plan in _PLANS.values():
        definition = schema["$defs"][plan.record_type.__name__]
        properties: dict[str, dict[str, Any]] = definition["properties"]
        for name, figure in plan.figures:
            default = properties[name].get("default")
            properties[name] = _figure_schema(figure)
            if default is not None:
                properties[name]["default"] = default
        for name, reference in plan.references:
            properties[name]["description"] = _REFERENCE_DESCRIPTIONS[reference]
        for name in plan.timestamps:
            properties[name]["description"] = (
                "RFC 3339 timestamp with an offset, such as 2026-11-24T03:12:00Z."
            )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ledger.inbox record",
        "description": "One inbox record: a UTF-8 JSON object of at most "
        f"{limits.inbox_record_bytes_max} bytes, tagged by `type`.",
        **schema,
    }


def _figure_schema(figure: Figure) -> dict[str, Any]:
    """A decimal as a string: plain digits, below 10^18, the allowed places when fixed."""
    integer_digits_max = len(str(limits.amount_exclusive_max)) - 1
    fraction = f"[0-9]{{1,{figure.places}}}" if isinstance(figure.places, int) else "[0-9]+"
    sign = "-?" if figure.sign is Sign.ANY else ""
    # Greater than zero: some digit other than 0 (an ECMA-262 lookahead, as JSON Schema has).
    nonzero = "(?=.*[1-9])" if figure.sign is Sign.POSITIVE else ""
    places = (
        f"at most {figure.places} decimal places"
        if isinstance(figure.places, int)
        else f"no more decimal places than {figure.places.value}"
    )
    return {
        "type": "string",
        "pattern": f"^{nonzero}{sign}(0|[1-9][0-9]{{0,{integer_digits_max - 1}}})(\\.{fraction})?$",
        "description": f"A decimal written as a JSON string, {figure.sign.value}, below "
        f"10^18, with {places}; never a JSON number or an exponent.",
    }


class _EventIdOnly(msgspec.Struct, frozen=True):
    event_id: object = None


_decode_event_id_only = msgspec.json.Decoder(_EventIdOnly).decode


def readable_event_id(raw: bytes) -> str | None:
    """The record's `event_id` when it can be read although the record was refused (for
    another field), so that upstream can match the reject to what it sent; None when the
    value is too large, not a JSON object, or its `event_id` is not a string of 1 to
    `event_id_chars_max` characters, nests too deep to read safely, or breaks the
    identifier rule."""
    if (
        len(raw) > limits.inbox_record_bytes_max
        or _nesting_depth(raw) > limits.inbox_json_depth_max
    ):
        return None
    try:
        event_id = _decode_event_id_only(raw).event_id
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if (
        isinstance(event_id, str)
        and 1 <= len(event_id) <= limits.event_id_chars_max
        and identifier_problem(event_id) is None
    ):
        return event_id
    return None
