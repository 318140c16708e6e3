"""The journal's bytes: canonical JSON, sealing, and the chain an auditor verifies."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import cast

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger import journal_events
from ledger.invariants import InvariantViolation
from ledger.journal import (
    GENESIS_HASH,
    NotCanonical,
    canonical_json,
    format_timestamp,
    seal,
    verify_journal,
)

GOLDEN_BODIES: list[dict[str, object]] = [
    {
        "type": "account_opened",
        "recorded_at": "2026-11-24T03:12:00Z",
        "causation_id": "open-1",
        "account_id": "ACC-1",
        "investor_class": "professional",
        "credit_limit": "0",
    },
    {
        "type": "deposit_credited",
        "recorded_at": "2026-11-24T03:12:00.500000Z",
        "causation_id": "dep-1",
        "account_id": "ACC-1",
        "asset": "BTC",
        "amount": "1.25000000",
        "reference": "wire é/\u2028",
    },
    {
        "type": "mark_price_applied",
        "recorded_at": "2026-11-24T03:13:00Z",
        "causation_id": "mark-1",
        "instrument": "BTC",
        "price": "68307.5",
        "accounts": ["ACC-1"],
        "nested": {"z": None, "a": True, "n": 7},
    },
]
# Computed once with json.dumps and hashlib alone (see `_reference_chain`), then frozen:
# a change to any of these is a change to the public contract.
GOLDEN_HASHES = [
    "0d4294547c79f5b7cc72e8797fbf316e980e8efe50d7d38d1c13ae1b0ff26643",
    "61a28ac6cc19ee4c666174f8b3c98c049a5d93c1c5b416c76c1034e70c5ffc45",
    "461648c15ce68bf1c2b6576abc2dc186ae3b393eab522220a5efe5a7851f2c08",
]


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reference_chain(bodies: Sequence[dict[str, object]]) -> list[bytes]:
    """docs/events.md read literally, with the standard library only."""
    records, prev = [], GENESIS_HASH
    for seq, body in enumerate(bodies, start=1):
        record = dict(body, seq=seq, prev_hash=prev)
        prev = hashlib.sha256((prev + _dumps(record)).encode()).hexdigest()
        record["hash"] = prev
        records.append(_dumps(record).encode())
    return records


def _seal_chain(bodies: Sequence[dict[str, object]]) -> list[bytes]:
    records, prev = [], GENESIS_HASH
    for seq, body in enumerate(bodies, start=1):
        sealed = seal(body, seq, prev)
        records.append(sealed.record)
        prev = sealed.hash
    return records


def _docstring_verifier() -> Callable[[list[bytes]], int | None]:
    doc = verify_journal.__doc__
    assert doc is not None
    found = re.search(r"```python\n(.*?)```", doc, re.DOTALL)
    assert found is not None, "verify_journal's docstring lost its standalone example"
    lines = found.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    namespace: dict[str, object] = {}
    exec("\n".join(line[indent:] for line in lines), namespace)  # noqa: S102  # our own docstring
    return cast(Callable[[list[bytes]], int | None], namespace["verify"])


STANDALONE_VERIFY = _docstring_verifier()

# JSON-native values the journal can hold: every character but lone surrogates (which
# UTF-8 cannot carry), integers beyond 64 bits, nesting.
json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
bodies = st.dictionaries(
    st.text().filter(lambda key: key not in {"seq", "prev_hash", "hash"}), json_values
).map(lambda body: {**body, "type": "test_event"})


def test_golden_journal_hashes() -> None:
    records = _seal_chain(GOLDEN_BODIES)
    assert records == _reference_chain(GOLDEN_BODIES)
    assert [json.loads(record)["hash"] for record in records] == GOLDEN_HASHES
    assert records[0].startswith(b'{"account_id":"ACC-1","causation_id":"open-1",')
    report = verify_journal(records)
    assert report.ok
    assert (report.count, report.first_bad_seq, report.reason) == (3, None, None)
    assert report.last_hash == GOLDEN_HASHES[-1]
    assert STANDALONE_VERIFY(records) is None


@given(json_values)
def test_canonical_json_is_json_dumps(value: object) -> None:
    assert canonical_json(value) == _dumps(value).encode()


@given(st.text())
def test_canonical_json_escapes_strings_like_json_dumps(text: str) -> None:
    value = {text: text, "controls": '\x00\x1f\x7f\u2028\u2029/\\"\ufeff'}
    assert canonical_json(value) == _dumps(value).encode()


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        {"amount": 0.1},
        {"nested": [{"deep": [1, 2.0]}]},
        {"amount": Decimal("1.5")},
        {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        {1: "non-string key"},
        {"set": {1, 2}},
        b"bytes",
    ],
)
def test_canonical_json_refuses_values_outside_the_journal(value: object) -> None:
    with pytest.raises(NotCanonical):
        canonical_json(value)


def test_seal_refuses_what_sealing_owns_and_floats() -> None:
    with pytest.raises(InvariantViolation):
        seal({"type": "x", "seq": 3}, 1, GENESIS_HASH)
    with pytest.raises(InvariantViolation):
        seal({"type": "x"}, 0, GENESIS_HASH)
    with pytest.raises(InvariantViolation):
        seal({"type": "x"}, 1, "ABC")
    with pytest.raises(NotCanonical):
        seal({"type": "x", "amount": 1.5}, 1, GENESIS_HASH)


def test_a_journal_event_struct_seals_through_to_builtins() -> None:
    event = journal_events.DepositCredited(
        asset="BTC",
        amount=Decimal("1.25000000"),
        recorded_at="2026-11-24T03:12:00Z",
        causation_id="dep-1",
        account_id="ACC-1",
    )
    sealed = seal(journal_events.journal_body(event), 1, GENESIS_HASH)
    decoded = msgspec.json.decode(sealed.record, type=journal_events.DepositCredited)
    assert msgspec.structs.replace(decoded, seq=0, prev_hash="", hash="") == event
    assert (decoded.seq, decoded.prev_hash, decoded.hash) == (1, GENESIS_HASH, sealed.hash)
    assert verify_journal([sealed.record]).ok


@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | st.integers(min_value=0, max_value=30).map(lambda places: Decimal(0).scaleb(-places)),
    reference=st.sampled_from([None, "1E-8", "-0.00", "E+", 'ref "hash":"x" é', "0E-8"]),
    seq=st.integers(min_value=1, max_value=10**12),
)
@example(amount=Decimal("0E-8"), reference=None, seq=1)  # a zero figure with an exponent
@example(amount=Decimal("0E-8"), reference="0E-8", seq=1)  # and a text that reads the same
def test_sealing_a_struct_in_one_encode_writes_the_bytes_of_its_body(
    amount: Decimal, reference: str | None, seq: int
) -> None:
    """Exponents, negative zero and texts that look like them: the one-encode seal and the
    body's seal write the same record (the former falls back to the latter when it must),
    and the event it hands the book is the one a replay decodes."""
    event = journal_events.DepositCredited(
        asset="BTC",
        amount=amount,
        reference=reference,
        recorded_at="2026-11-24T03:12:00Z",
        causation_id="dep-1",
        account_id="ACC-1",
    )
    prev_hash = hashlib.sha256(str(seq).encode()).hexdigest()
    sealed = journal_events.seal_event(event, seq, prev_hash)
    assert sealed.record == seal(journal_events.journal_body(event), seq, prev_hash).record
    replayed = journal_events.decode_journal_record(sealed.record)
    assert isinstance(sealed.event, journal_events.DepositCredited)
    assert isinstance(replayed, journal_events.DepositCredited)
    assert sealed.event == replayed
    assert str(sealed.event.amount) == str(replayed.amount), "the same exponent too"


@given(st.lists(bodies, min_size=1, max_size=5))
def test_seal_agrees_with_the_contract_read_literally(chain: list[dict[str, object]]) -> None:
    assert _seal_chain(chain) == _reference_chain(chain)


TAMPER_CHAIN = _seal_chain(
    [
        {
            "type": "deposit_credited",
            "recorded_at": format_timestamp(datetime(2026, 11, 24, 3, 12, n, tzinfo=UTC)),
            "causation_id": f"dep-{n}",
            "account_id": f"ACC-{n % 3}",
            "amount": f"{n}.5",
            "note": "ctl \x01 é \u2028",
            "legs": [{"asset": "BTC", "n": n}],
        }
        for n in range(20)
    ]
)


@given(
    index=st.integers(0, len(TAMPER_CHAIN) - 1),
    position=st.integers(0, 10_000),
    mask=st.integers(1, 255),
)
def test_any_flipped_byte_is_named_at_its_seq(index: int, position: int, mask: int) -> None:
    tampered = list(TAMPER_CHAIN)
    raw = bytearray(tampered[index])
    raw[position % len(raw)] ^= mask
    tampered[index] = bytes(raw)
    report = verify_journal(tampered)
    assert not report.ok
    assert report.first_bad_seq == index + 1
    assert report.count == index
    assert report.last_hash == (
        json.loads(TAMPER_CHAIN[index - 1])["hash"] if index else GENESIS_HASH
    )
    assert STANDALONE_VERIFY(tampered) == index + 1


def test_a_changed_seq_is_named_at_the_expected_position() -> None:
    record = json.loads(TAMPER_CHAIN[4])
    record["seq"] = 9
    tampered = [*TAMPER_CHAIN[:4], _dumps(record).encode(), *TAMPER_CHAIN[5:]]
    report = verify_journal(tampered)
    assert (report.first_bad_seq, report.reason) == (5, "seq 9 where 5 was expected")
    assert STANDALONE_VERIFY(tampered) == 5


@pytest.mark.parametrize(
    ("records", "first_bad_seq"),
    [
        (TAMPER_CHAIN[1:], 1),  # the genesis record is missing
        ([*TAMPER_CHAIN[:3], *TAMPER_CHAIN[4:]], 4),  # a gap
        ([*TAMPER_CHAIN[:3], TAMPER_CHAIN[2], *TAMPER_CHAIN[3:]], 4),  # a repeat
        ([TAMPER_CHAIN[0], TAMPER_CHAIN[2], TAMPER_CHAIN[1]], 2),  # reordered
        ([*TAMPER_CHAIN[:2], TAMPER_CHAIN[2].replace(b":", b": ", 1)], 3),  # not canonical
        ([*TAMPER_CHAIN[:2], b"[1,2]"], 3),
        ([*TAMPER_CHAIN[:2], b"\xff"], 3),
    ],
)
def test_broken_chains(records: list[bytes], first_bad_seq: int) -> None:
    report = verify_journal(records)
    assert (report.ok, report.first_bad_seq) == (False, first_bad_seq)
    assert STANDALONE_VERIFY(records) == first_bad_seq


def test_verify_resumes_from_a_known_position() -> None:
    prefix = verify_journal(TAMPER_CHAIN[:7])
    rest = verify_journal(TAMPER_CHAIN[7:], start_seq=8, start_prev_hash=prefix.last_hash)
    assert rest.ok
    assert rest.count == 13
    assert rest.last_hash == verify_journal(TAMPER_CHAIN).last_hash
    assert verify_journal([]) == verify_journal([], start_seq=1)
    assert verify_journal([]).last_hash == GENESIS_HASH
    assert not verify_journal(TAMPER_CHAIN[7:], start_seq=8).ok


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 24, 3, 12, tzinfo=UTC), "2026-11-24T03:12:00Z"),
        (datetime(2026, 11, 24, 3, 12, 0, 5, tzinfo=UTC), "2026-11-24T03:12:00.000005Z"),
        (
            datetime(2026, 11, 24, 11, 12, 30, 250000, tzinfo=timezone(timedelta(hours=8))),
            "2026-11-24T03:12:30.250000Z",
        ),
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02T03:04:05Z"),
    ],
)
def test_format_timestamp(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_timestamp_spells_every_utc_moment(moment: datetime) -> None:
    m = moment
    fraction = f".{m.microsecond:06d}" if m.microsecond else ""
    assert format_timestamp(m) == (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f"{fraction}Z"
    )


def test_format_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2026, 11, 24, 3, 12))  # naive: the point of the test
