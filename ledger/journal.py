"""The journal's bytes: canonical JSON, the hash chain (`seal`) and `verify_journal`.

docs/events.md is the contract: a record's `hash` is the lowercase hex SHA-256 of its
`prev_hash` (ASCII) followed by the canonical JSON of the record without `hash`, and
canonical JSON is what `json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` writes. `canonical_json` writes the same bytes with msgspec (a
property test holds the two together) and refuses anything outside the JSON-native value
space the journal uses: no floats, no Decimal, no datetime, no non-string keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import msgspec

from ledger.invariants import InvariantViolation, require

GENESIS_HASH = "0" * 64

# Fields that sealing owns: a body handed to `seal` must not carry them.
SEALED_FIELDS = frozenset({"seq", "prev_hash", "hash"})

_HASH_TEXT = re.compile(r"^[0-9a-f]{64}$")
# Deep enough for any record the ledger writes; a deeper value is a bug, not data.
_canonical_depth_max = 32

_encode_sorted = msgspec.json.Encoder(order="sorted").encode


# The per-record value types are frozen msgspec Structs, not frozen dataclasses: a frozen
# dataclass sets each field through object.__setattr__ (about 0.6 us to make one against
# 0.1 us), and the write path makes one of each per journal event.
class JournalEntry(msgspec.Struct, frozen=True):
    """One journal record as stored: its `seq`, its event type, its canonical JSON."""

    seq: int
    type: str
    record: bytes


class NotCanonical(ValueError):
    """A value outside the journal's JSON value space (a float, a Decimal, a non-str key)."""


def _check_value(value: object, depth: int) -> None:
    """Refuse what `json.dumps` and msgspec would write differently, or that has no place
    in the journal: floats (money never touches float), and any non-JSON-native type."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if depth >= _canonical_depth_max:
        raise NotCanonical("value nested deeper than the journal allows")
    if kind is dict:
        _check_mapping(value, depth + 1)  # type: ignore[arg-type]  # kind is dict
    elif kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]  # kind is list or tuple
            _check_value(item, depth + 1)
    elif isinstance(value, float):
        raise NotCanonical(f"float {value!r} in a journal value: write decimals as strings")
    elif isinstance(value, str | int):  # StrEnum, IntEnum: both encoders write the value
        return
    else:
        raise NotCanonical(f"{kind.__name__} is not a JSON-native journal value")


def _check_mapping(mapping: Mapping[str, object], depth: int) -> None:
    for key, value in mapping.items():
        if type(key) is not str:
            raise NotCanonical(f"key {key!r} is not a string")
        kind = type(value)
        if kind is str or kind is int or value is None or kind is bool:
            continue
        _check_value(value, depth)


def canonical_json(obj: object) -> bytes:
    """The canonical JSON of `obj`, byte-identical to docs/events.md's `json.dumps` form.

    Raises NotCanonical for floats and any value outside dict/list/str/int/bool/None.
    """
    if type(obj) is dict:
        _check_mapping(obj, 0)
    else:
        _check_value(obj, 0)
    return _encode_sorted(obj)


_encode_moment = msgspec.json.Encoder().encode  # a JSON string: the text between its quotes


def format_timestamp(moment: datetime) -> str:
    """UTC RFC 3339 with `Z`: `2026-11-24T03:12:00Z`, `.ffffff` only when non-zero."""
    if moment.tzinfo is not UTC:  # the inbox's moments are UTC already: once per input
        if moment.tzinfo is None or moment.utcoffset() is None:
            msg = f"naive datetime {moment!r}: journal timestamps need a time zone"
            raise ValueError(msg)
        moment = moment.astimezone(UTC)
    # msgspec writes a UTC moment as RFC 3339 with `Z` and `.ffffff` exactly when it is
    # non-zero, as `isoformat()` does with `+00:00`; in a quarter of the time (once per input).
    return _encode_moment(moment)[1:-1].decode("ascii")


def chain_hash(prev_hash: str, *unsealed_record: bytes) -> str:
    """docs/events.md: sha256 hex of `prev_hash` (ASCII) then the record's JSON without `hash`
    (given whole, or in pieces that join to it: hashed without joining them)."""
    hasher = hashlib.sha256(prev_hash.encode("ascii"))
    for piece in unsealed_record:
        hasher.update(piece)
    return hasher.hexdigest()


class SealedRecord(msgspec.Struct, frozen=True):
    """A journal record as stored and published: canonical JSON with `hash`, and the hash."""

    record: bytes
    hash: str


# The hash's place while a record is encoded for `seal_draft`: not hex, so no hash equals it.
HASH_STAND_IN = "~" * 64
_HASH_STAND_IN_FIELD = b',"hash":"' + HASH_STAND_IN.encode("ascii") + b'"'
_HASH_VALUE_OFFSET = len(b',"hash":"')


def _check_link(seq: int, prev_hash: str) -> None:
    if type(seq) is not int or seq < 1:
        raise InvariantViolation(f"journal seq must be a positive int, got {seq!r}")
    if _HASH_TEXT.match(prev_hash) is None:
        raise InvariantViolation(f"prev_hash {prev_hash!r} is not sha256 hex")


def seal_draft(draft: bytes, seq: int, prev_hash: str) -> SealedRecord | None:
    """Seal a record already written as canonical JSON with its `seq`, its `prev_hash` and
    `HASH_STAND_IN` as its `hash`: the bytes without the `hash` field are what the hash
    covers, and the hash takes the stand-in's place, so one encode gives both. None when
    the stand-in is not there exactly once (the caller seals the long way).

    The field has a comma before it: `causation_id`, which every record has, sorts first."""
    _check_link(seq, prev_hash)
    at = draft.find(_HASH_STAND_IN_FIELD)
    end = at + len(_HASH_STAND_IN_FIELD)
    if at < 0 or draft.find(_HASH_STAND_IN_FIELD, end) >= 0:
        return None
    digest = chain_hash(prev_hash, draft[:at], draft[end:])
    value_at = at + _HASH_VALUE_OFFSET
    record = draft[:value_at] + digest.encode("ascii") + draft[value_at + len(HASH_STAND_IN) :]
    return SealedRecord(record=record, hash=digest)


def seal(body: Mapping[str, object], seq: int, prev_hash: str) -> SealedRecord:
    """Add `seq`, `prev_hash` and `hash` to `body` and write the record's canonical JSON.

    `body` is every other field of the record (JSON-native values, decimals as strings);
    for a `journal_events` Struct, `msgspec.to_builtins(event)` is its body (the Struct
    omits its unset `seq`, `prev_hash` and `hash`).
    """
    _check_link(seq, prev_hash)
    require(SEALED_FIELDS.isdisjoint(body), "a body to seal must not carry seq/prev_hash/hash")
    record: dict[str, object] = dict(body)
    _check_mapping(record, 0)
    record["seq"] = seq
    record["prev_hash"] = prev_hash
    digest = chain_hash(prev_hash, _encode_sorted(record))
    record["hash"] = digest
    return SealedRecord(record=_encode_sorted(record), hash=digest)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of `verify_journal`: `count` records verified before any bad one."""

    ok: bool
    count: int
    first_bad_seq: int | None
    reason: str | None
    last_hash: str


def _parse_record(raw: bytes) -> dict[str, object] | str:
    """The record as a JSON object, or why it is not one."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"unparsable record: {error}"
    if type(record) is not dict:
        return "record is not a JSON object"
    return cast(dict[str, object], record)


def _link_fault(record: dict[str, object], seq: int, prev_hash: str) -> str | None:
    found_seq = record.get("seq")
    if type(found_seq) is not int or found_seq != seq:
        return f"seq {found_seq!r} where {seq} was expected"
    if record.get("prev_hash") != prev_hash:
        return f"prev_hash {record.get('prev_hash')!r} does not link to the previous record"
    if type(record.get("hash")) is not str:
        return "hash missing or not a string"
    return None


def _hash_fault(record: dict[str, object], raw: bytes, prev_hash: str) -> str | None:
    unsealed = {key: value for key, value in record.items() if key != "hash"}
    try:
        if chain_hash(prev_hash, canonical_json(unsealed)) != record["hash"]:
            return "hash does not recompute"
        if canonical_json(record) != raw:
            return "record is not in canonical JSON form"
    except NotCanonical as error:
        return f"record holds a value outside the journal's: {error}"
    return None


def _record_fault(raw: bytes, seq: int, prev_hash: str) -> tuple[str | None, str]:
    """Why `raw` is not the journal record at `seq` after `prev_hash` (None: it is), and
    its hash."""
    record = _parse_record(raw)
    if isinstance(record, str):
        return record, ""
    fault = _link_fault(record, seq, prev_hash) or _hash_fault(record, raw, prev_hash)
    return fault, cast(str, record["hash"]) if fault is None else ""


def verify_journal(
    records: Iterable[bytes], *, start_seq: int = 1, start_prev_hash: str = GENESIS_HASH
) -> VerifyReport:
    """Check a run of journal records: each parses, is canonical JSON, has the next `seq`,
    links to the previous `hash`, and its `hash` recomputes. Names the first bad seq (the
    position where it was expected, whatever the record says).

    Anyone can do the same with a few lines and no part of the ledger (a test runs this
    example against `verify_journal` on the same data):

    ```python
    import hashlib
    import json


    def verify(raw_records):  # -> the first bad seq, or None when the chain verifies
        def dumps(value):
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

        prev = "0" * 64
        for seq, raw in enumerate(raw_records, start=1):
            try:
                record = json.loads(raw.decode("utf-8"))
                unsealed = {k: v for k, v in record.items() if k != "hash"}
                digest = hashlib.sha256((prev + dumps(unsealed)).encode()).hexdigest()
                good = record["seq"] == seq and record["prev_hash"] == prev
                good = good and record["hash"] == digest and dumps(record).encode() == raw
            except (ValueError, KeyError, TypeError, AttributeError):
                good = False
            if not good:
                return seq
            prev = record["hash"]
        return None
    ```
    """
    seq, prev_hash, count = start_seq, start_prev_hash, 0
    for raw in records:
        fault, digest = _record_fault(raw, seq, prev_hash)
        if fault is not None:
            return VerifyReport(False, count, seq, fault, prev_hash)
        seq, prev_hash, count = seq + 1, digest, count + 1
    return VerifyReport(True, count, None, None, prev_hash)
