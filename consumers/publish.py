"""`ledger publish FILE|-`: JSON-lines inbox records to `<prefix>.inbox`, keyed per docs/events.md.

The key is the record's `account_id`, or the instrument of a `mark_price`, the market of a
`funding_rate`, the `business_date` of a `day_closed`, the `trade_id` of a `trade_busted`,
the `reference` of a `deposit_returned`; a record with none of these as a
string is sent with a null key, and the ledger refuses it with a reason. A line that is not
a JSON object is not sent at all (`InboxLines`), unless `--send-malformed` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from consumers.topics import (
    kafka_connection,
)
from ledger.inbox_lines import read_inbox_lines

log = logging.getLogger("consumers.publish")

publish_linger_ms = 5  # wait this long to fill a batch: throughput for a few ms of latency
publish_batch_bytes_max = 512 * 1024  # one producer batch per partition, at most
publish_request_bytes_max = 1_048_576  # one produce request (the broker's default limit)
publish_in_flight_records_max = 20_000  # sends awaited in chunks: bounded memory


class _KeyFields(msgspec.Struct, frozen=True):
    """The fields an inbox record is keyed by; anything else in the record is ignored."""

    type: str | None = None
    account_id: str | None = None
    instrument: str | None = None
    market: str | None = None
    business_date: str | None = None
    trade_id: str | None = None
    reference: str | None = None


_decode_key_fields = msgspec.json.Decoder(_KeyFields).decode


def inbox_key(raw: bytes) -> bytes | None:
    """The Kafka key docs/events.md gives an inbox record; None when it does not parse."""
    try:
        fields = _decode_key_fields(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        # RecursionError: a value nested too deep for the reader; the ledger refuses it.
        return None
    key = fields.account_id
    if key is None:
        match fields.type:
            case "mark_price":
                key = fields.instrument
            case "funding_rate":
                key = fields.market
            case "day_closed":
                key = fields.business_date
            case "trade_busted":
                key = fields.trade_id
            case "deposit_returned":
                key = fields.reference
            case _:
                key = None
    return None if key is None else key.encode("utf-8")


def inbox_producer(bootstrap: str) -> Any:
    """An idempotent, acks=all producer tuned for throughput (not transactional: upstream
    facts carry their own `event_id`, and the ledger deduplicates a resent one)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    return AIOKafkaProducer(
        **kafka_connection(bootstrap, "ledger-publish"),
        acks="all",  # a record counts once every in-sync replica has it
        enable_idempotence=True,  # a retried batch is not written twice, order is kept
        linger_ms=publish_linger_ms,  # see the constant
        max_batch_size=publish_batch_bytes_max,  # see the constant
        max_request_size=publish_request_bytes_max,  # see the constant
        compression_type=None,  # small JSON on a local network: CPU matters more
    )


@dataclass
class Acknowledged:
    """How many records the broker has acknowledged so far: what an interrupted publish
    can say it sent."""

    count: int = 0

    def add(self, answer: asyncio.Future[Any]) -> None:
        if not answer.cancelled() and answer.exception() is None:
            self.count += 1


async def publish_records(
    bootstrap: str,
    topic: str,
    records: Iterable[bytes],
    acknowledged: Acknowledged | None = None,
) -> int:
    """Send every record to `topic`, keyed per docs/events.md; returns how many were sent.
    Returns only when the broker acknowledged all of them (acks=all), counting each
    acknowledgement in `acknowledged` as it comes."""
    acknowledged = Acknowledged() if acknowledged is None else acknowledged
    producer = inbox_producer(bootstrap)
    sent = 0
    try:
        await producer.start()
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            answer = await producer.send(topic, record, key=inbox_key(record))
            answer.add_done_callback(acknowledged.add)
            pending.append(answer)
            if len(pending) >= publish_in_flight_records_max:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending.clear()
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await producer.stop()
    log.info("published topic=%s records=%d", topic, sent)
    return sent


refused_line_numbers_listed_max = 10  # a report names the first few refused lines


@dataclass
class RefusedLines:
    """How many lines were not sent for one reason, and the numbers of the first few."""

    count: int = 0
    numbers: list[int] = field(default_factory=list)

    def add(self, number: int) -> None:
        self.count += 1
        if len(self.numbers) < refused_line_numbers_listed_max:
            self.numbers.append(number)


@dataclass
class InboxLines:
    """The records of a JSON-lines stream: each non-blank line, without its line end, read
    a bounded line at a time.

    Not sent: a line longer than an inbox record may be (the broker would refuse it, and
    the ledger would too), and a line that is not a JSON object (it would go without a
    key), unless `send_malformed` asks to send those anyway, to exercise the ledger's
    rejects."""

    send_malformed: bool = False
    oversized: RefusedLines = field(default_factory=RefusedLines)
    not_objects: RefusedLines = field(default_factory=RefusedLines)

    def records(self, stream: IO[bytes]) -> Iterator[bytes]:
        for line in read_inbox_lines(stream):
            if line.truncation is not None:
                self.oversized.add(line.number)
            elif self.send_malformed or _is_json_object(line.value):
                yield line.value
            else:
                self.not_objects.add(line.number)


class _AnyObject(msgspec.Struct, frozen=True):
    """Decodes any JSON object (its fields ignored) and nothing else."""


_decode_object = msgspec.json.Decoder(_AnyObject).decode


def _is_json_object(record: bytes) -> bool:
    try:
        _decode_object(record)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False
    return True
