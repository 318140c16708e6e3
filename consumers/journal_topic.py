"""Read the journal topic back in `seq` order, for `ledger audit verify --from-kafka`.

Each partition of `<prefix>.events` holds its records in `seq` order; across partitions the
journal is their merge by the `seq` header. The merge streams: a record is handed on only
once every partition that still has records has one buffered, so memory stays bounded by
the fetch size whatever the journal's length. Only committed records are read
(`read_committed`), up to the end offsets found when reading starts.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from consumers.topics import (
    kafka_connection,
    topic_partitions,
)

journal_read_records_max = 2_000  # per fetch, per partition
journal_read_poll_ms = 500


class JournalTopicError(Exception):
    """The journal topic cannot be read as a journal (no `seq` header on a record)."""


def _consumer(bootstrap: str) -> Any:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - only this command needs Kafka

    return AIOKafkaConsumer(
        **kafka_connection(bootstrap, "ledger-audit"),
        group_id=None,  # an audit reads assigned partitions and commits nothing
        enable_auto_commit=False,  # stated: nothing to commit
        auto_offset_reset="earliest",  # the audit starts at seq 1
        isolation_level="read_committed",  # an aborted transaction is not the journal
        max_poll_records=journal_read_records_max,  # bounded buffers
        fetch_max_wait_ms=journal_read_poll_ms,  # see the constant
        check_crcs=True,  # a corrupted record is an error, not a journal entry
    )


def _seq(record: Any) -> int:
    for name, value in record.headers or ():
        if name == "seq":
            return int(value.decode("ascii"))
    raise JournalTopicError(
        f"record at partition {record.partition} offset {record.offset} has no seq header"
    )


async def journal_records(bootstrap: str, topic: str) -> AsyncGenerator[bytes, None]:
    """The committed journal records of `topic`, merged across partitions by `seq`."""
    from aiokafka import TopicPartition  # noqa: PLC0415

    consumer = _consumer(bootstrap)
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        buffers: dict[Any, deque[tuple[int, bytes]]] = {p: deque() for p in partitions}
        while True:
            open_partitions = [
                p for p in partitions if await consumer.position(p) < ends[p] and not buffers[p]
            ]
            if open_partitions:
                fetched = await consumer.getmany(*open_partitions, timeout_ms=journal_read_poll_ms)
                for partition, records in fetched.items():
                    buffers[partition].extend(
                        (_seq(r), r.value) for r in records if r.offset < ends[partition]
                    )
                continue
            if not any(buffers.values()):
                return
            for value in _drain(buffers):
                yield value
    finally:
        await consumer.stop()


def _drain(buffers: dict[Any, deque[tuple[int, bytes]]]) -> Iterator[bytes]:
    """Hand on records in seq order until a partition's buffer runs dry: the caller must
    refill it (or find it read to its end) before anything later is handed on."""
    heads = [(buffer[0][0], index) for index, buffer in enumerate(buffers.values()) if buffer]
    heapq.heapify(heads)
    queues = list(buffers.values())
    while heads:
        _, index = heapq.heappop(heads)
        queue = queues[index]
        yield queue.popleft()[1]
        if not queue:
            return
        heapq.heappush(heads, (queue[0][0], index))


def read_journal_topic(bootstrap: str, topic: str) -> Iterator[bytes]:
    """A blocking iterator over `journal_records`, for the synchronous audit code."""
    loop = asyncio.new_event_loop()
    stream = journal_records(bootstrap, topic)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(stream))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()
