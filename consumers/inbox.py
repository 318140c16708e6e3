"""The sequencer's input: every partition of `<prefix>.inbox` into `LedgerApplication.process`.

Exactly once rests on the store, never on Kafka offsets (docs/pipeline.md): each batch
of one partition is decided and recorded in ONE store transaction together with its
`Tracking("<topic>:<partition>", last offset)`. On assignment, and after any store outage,
each partition is sought to the store's position + 1, and records below it are dropped
before they are decided, so a redelivered record books nothing. Kafka offsets are
committed too, as a convenience for lag tools only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from consumers.metrics import ServiceCounters
from consumers.store_retry import STORE_OUTAGE_ERRORS, backoff_retry
from consumers.topics import (
    TopicNames,
    kafka_connection,
    topic_partitions,
)
from ledger.application import InboxItem, LedgerApplication
from ledger.limits import inbox_batch_records_max, inbox_record_bytes_max
from ledger.store import LedgerStore, Tracking, TrackingConflict

log = logging.getLogger("consumers.inbox")

inbox_poll_timeout_ms = 200  # getmany waits this long for records before looping
inbox_fetch_max_wait_ms = 100  # broker holds a fetch this long to fill fetch_min_bytes
inbox_fetch_min_bytes = 1  # answer a fetch as soon as anything is there: low latency
# One fetch response, all partitions: about 2 batches of maximal records, bounded memory.
inbox_fetch_bytes_max = 2 * inbox_batch_records_max * inbox_record_bytes_max
inbox_partition_fetch_bytes_max = inbox_batch_records_max * inbox_record_bytes_max
# Group liveness settings. With manual assignment (InboxIngest.assign_all) they bind
# nothing, but stated: were the consumer ever subscribed, a member is declared dead after
# the session without a heartbeat, heartbeats go every tenth of it (a batch runs in a
# thread, so the loop keeps them going), and a store outage held in backoff may last up
# to the poll interval before the member is dropped (it would rejoin and re-seek).
inbox_session_timeout_ms = 30_000
inbox_heartbeat_interval_ms = 3_000
inbox_max_poll_interval_ms = 600_000
inbox_offset_commit_interval_s = 5.0  # Kafka offsets are only a convenience for lag tools
# A commit waits this long at most: with the broker gone it would retry for as long as it
# is away, holding up the loop (and a stop) for a convenience.
inbox_offset_commit_timeout_s = 2.0


def inbox_consumer(bootstrap: str, names: TopicNames) -> Any:
    """The inbox consumer, every option stated (aiokafka's defaults are wrong for a ledger)."""
    return AIOKafkaConsumer(
        **kafka_connection(bootstrap, "ledger-sequencer"),
        # Only to commit offsets for lag tools: partitions are assigned, not subscribed
        # (InboxIngest.assign_all), so no group membership or rebalance is involved.
        group_id=names.consumer_group,
        group_instance_id=None,  # no membership at all (see group_id)
        enable_auto_commit=False,  # offsets are NOT the truth; the store's tracking is
        auto_commit_interval_ms=5_000,  # unused with auto commit off; stated
        auto_offset_reset="earliest",  # a partition the store never saw starts at 0
        isolation_level="read_committed",  # an aborted upstream transaction is never booked
        max_poll_records=inbox_batch_records_max,  # one store transaction, bounded
        fetch_max_wait_ms=inbox_fetch_max_wait_ms,  # see the constant
        fetch_min_bytes=inbox_fetch_min_bytes,  # see the constant
        fetch_max_bytes=inbox_fetch_bytes_max,  # bounded memory per fetch
        max_partition_fetch_bytes=inbox_partition_fetch_bytes_max,  # per partition
        session_timeout_ms=inbox_session_timeout_ms,  # see the constant
        heartbeat_interval_ms=inbox_heartbeat_interval_ms,  # see the constant
        max_poll_interval_ms=inbox_max_poll_interval_ms,  # see the constant
        rebalance_timeout_ms=inbox_session_timeout_ms,  # time to finish a batch on rebalance
        # The single sequencer is the only member; round robin is aiokafka's default, stated.
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
        check_crcs=True,  # a corrupted record is an error, not an input
        exclude_internal_topics=True,  # never the broker's own topics
        key_deserializer=None,  # keys and values stay bytes: the ledger decodes them
        value_deserializer=None,
    )


@dataclass
class IngestState:
    """What the sequencer has done, for /health and the progress logs."""

    journal_seq: int = 0
    reject_count: int = 0
    records: int = 0
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # next offsets
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    store_healthy: bool = True  # the last batch (or its recovery) reached the store
    store_answered: bool = True  # the service's last probe of the store was answered
    broker_healthy: bool = True  # the service's last probe of the broker was answered
    recorded: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the relays
    first_poll_done: asyncio.Event = field(default_factory=asyncio.Event)  # starts the relays
    counters: ServiceCounters = field(default_factory=ServiceCounters)  # for /metrics


def tracking_name(partition: TopicPartition) -> str:
    """The store's name for an input partition's position: `ledger.inbox:0`."""
    return f"{partition.topic}:{partition.partition}"


class InboxIngest:
    """Polls the inbox and records each partition's batch with its position."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        app: LedgerApplication,
        build_app: Callable[[], LedgerApplication],
        names: TopicNames,
        state: IngestState,
        bootstrap: str,
    ) -> None:
        self._bootstrap = bootstrap
        self._consumer = consumer
        self._app = app
        self._build_app = build_app  # a fresh application: replays the store's journal
        self._names = names
        self._state = state
        self._next: dict[TopicPartition, int] = {}  # next offset to decide, per partition
        self._last_commit_s = time.monotonic()
        state.journal_seq = app.book.last_seq
        state.reject_count = app.reject_count

    @property
    def store(self) -> LedgerStore:
        return self._app.store

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    async def assign_all(self) -> None:
        """Take every partition of the inbox and seek each to the store's position.

        Manual assignment, not a group subscription: the single sequencer consumes every
        partition by design (docs/pipeline.md), so a rebalance has nothing to balance and
        would only stall a restarted sequencer until the dead member's session expires.
        A second instance is fenced by the relays' transactional ids and the store."""
        numbers = await topic_partitions(self._bootstrap, self._names.inbox)
        partitions = [TopicPartition(self._names.inbox, n) for n in numbers]
        self._consumer.assign(partitions)
        await self.seek_to_store(partitions)

    async def seek_to_store(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each partition to the store's recorded position + 1 (0 when none)."""

        def positions() -> list[int | None]:
            return [self.store.max_tracking_id(tracking_name(p)) for p in partitions]

        recorded = await backoff_retry(positions, "read_positions", self._store_down)
        self._state.store_healthy = True
        for partition, last in zip(partitions, recorded, strict=True):
            start = 0 if last is None else last + 1
            self._consumer.seek(partition, start)
            self._next[partition] = start
            self._state.positions[(partition.topic, partition.partition)] = start
            log.info(
                "seek topic=%s partition=%d offset=%d reason=store_position",
                partition.topic,
                partition.partition,
                start,
            )

    def _store_down(self) -> None:
        self._state.store_healthy = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll and record until `stopping` is set; the batch in hand is always finished."""
        while not stopping.is_set():
            batches: dict[TopicPartition, list[ConsumerRecord]] = await self._consumer.getmany(
                timeout_ms=inbox_poll_timeout_ms, max_records=inbox_batch_records_max
            )
            # Partitions in a fixed order: with one partition the journal depends on the
            # inbox alone; with several, the journal records the interleaving chosen here.
            for partition in sorted(batches, key=lambda p: (p.topic, p.partition)):
                await self._record(partition, batches[partition])
            self._state.first_poll_done.set()
            self._note_lag()
            await self._maybe_commit_offsets()
        await self._maybe_commit_offsets(force=True)

    async def _record(self, partition: TopicPartition, records: list[ConsumerRecord]) -> None:
        start = self._next.get(partition)
        if start is None:  # assigned while the store was down: position it first
            await self.seek_to_store([partition])
            return
        fresh = [record for record in records if record.offset >= start]
        if not fresh:
            return
        items = [
            InboxItem(
                value=record.value if record.value is not None else b"",
                key=record.key,
                topic=partition.topic,
                partition=partition.partition,
                offset=record.offset,
            )
            for record in fresh
        ]
        tracking = Tracking(tracking_name(partition), fresh[-1].offset)
        started_s = time.monotonic()
        try:
            outcome = await asyncio.to_thread(self._app.process, items, tracking)
        except TrackingConflict as conflict:
            # Recorded before (by an earlier life, or by a second instance): nothing was
            # booked now, and `process` replayed the book from the store. Seek to the
            # positions read AFTER that replay, never to `recorded_id + 1`: another writer
            # may have committed between the two reads, and a book holding records beyond
            # its position would decide them again (a refused input refused twice).
            log.info(
                "already_applied topic=%s partition=%d offset=%d recorded=%d",
                partition.topic,
                partition.partition,
                fresh[-1].offset,
                conflict.recorded_id,
            )
            await self.seek_to_store(list(self._next))
            self._state.journal_seq = self._app.book.last_seq
            self._state.reject_count = self._app.reject_count
            return
        except STORE_OUTAGE_ERRORS as error:
            log.warning(
                "store_error topic=%s partition=%d offset=%d error=%s",
                partition.topic,
                partition.partition,
                fresh[0].offset,
                type(error).__name__,
            )
            await self._recover()
            return
        self._advance(partition, fresh[-1].offset + 1, seek=False)
        counters = self._state.counters
        counters.batch_seconds.observe(time.monotonic() - started_s)
        counters.events += len(outcome.journal)
        counters.rejects_by_reason.update(outcome.refused_by_reason)
        self._state.records += len(items)
        self._state.journal_seq = self._app.book.last_seq
        self._state.reject_count = self._app.reject_count
        if outcome.journal or outcome.rejects:
            self._state.recorded.set()

    def _advance(self, partition: TopicPartition, next_offset: int, *, seek: bool) -> None:
        self._next[partition] = next_offset
        self._state.positions[(partition.topic, partition.partition)] = next_offset
        if seek:
            self._consumer.seek(partition, next_offset)

    async def _recover(self) -> None:
        """After a failed store transaction: a fresh application (its book replayed from
        the store, so memory holds nothing the store lacks) and every partition sought
        back to the store's positions. Bounded retries, then the error stops the service."""
        self._state.store_healthy = False
        self._app = await backoff_retry(self._build_app, "rebuild_book", self._store_down)
        await self.seek_to_store(list(self._next))
        self._state.journal_seq = self._app.book.last_seq
        self._state.reject_count = self._app.reject_count
        log.info("store_recovered journal_seq=%d", self._state.journal_seq)

    def _note_lag(self) -> None:
        for partition, next_offset in self._next.items():
            highwater = self._consumer.highwater(partition)
            if highwater is not None:
                lag = max(highwater - next_offset, 0)
                self._state.lag[(partition.topic, partition.partition)] = lag

    async def _maybe_commit_offsets(self, *, force: bool = False) -> None:
        """Commit the recorded positions to Kafka for lag tools; never relied upon."""
        now = time.monotonic()
        if not self._next or (
            not force and now - self._last_commit_s < inbox_offset_commit_interval_s
        ):
            return
        self._last_commit_s = now
        try:
            async with asyncio.timeout(inbox_offset_commit_timeout_s):
                await self._consumer.commit(dict(self._next))
        except (CommitFailedError, KafkaError, TimeoutError) as error:
            log.info("offset_commit_skipped error=%s", type(error).__name__)
