"""The inbox contract: what decodes, what is refused and why, and the published schema."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import inbox, limits
from ledger.inbox import (
    AccountOpened,
    CreditLimitSet,
    DayClosed,
    Deposit,
    FundingRate,
    InboxRecordType,
    LoanDrawRequested,
    LoanRepayment,
    MarkPrice,
    PerpTrade,
    SpotTrade,
    WithdrawalRequested,
    decode_digested,
    decode_inbox,
    inbox_json_schema,
)
from ledger.money import format_decimal
from ledger.policy import Policy, load_policy
from ledger.rejections import ReasonCode, Refusal
from tests.inbox_reference import inbox_digest

GOLDEN_SCHEMA = Path(__file__).resolve().parents[1] / "golden" / "inbox.schema.json"
POLICY = load_policy(None)
AT = "2026-11-24T03:12:00Z"
MOMENT = datetime(2026, 11, 24, 3, 12, tzinfo=UTC)


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def record(record_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": record_type, "event_id": "e-1", "occurred_at": AT, **fields}


DEPOSIT = record("deposit", account_id="C000001", asset="BTC", amount="0.25")
PERP = record(
    "perp_trade",
    account_id="C000001",
    trade_id="T-1",
    market="BTC-PERP",
    side="buy",
    quantity="0.5",
    price="68307.5",
    fee="34.15",
)
SPOT = record(
    "spot_trade",
    account_id="C000001",
    trade_id="T-2",
    symbol="ETH/USD",
    side="sell",
    quantity="1.25",
    price="3500.1",
    fee="4.38",
)

VALID: list[tuple[dict[str, Any], InboxRecordType]] = [
    (
        record("account_opened", account_id="C000001", investor_class="professional"),
        AccountOpened(
            event_id="e-1",
            occurred_at=MOMENT,
            account_id="C000001",
            investor_class="professional",
            credit_limit=Decimal(0),
        ),
    ),
    (
        record("credit_limit_set", account_id="C000001", credit_limit="250000.00"),
        CreditLimitSet(
            event_id="e-1",
            occurred_at=MOMENT,
            account_id="C000001",
            credit_limit=Decimal("250000.00"),
        ),
    ),
    (
        {**DEPOSIT, "reference": "wire 991", "source": "custody"},
        Deposit(
            event_id="e-1",
            occurred_at=MOMENT,
            source="custody",
            account_id="C000001",
            asset="BTC",
            amount=Decimal("0.25"),
            reference="wire 991",
        ),
    ),
    (
        record("withdrawal_requested", account_id="C000001", asset="SEHK:0700", amount="300"),
        WithdrawalRequested(
            event_id="e-1",
            occurred_at=MOMENT,
            account_id="C000001",
            asset="SEHK:0700",
            amount=Decimal(300),
        ),
    ),
    (
        record("loan_draw_requested", account_id="C000001", amount="10000.5"),
        LoanDrawRequested(
            event_id="e-1", occurred_at=MOMENT, account_id="C000001", amount=Decimal("10000.5")
        ),
    ),
    (
        record("loan_repayment", account_id="C000001", amount="0.01"),
        LoanRepayment(
            event_id="e-1", occurred_at=MOMENT, account_id="C000001", amount=Decimal("0.01")
        ),
    ),
    (
        SPOT,
        SpotTrade(
            event_id="e-1",
            occurred_at=MOMENT,
            account_id="C000001",
            trade_id="T-2",
            symbol="ETH/USD",
            side="sell",
            quantity=Decimal("1.25"),
            price=Decimal("3500.1"),
            fee=Decimal("4.38"),
        ),
    ),
    (
        {**PERP, "liquidation_id": "L-7"},
        PerpTrade(
            event_id="e-1",
            occurred_at=MOMENT,
            account_id="C000001",
            trade_id="T-1",
            market="BTC-PERP",
            side="buy",
            quantity=Decimal("0.5"),
            price=Decimal("68307.5"),
            fee=Decimal("34.15"),
            liquidation_id="L-7",
        ),
    ),
    (
        record("mark_price", instrument="ETH-PERP", price="3499.987654321"),
        MarkPrice(
            event_id="e-1",
            occurred_at=MOMENT,
            instrument="ETH-PERP",
            price=Decimal("3499.987654321"),
        ),
    ),
    (
        record("funding_rate", market="BTC-PERP", rate="-0.000125", funding_time=AT),
        FundingRate(
            event_id="e-1",
            occurred_at=MOMENT,
            market="BTC-PERP",
            rate=Decimal("-0.000125"),
            funding_time=MOMENT,
        ),
    ),
    (
        record("day_closed", business_date="2026-11-23"),
        DayClosed(event_id="e-1", occurred_at=MOMENT, business_date=date(2026, 11, 23)),
    ),
]


@pytest.mark.parametrize(("wire", "expected"), VALID, ids=lambda value: str(value)[:24])
def test_every_type_decodes_to_decimals_and_utc(
    wire: dict[str, Any], expected: InboxRecordType
) -> None:
    assert decode_inbox(encode(wire), POLICY) == expected


def test_a_timestamp_with_an_offset_is_normalised_to_utc() -> None:
    decoded = decode_inbox(encode({**DEPOSIT, "occurred_at": "2026-11-24T11:12:00+08:00"}), POLICY)
    assert decoded.occurred_at == MOMENT
    assert decoded.occurred_at.tzinfo is UTC


def refusal_of(raw: bytes, policy: Policy = POLICY) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decode_inbox(raw, policy)
    assert caught.value.detail, "every refusal says what to do"
    return caught.value


HOSTILE: list[tuple[str, bytes, ReasonCode]] = [
    ("json number amount", encode({**DEPOSIT, "amount": 0.25}), ReasonCode.NUMBER_NOT_STRING),
    ("json integer price", encode({**PERP, "price": 68000}), ReasonCode.NUMBER_NOT_STRING),
    (
        "json number out of range",
        encode(DEPOSIT).replace(b'"0.25"', b"1e999"),
        ReasonCode.NUMBER_NOT_STRING,
    ),
    ("exponent", encode({**DEPOSIT, "amount": "1e5"}), ReasonCode.INVALID_DECIMAL),
    ("NaN", encode({**DEPOSIT, "amount": "NaN"}), ReasonCode.INVALID_DECIMAL),
    ("Infinity", encode({**PERP, "price": "Infinity"}), ReasonCode.INVALID_DECIMAL),
    ("leading plus", encode({**DEPOSIT, "amount": "+1"}), ReasonCode.INVALID_DECIMAL),
    ("spaces", encode({**DEPOSIT, "amount": " 1"}), ReasonCode.INVALID_DECIMAL),
    ("leading zeros", encode({**DEPOSIT, "amount": "01"}), ReasonCode.INVALID_DECIMAL),
    ("bare point", encode({**DEPOSIT, "amount": "1."}), ReasonCode.INVALID_DECIMAL),
    ("empty figure", encode({**DEPOSIT, "amount": ""}), ReasonCode.INVALID_DECIMAL),
    ("negative", encode({**DEPOSIT, "amount": "-1"}), ReasonCode.NOT_POSITIVE),
    ("zero amount", encode({**DEPOSIT, "amount": "0"}), ReasonCode.NOT_POSITIVE),
    ("zero quantity", encode({**PERP, "quantity": "0.0"}), ReasonCode.NOT_POSITIVE),
    ("negative fee", encode({**PERP, "fee": "-0.01"}), ReasonCode.NOT_POSITIVE),
    (
        "negative credit limit",
        encode(record("credit_limit_set", account_id="C1", credit_limit="-5")),
        ReasonCode.NOT_POSITIVE,
    ),
    (
        "10^18",
        encode({**DEPOSIT, "asset": "USD", "amount": "1000000000000000000"}),
        ReasonCode.AMOUNT_TOO_LARGE,
    ),
    (
        "-10^18 rate",
        encode(record("funding_rate", market="BTC-PERP", rate="-1" + "0" * 18, funding_time=AT)),
        ReasonCode.AMOUNT_TOO_LARGE,
    ),
    (
        "cents of cents",
        encode(record("loan_draw_requested", account_id="C1", amount="0.001")),
        ReasonCode.TOO_MANY_DECIMALS,
    ),
    ("9-place BTC", encode({**DEPOSIT, "amount": "0.123456789"}), ReasonCode.TOO_MANY_DECIMALS),
    (
        "fractional share",
        encode({**DEPOSIT, "asset": "SEHK:0700", "amount": "1.5"}),
        ReasonCode.TOO_MANY_DECIMALS,
    ),
    (
        "9-place perp size",
        encode({**PERP, "quantity": "0.000000001"}),
        ReasonCode.TOO_MANY_DECIMALS,
    ),
    ("spot fee in mills", encode({**SPOT, "fee": "4.385"}), ReasonCode.TOO_MANY_DECIMALS),
    ("19-place price", encode({**PERP, "price": "1." + "1" * 19}), ReasonCode.TOO_MANY_DECIMALS),
    ("unknown field", encode({**DEPOSIT, "memo": "hi"}), ReasonCode.UNKNOWN_FIELD),
    ("unknown type", encode({**DEPOSIT, "type": "airdrop"}), ReasonCode.UNKNOWN_TYPE),
    (
        "missing type",
        encode({k: v for k, v in DEPOSIT.items() if k != "type"}),
        ReasonCode.UNKNOWN_TYPE,
    ),
    ("numeric type", encode({**DEPOSIT, "type": 3}), ReasonCode.UNKNOWN_TYPE),
    (
        "missing field",
        encode({k: v for k, v in DEPOSIT.items() if k != "amount"}),
        ReasonCode.MISSING_FIELD,
    ),
    (
        "naive timestamp",
        encode({**DEPOSIT, "occurred_at": "2026-11-24T03:12:00"}),
        ReasonCode.INVALID_TIMESTAMP,
    ),
    (
        "date for a timestamp",
        encode({**DEPOSIT, "occurred_at": "2026-11-24"}),
        ReasonCode.INVALID_TIMESTAMP,
    ),
    (
        "naive funding time",
        encode(
            record("funding_rate", market="BTC-PERP", rate="0", funding_time="2026-11-24 03:12")
        ),
        ReasonCode.INVALID_TIMESTAMP,
    ),
    (
        "non UTF-8",
        encode(DEPOSIT).replace(b"C000001", b"C\xff\xfe0001"),
        ReasonCode.INVALID_ENCODING,
    ),
    ("top-level array", b"[" + encode(DEPOSIT) + b"]", ReasonCode.NOT_AN_OBJECT),
    ("top-level string", b'"deposit"', ReasonCode.NOT_AN_OBJECT),
    ("broken JSON", encode(DEPOSIT)[:-1], ReasonCode.MALFORMED_JSON),
    ("trailing garbage", encode(DEPOSIT) + b"}", ReasonCode.MALFORMED_JSON),
    ("empty", b"", ReasonCode.MALFORMED_JSON),
    ("200-char event_id", encode({**DEPOSIT, "event_id": "e" * 200}), ReasonCode.INVALID_EVENT_ID),
    ("empty event_id", encode({**DEPOSIT, "event_id": ""}), ReasonCode.INVALID_EVENT_ID),
    ("numeric event_id", encode({**DEPOSIT, "event_id": 7}), ReasonCode.INVALID_EVENT_ID),
    (
        "20 kB record",
        encode({**DEPOSIT, "reference": "x" * 20_000}),
        ReasonCode.RECORD_TOO_LARGE,
    ),
    ("unknown asset", encode({**DEPOSIT, "asset": "DOGE"}), ReasonCode.UNKNOWN_ASSET),
    ("unknown market", encode({**PERP, "market": "SOL-PERP"}), ReasonCode.UNKNOWN_MARKET),
    (
        "funding of unknown market",
        encode(record("funding_rate", market="BTC", rate="0", funding_time=AT)),
        ReasonCode.UNKNOWN_MARKET,
    ),
    (
        "mark of unknown market",
        encode(record("mark_price", instrument="SOL-PERP", price="1")),
        ReasonCode.UNKNOWN_MARKET,
    ),
    (
        "mark of unknown asset",
        encode(record("mark_price", instrument="DOGE", price="1")),
        ReasonCode.UNKNOWN_ASSET,
    ),
    (
        "mark of USD",
        encode(record("mark_price", instrument="USD", price="1")),
        ReasonCode.INVALID_FIELD,
    ),
    ("symbol without quote", encode({**SPOT, "symbol": "ETH"}), ReasonCode.INVALID_SYMBOL),
    ("symbol against HKD", encode({**SPOT, "symbol": "ETH/HKD"}), ReasonCode.INVALID_SYMBOL),
    ("symbol of unknown base", encode({**SPOT, "symbol": "DOGE/USD"}), ReasonCode.INVALID_SYMBOL),
    ("symbol USD/USD", encode({**SPOT, "symbol": "USD/USD"}), ReasonCode.INVALID_SYMBOL),
    ("bad side", encode({**PERP, "side": "long"}), ReasonCode.INVALID_FIELD),
    (
        "bad investor class",
        encode(record("account_opened", account_id="C1", investor_class="vip")),
        ReasonCode.INVALID_FIELD,
    ),
    (
        "bad business date",
        encode(record("day_closed", business_date="2026-11-24T00:00:00Z")),
        ReasonCode.INVALID_FIELD,
    ),
    ("empty account_id", encode({**DEPOSIT, "account_id": ""}), ReasonCode.INVALID_FIELD),
    ("null amount", encode({**DEPOSIT, "amount": None}), ReasonCode.INVALID_FIELD),
]


@pytest.mark.parametrize(
    ("raw", "reason_code"),
    [(raw, code) for _, raw, code in HOSTILE],
    ids=[name for name, _, _ in HOSTILE],
)
def test_hostile_records_are_refused_with_their_reason(raw: bytes, reason_code: ReasonCode) -> None:
    assert refusal_of(raw).reason_code == reason_code


def test_the_detail_names_the_field_and_what_to_write() -> None:
    refusal = refusal_of(encode({**DEPOSIT, "amount": 0.25}))
    assert "`amount`" in refusal.detail
    assert "string" in refusal.detail
    refusal = refusal_of(encode({**DEPOSIT, "amount": "0.123456789"}))
    assert "9 decimal places" in refusal.detail
    assert "at most 8" in refusal.detail


def test_a_record_of_exactly_the_size_limit_is_read() -> None:
    base = encode({**DEPOSIT, "reference": ""})
    padded = encode({**DEPOSIT, "reference": "x" * (limits.inbox_record_bytes_max - len(base))})
    assert len(padded) == limits.inbox_record_bytes_max
    assert isinstance(decode_inbox(padded, POLICY), Deposit)


def test_zero_is_allowed_where_the_contract_allows_it() -> None:
    trade = decode_inbox(encode({**PERP, "fee": "0"}), POLICY)
    assert isinstance(trade, PerpTrade)
    assert trade.fee == 0
    opened = decode_inbox(
        encode(
            record("account_opened", account_id="C1", investor_class="retail", credit_limit="0")
        ),
        POLICY,
    )
    assert isinstance(opened, AccountOpened)
    assert opened.credit_limit == 0


def test_equal_content_has_equal_digest() -> None:
    first = decode_digested(encode(DEPOSIT), POLICY).digest
    same = decode_digested(
        encode({**DEPOSIT, "amount": "0.250", "occurred_at": "2026-11-24T11:12:00+08:00"}), POLICY
    ).digest
    other = decode_digested(encode({**DEPOSIT, "amount": "0.26"}), POLICY).digest
    assert first == same
    assert first != other
    assert len(first) == 64


plain_figures = st.builds(
    lambda negative, whole, fraction: (
        f"{'-' if negative else ''}{whole}" + (f".{fraction}" if fraction is not None else "")
    ),
    st.booleans(),
    st.integers(min_value=0, max_value=10**18 - 1),
    st.none() | st.text("0123456789", min_size=1, max_size=18),
)


@given(plain_figures)
def test_a_figures_normal_text_is_that_of_its_normalized_value(text: str) -> None:
    """Trailing zeros trimmed from the text are the normalized value's fixed-point text,
    past the default context's 28 digits too (there `normalize` rounds)."""
    value = Decimal(text)
    assert inbox._normal_text(text, value) == format_decimal(value.normalize())


@given(
    price=plain_figures.filter(lambda text: not text.startswith("-") and Decimal(text) > 0),
    rate=plain_figures,
    moment=st.sampled_from(["2026-11-24T03:12:00Z", "2026-11-24T11:12:00.500+08:00"]),
)
def test_the_decodes_digest_is_the_digest_of_its_record(price: str, rate: str, moment: str) -> None:
    for fields in (
        record("mark_price", instrument="BTC", price=price, occurred_at=moment),
        record("funding_rate", market="BTC-PERP", rate=rate, funding_time=moment),
        {**DEPOSIT, "amount": price.partition(".")[0] + ".25000"},
        record("account_opened", account_id="C1", investor_class="retail"),  # a default figure
    ):
        decoded = decode_digested(encode(fields), POLICY)
        assert decoded.digest == inbox_digest(decoded.record), fields


def test_the_digest_tells_types_apart() -> None:
    draw = decode_digested(
        encode(record("loan_draw_requested", account_id="C1", amount="5")), POLICY
    )
    repay = decode_digested(encode(record("loan_repayment", account_id="C1", amount="5")), POLICY)
    assert draw.digest != repay.digest


@st.composite
def decimal_texts(draw: st.DrawFn, places_max: int) -> str:
    integer = draw(st.integers(min_value=0, max_value=limits.amount_exclusive_max - 1))
    places = draw(st.integers(min_value=0, max_value=places_max))
    fraction = draw(st.integers(min_value=0, max_value=10**places - 1)) if places else 0
    text = str(integer) + (f".{fraction:0{places}d}" if places else "")
    return text if Decimal(text) > 0 else "0.00000001"


@given(decimal_texts(places_max=8))
def test_any_btc_amount_in_scale_round_trips_exactly(text: str) -> None:
    decoded = decode_inbox(encode({**DEPOSIT, "amount": text}), POLICY)
    assert isinstance(decoded, Deposit)
    assert decoded.amount == Decimal(text)
    assert str(decoded.amount) == text or format(decoded.amount, "f") == text


@given(decimal_texts(places_max=18))
def test_any_price_in_scale_round_trips_exactly(text: str) -> None:
    decoded = decode_inbox(encode({**PERP, "price": text}), POLICY)
    assert isinstance(decoded, PerpTrade)
    assert format(decoded.price, "f") == text


def reason_or_none(raw: bytes) -> ReasonCode | None:
    """The reason code of the refusal, or None when the bytes decode: nothing else escapes."""
    try:
        decode_inbox(raw, POLICY)
    except Refusal as refusal:
        return refusal.reason_code
    return None


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_are_refused_never_crash(raw: bytes) -> None:
    assert reason_or_none(raw) in {None, *ReasonCode}


def mutations() -> st.SearchStrategy[bytes]:
    """Valid records with one byte changed, inserted or dropped: near-misses, not noise."""
    valid = [encode(wire) for wire, _ in VALID]

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        raw = bytearray(draw(st.sampled_from(valid)))
        position = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        byte = draw(st.integers(min_value=0, max_value=255))
        action = draw(st.sampled_from(["replace", "insert", "drop"]))
        if action == "replace":
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        else:
            del raw[position]
        return bytes(raw)

    return mutate()


@settings(max_examples=1000)
@given(mutations())
def test_mutated_records_decode_or_are_refused(raw: bytes) -> None:
    assert reason_or_none(raw) in {None, *ReasonCode}


def test_the_json_schema_matches_the_golden_file() -> None:
    text = json.dumps(inbox_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_SCHEMA.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_SCHEMA.write_text(text, encoding="utf-8")
    assert GOLDEN_SCHEMA.read_text(encoding="utf-8") == text, (
        "the inbox contract changed: review the diff, then run UPDATE_GOLDEN=1 pytest"
    )


def test_the_schema_writes_figures_as_strings_with_a_pattern() -> None:
    perp = inbox_json_schema()["$defs"]["PerpTrade"]["properties"]
    assert perp["quantity"]["type"] == "string"
    # Greater than zero: the lookahead asks for a digit other than 0.
    assert perp["quantity"]["pattern"] == r"^(?=.*[1-9])(0|[1-9][0-9]{0,17})(\.[0-9]{1,8})?$"
    funding = inbox_json_schema()["$defs"]["FundingRate"]["properties"]
    assert funding["rate"]["pattern"].startswith("^-?")
