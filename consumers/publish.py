"""`ledger publish FILE|-`: JSON-lines inbox records to `<prefix>.inbox`, keyed per docs/events.md.

The key is the record's `account_id`, or the instrument of a `mark_price`, the market of a
`funding_rate`, the `business_date` of a `day_closed`; a line that does not parse (or has
none of these as a string) is sent with a null key: the ledger refuses it with a reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

from consumers import kafka_security
from consumers.topics import (
    kafka_connections_max_idle_ms,
    kafka_metadata_max_age_ms,
    kafka_request_timeout_ms,
    kafka_retry_backoff_ms,
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
            case _:
                key = None
    return None if key is None else key.encode("utf-8")


def inbox_producer(bootstrap: str) -> Any:
    """An idempotent, acks=all producer tuned for throughput (not transactional: upstream
    facts carry their own `event_id`, and the ledger deduplicates a resent one)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **kafka_security.client_options(),  # SASL/SCRAM over TLS when configured
        client_id="ledger-publish",  # names this client in broker logs
        acks="all",  # a record counts once every in-sync replica has it
        enable_idempotence=True,  # a retried batch is not written twice, order is kept
        linger_ms=publish_linger_ms,  # see the constant
        max_batch_size=publish_batch_bytes_max,  # see the constant
        max_request_size=publish_request_bytes_max,  # see the constant
        compression_type=None,  # small JSON on a local network: CPU matters more
        request_timeout_ms=kafka_request_timeout_ms,  # a lost broker fails the send
        retry_backoff_ms=kafka_retry_backoff_ms,  # stated, not defaulted
        metadata_max_age_ms=kafka_metadata_max_age_ms,  # notice a leader change
        connections_max_idle_ms=kafka_connections_max_idle_ms,  # stated
    )


async def publish_records(bootstrap: str, topic: str, records: Iterable[bytes]) -> int:
    """Send every record to `topic`, keyed per docs/events.md; returns how many were sent.
    Returns only when the broker acknowledged all of them (acks=all)."""
    producer = inbox_producer(bootstrap)
    sent = 0
    try:
        await producer.start()
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            pending.append(await producer.send(topic, record, key=inbox_key(record)))
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


def sendable_lines(stream: IO[bytes], oversized: list[int]) -> Iterator[bytes]:
    """The non-blank lines of a JSON-lines stream, without their line ends, read a bounded
    line at a time. A line longer than an inbox record may be is not sent (the broker
    would refuse it, and the ledger would refuse it too): its number joins `oversized`."""
    for line in read_inbox_lines(stream):
        if line.truncation is None:
            yield line.value
        else:
            oversized.append(line.number)
