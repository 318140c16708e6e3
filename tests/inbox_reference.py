"""The inbox digest as docs/events.md defines it, written from the record alone: the
reference `ledger.inbox.decode_digested` is held to (it computes the digest from the texts
it decodes), and a digest for tests that build a record without its bytes."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import msgspec

from ledger.inbox import InboxRecordType
from ledger.money import format_decimal

_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def inbox_digest(record: InboxRecordType) -> str:
    """SHA-256 hex of the record's canonical JSON, each figure in its normal form."""
    values = msgspec.structs.asdict(record)
    for name, value in values.items():
        if isinstance(value, Decimal):
            values[name] = format_decimal(value.normalize())
    values["type"] = record.__struct_config__.tag
    return hashlib.sha256(_encode_sorted(values)).hexdigest()
