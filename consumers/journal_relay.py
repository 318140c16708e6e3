"""Journal publication: the store's journal to `<prefix>.events`, its rejects to
`<prefix>.rejects`, its signed checkpoints to `<prefix>.checkpoints`, each record exactly
once and in order.

Each relay owns a transactional producer (`<prefix>.journal-relay`, `<prefix>.rejects-relay`,
`<prefix>.checkpoint-relay`).
Starting it fences any older instance (its transactions are aborted, its sends refused
with `ProducerFenced`); only then does the relay read the topic's tail with a
`read_committed` consumer (the last record's position header, `seq` or `number`) and resume
right after it. A batch is one transaction: a crash mid-batch leaves nothing a
`read_committed` reader sees, and the next life republishes the batch whole. Any Kafka
error restarts this cycle (new producer, tail read again), so a commit whose answer was
lost is never published twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, ProducerFenced

from consumers.store_retry import backoff_retry
from consumers.topics import (
    kafka_connection,
    topic_partitions,
)
from ledger.checkpoints import checkpoint_position
from ledger.invariants import require
from ledger.limits import journal_read_batch_events_max
from ledger.rejections import decode_reject_record
from ledger.store import LedgerStore

log = logging.getLogger("consumers.journal_relay")

relay_batch_records_max = 2_000  # one Kafka transaction, at most
relay_idle_poll_s = 0.25  # re-read the store this often when nothing woke the relay
relay_transaction_timeout_ms = 60_000  # the coordinator aborts a transaction older than this
relay_linger_ms = 2  # a short wait to fill batches: the whole transaction is sent at once
relay_batch_bytes_max = 512 * 1024
# Every record on partition 0: the ledger creates its topics with one partition (a total
# order), and a topic made with more by hand still gets the journal in one order.
relay_partition = 0
relay_request_bytes_max = 1_048_576
relay_error_backoff_initial_s = 0.5
relay_error_backoff_max_s = 5.0
relay_kafka_failures_max = 120  # consecutive failed cycles before the service gives up
tail_window_records_initial = 64  # read back this far for the tail, doubling when needed
tail_read_timeout_s = 60.0
tail_poll_timeout_ms = 500
require(relay_batch_records_max <= journal_read_batch_events_max, "a relay batch exceeds a read")


class RelayFenced(Exception):
    """A newer instance with the same transactional id took over: this one must stop."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish: its position (`seq` or reject `number`), key, value, headers."""

    position: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class _JournalKeyFields(msgspec.Struct, frozen=True):
    account_id: str | None = None
    instrument: str | None = None
    market: str | None = None
    hash: str = ""


_decode_journal_key = msgspec.json.Decoder(_JournalKeyFields).decode


def read_journal_batch(store: LedgerStore, after: int) -> list[Outgoing]:
    """Journal entries after `after`, keyed by account, instrument or market (else by
    type), with headers `seq`, `type` and `hash`; values exactly as stored."""
    batch = []
    for entry in store.read_journal(after, relay_batch_records_max):
        fields = _decode_journal_key(entry.record)
        key_text = fields.account_id or fields.instrument or fields.market or entry.type
        headers = [
            ("seq", str(entry.seq).encode("ascii")),
            ("type", entry.type.encode("utf-8")),
            ("hash", fields.hash.encode("ascii")),
        ]
        batch.append(Outgoing(entry.seq, key_text.encode("utf-8"), entry.record, headers))
    return batch


def read_rejects_batch(store: LedgerStore, after: int) -> list[Outgoing]:
    """Reject records after number `after`, keyed as the refused input was, with headers
    `number` and `reason_code`."""
    batch = []
    for record in store.read_rejects(after, relay_batch_records_max):
        fields = decode_reject_record(record)
        headers = [
            ("number", str(fields.number).encode("ascii")),
            ("reason_code", fields.reason_code.encode("utf-8")),
        ]
        batch.append(Outgoing(fields.number, fields.key_bytes(), record, headers))
    return batch


def read_checkpoints_batch(store: LedgerStore, after: int) -> list[Outgoing]:
    """Signed checkpoints after number `after`, without a key, with headers `number` and
    `seq` (the journal seq each is of)."""
    batch = []
    for offset, record in enumerate(store.read_checkpoints(after, relay_batch_records_max), 1):
        seq, _ = checkpoint_position(record)
        headers = [
            ("number", str(after + offset).encode("ascii")),
            ("seq", str(seq).encode("ascii")),
        ]
        batch.append(Outgoing(after + offset, None, record, headers))
    return batch


def relay_producer(bootstrap: str, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_connection(bootstrap, transactional_id),
        transactional_id=transactional_id,  # fences an older instance of this relay
        transaction_timeout_ms=relay_transaction_timeout_ms,  # see the constant
        acks="all",  # a record counts once every in-sync replica has it (transactions need it)
        enable_idempotence=True,  # no duplicate from a retried batch (transactions need it)
        linger_ms=relay_linger_ms,  # see the constant
        max_batch_size=relay_batch_bytes_max,  # bounded producer batches
        max_request_size=relay_request_bytes_max,  # the broker's default message limit
        compression_type=None,  # small JSON, local network: CPU over bytes
    )


async def _start(producer: AIOKafkaProducer) -> None:
    """InitProducerId: fences, aborts an older instance's work. A broker lost while the
    producer looks for its transaction coordinator is reported by aiokafka as an assertion
    (its metadata answer named no broker): an outage like any other, retried as one; it
    ended the relays and `ledger run` with status 1 and a traceback."""
    try:
        await producer.start()
    except AssertionError as error:
        raise KafkaConnectionError(f"no broker while the relay started ({error})") from error


def tail_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_connection(bootstrap, "ledger-relay-tail"),
        group_id=None,  # a one-off read of assigned partitions: no group, no commits
        enable_auto_commit=False,  # nothing to commit without a group; stated
        auto_offset_reset="earliest",  # seeks are explicit; the safe direction if not
        isolation_level="read_committed",  # an aborted transaction is not published
        max_poll_records=tail_window_records_initial,  # small reads near the tail
        fetch_max_wait_ms=tail_poll_timeout_ms,  # see the constant
        check_crcs=True,  # a corrupted record is an error
    )


class TopicDiverged(Exception):
    """The topic's tail is not what the store holds at that position: a record appended by
    someone else, a store restored from an older copy, or a record without its position
    header. The relay stops with an alarm rather than publish past it."""


@dataclass(frozen=True)
class Tail:
    """The topic's last committed record: its position header and its bytes."""

    position: int
    value: bytes


def _header(headers: Any, name: str) -> int | None:
    for header_name, value in headers or ():
        if header_name == name:
            return int(value.decode("ascii"))
    return None


async def _partition_tail(
    consumer: AIOKafkaConsumer, partition: TopicPartition, header: str
) -> Tail | None:
    """The last committed record of `partition`; None when it holds none."""
    beginning = (await consumer.beginning_offsets([partition]))[partition]
    end = (await consumer.end_offsets([partition]))[partition]  # read_committed: the LSO
    window = tail_window_records_initial
    while end > beginning:
        start = max(end - window, beginning)
        consumer.seek(partition, start)
        last: Any = None
        while await consumer.position(partition) < end:
            batches = await consumer.getmany(partition, timeout_ms=tail_poll_timeout_ms)
            for record in batches.get(partition, []):
                if record.offset < end:
                    last = record
        if last is not None:
            position = _header(last.headers, header)
            if position is None:
                raise TopicDiverged(
                    f"{partition.topic} partition {partition.partition} offset {last.offset} "
                    f"has no `{header}` header: the ledger did not write it"
                )
            return Tail(position, last.value)
        if start == beginning:
            return None
        window *= 2
    return None


async def read_tail(bootstrap: str, topic: str, header: str) -> Tail | None:
    """The last published record on `topic`: the committed tail with the largest `header`
    over partitions; None when the topic holds no committed record."""
    consumer = tail_consumer(bootstrap)
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        consumer.assign(partitions)
        async with asyncio.timeout(tail_read_timeout_s):
            tails = [await _partition_tail(consumer, p, header) for p in partitions]
    finally:
        await consumer.stop()
    found = [tail for tail in tails if tail is not None]
    return max(found, key=lambda tail: tail.position, default=None)


def check_journal_tail(store: LedgerStore, tail: Tail) -> None:
    """The journal topic's tail must be, byte for byte, the store's record of that seq."""
    entries = store.read_journal(tail.position - 1, 1) if tail.position > 0 else []
    held = entries[0].record if entries and entries[0].seq == tail.position else None
    _require_tail_held("journal", "seq", tail, held, store.last_seq())


def check_rejects_tail(store: LedgerStore, tail: Tail) -> None:
    """The rejects topic's tail must be, byte for byte, the store's reject of that number."""
    records = store.read_rejects(tail.position - 1, 1) if tail.position > 0 else []
    held = (
        records[0] if records and decode_reject_record(records[0]).number == tail.position else None
    )
    _require_tail_held("rejects", "number", tail, held, store.reject_count())


def check_checkpoints_tail(store: LedgerStore, tail: Tail) -> None:
    """The checkpoint topic's tail must be, byte for byte, the store's checkpoint of that
    number."""
    # Numbers run without gaps: the first checkpoint after position - 1 is that position's.
    records = store.read_checkpoints(tail.position - 1, 1) if tail.position > 0 else []
    held = records[0] if records else None
    _require_tail_held("checkpoints", "number", tail, held, store.checkpoint_count())


def _require_tail_held(
    stream: str, position_name: str, tail: Tail, held: bytes | None, store_end: int
) -> None:
    """Raise TopicDiverged unless the store holds exactly the tail's bytes at its position."""
    if held is None:
        raise TopicDiverged(
            f"the {stream} topic ends at {position_name} {tail.position}, which the store "
            f"does not hold (it ends at {store_end}): a store restored from an older copy, "
            "or a record the ledger did not write"
        )
    if held != tail.value:
        raise TopicDiverged(
            f"the {stream} topic's record of {position_name} {tail.position} differs from "
            "the store's: a record the ledger did not write was appended to the topic"
        )


@dataclass
class RelayProgress:
    """What a relay has published, for /health and the progress logs."""

    published: int = 0
    healthy: bool = True


class Relay:
    """Publishes one store stream (journal or rejects) to its topic, in order, once."""

    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        topic: str,
        transactional_id: str,
        header: str,
        read_batch: Callable[[int], list[Outgoing]],
        wake: asyncio.Event,
        check_tail: Callable[[Tail], None],
    ) -> None:
        self.name = name
        self._bootstrap = bootstrap
        self._topic = topic
        self._transactional_id = transactional_id
        self._header = header
        self._read_batch = read_batch  # blocking: runs in a thread
        self._check_tail = check_tail  # blocking: runs in a thread; raises TopicDiverged
        self._wake = wake
        self.progress = RelayProgress()

    async def run(self, stopping: asyncio.Event, last: Callable[[], int]) -> None:
        """Publish until `stopping` is set and everything up to `last()` is published."""
        failures = 0
        delay_s = relay_error_backoff_initial_s
        while True:
            try:
                await self._cycle(stopping, last)
                return
            except ProducerFenced as fenced:
                raise RelayFenced(
                    f"{self._transactional_id} fenced by a newer instance"
                ) from fenced
            except KafkaError as error:
                failures += 1
                self.progress.healthy = False
                if failures >= relay_kafka_failures_max:
                    raise
                log.warning(
                    "relay_kafka_error relay=%s topic=%s published=%d retry_in_s=%.1f error=%r",
                    self.name, self._topic, self.progress.published, delay_s, error,
                )  # fmt: skip
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, relay_error_backoff_max_s)

    async def _cycle(self, stopping: asyncio.Event, last: Callable[[], int]) -> None:
        producer = relay_producer(self._bootstrap, self._transactional_id)
        try:
            await _start(producer)
            tail = await read_tail(self._bootstrap, self._topic, self._header)
            if tail is not None:
                check = self._check_tail
                await backoff_retry(lambda: check(tail), f"check_{self.name}_tail")
            published = 0 if tail is None else tail.position
            self.progress.published = published
            self.progress.healthy = True
            log.info("relay_resume relay=%s topic=%s after=%d", self.name, self._topic, published)
            while True:
                batch = await backoff_retry(
                    lambda: self._read_batch(self.progress.published), f"read_{self.name}"
                )
                if batch:
                    await self._publish(producer, batch)
                    continue
                if stopping.is_set() and self.progress.published >= last():
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), relay_idle_poll_s)
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _publish(self, producer: AIOKafkaProducer, batch: list[Outgoing]) -> None:
        expected = self.progress.published + 1
        if batch[0].position != expected:
            raise RuntimeError(
                f"{self.name}: store gave position {batch[0].position} where {expected} belongs"
            )
        async with producer.transaction():
            await asyncio.gather(*await self._send_batches(producer, batch))
        self.progress.published = batch[-1].position
        log.debug(
            "relay_published relay=%s topic=%s first=%d last=%d",
            self.name, self._topic, batch[0].position, batch[-1].position,
        )  # fmt: skip

    async def _send_batches(
        self, producer: AIOKafkaProducer, batch: list[Outgoing]
    ) -> list[asyncio.Future[Any]]:
        """Queue `batch` as Kafka record batches of at most `relay_batch_bytes_max`, in
        order, on partition `relay_partition`. A third of the CPU of a `send` per record:
        no partitioner hash and no future per record."""
        sent = []
        builder = producer.create_batch()
        for item in batch:
            if _append(builder, item):
                continue
            sent.append(await producer.send_batch(builder, self._topic, partition=relay_partition))
            builder = producer.create_batch()
            require(_append(builder, item), "an empty Kafka batch takes any record")
        sent.append(await producer.send_batch(builder, self._topic, partition=relay_partition))
        return sent


def _append(builder: Any, item: Outgoing) -> bool:
    """Add `item` to a Kafka record batch; False when the batch is full."""
    added = builder.append(timestamp=None, key=item.key, value=item.value, headers=item.headers)
    return added is not None
