"""JSON-lines inbox files read a bounded line at a time (`ledger ingest`, `ledger publish`).

A line longer than an inbox record may be is never held whole: its first bytes are kept
(what a reject shows), the rest is only counted and hashed, so a 200 MB line costs the
same memory as a 20 KB one and the reject still identifies it by length and SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import msgspec

from ledger import limits

# A record at its limit, with a CRLF line end, is read whole; one byte more is cut.
inbox_line_read_bytes_max = limits.inbox_record_bytes_max + 2
inbox_line_chunk_bytes = 1 << 16  # the rest of an oversized line is hashed in chunks
# What Windows tools write at the start of a UTF-8 file: a mark of the file, not of its
# first record (RFC 8259 lets a parser ignore it).
_UTF8_BYTE_ORDER_MARK = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Truncation:
    """The value at hand is only the first bytes of a longer record."""

    length_bytes: int  # the whole record, without its line end
    sha256: str  # hex digest of the whole record, without its line end


class InboxLine(msgspec.Struct, frozen=True):  # one per line read: a Struct is fast to make
    number: int  # 1-based line number in the file
    value: bytes  # the record without its line end, or its first bytes when truncated
    truncation: Truncation | None


def read_inbox_lines(stream: IO[bytes]) -> Iterator[InboxLine]:
    """The non-blank lines of `stream`, each at most `inbox_line_read_bytes_max` bytes, without
    a UTF-8 byte order mark opening the stream."""
    number = 0
    while head := stream.readline(inbox_line_read_bytes_max):
        number += 1
        truncation = None
        if not head.endswith(b"\n") and len(head) == inbox_line_read_bytes_max:
            truncation = _rest_of_line(stream, head)
        value = head.rstrip(b"\r\n")
        if number == 1 and truncation is None:
            value = value.removeprefix(_UTF8_BYTE_ORDER_MARK)
        if truncation is not None and truncation.length_bytes == len(value):
            truncation = None  # the line ended exactly at the bound, with no line end
        if value.strip():
            yield InboxLine(number, value, truncation)


def _rest_of_line(stream: IO[bytes], head: bytes) -> Truncation:
    """Count and hash the line `head` began, up to its `\\n`, keeping none of it.

    Trailing `\\r`s are held back until the next chunk shows they are not the line end,
    so the digest covers exactly the bytes `rstrip(b"\\r\\n")` would keep."""
    digest = hashlib.sha256()
    length = 0
    held = b""
    chunk = head
    while chunk:
        ended = chunk.endswith(b"\n")
        body = held + (chunk[:-1] if ended else chunk)
        kept = body.rstrip(b"\r")
        held = body[len(kept) :]
        digest.update(kept)
        length += len(kept)
        if ended:
            break
        chunk = stream.readline(inbox_line_chunk_bytes)
    return Truncation(length, digest.hexdigest())
