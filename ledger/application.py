"""The ledger application: replay the journal into a book, then decide batches of inbox records.

`ledger ingest` (a file) and `ledger run` (Kafka) both call `LedgerApplication.process`,
so the decisions are one code path whatever the inbox comes from. A batch is decided in
memory and recorded in one store transaction with its rejects and its inbox position; if
that transaction fails, the book is rebuilt from the store, so memory never holds a
decision the store does not.

The book is restored from the latest snapshot and the journal's tail (`ledger.snapshots`),
and a snapshot is recorded every `snapshot_interval_events` journal events.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger import journal_events as je
from ledger import snapshots
from ledger.book import Book
from ledger.decisions import decide
from ledger.desk import Desk
from ledger.inbox import decode_inbox, inbox_digest, readable_event_id
from ledger.invariants import require
from ledger.journal import JournalEntry, canonical_json, format_timestamp
from ledger.limits import inbox_batch_records_max, snapshot_interval_events
from ledger.margin import watch_all
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal
from ledger.store import LedgerStore, PersistenceError, Tracking
from ledger.watchlist import Watchlist

log = logging.getLogger("ledger.application")


@dataclass(frozen=True)
class InboxItem:
    """One inbox record as it arrived, with where it came from."""

    value: bytes
    key: bytes | None
    topic: str
    partition: int | None
    offset: int | None


@dataclass
class BatchOutcome:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    journal: list[JournalEntry] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    refused_by_reason: Counter[str] = field(default_factory=Counter)


class StaleBook(RuntimeError):
    """The in-memory book may hold decisions the store never recorded."""


class LedgerApplication:
    def __init__(
        self,
        store: LedgerStore,
        policy: Policy,
        snapshot_events: int = snapshot_interval_events,
    ) -> None:
        require(snapshot_events > 0, "the snapshot interval must be at least one event")
        self.store = store
        self.policy = policy
        self.snapshot_events = snapshot_events
        self.snapshot = snapshots.latest_mark(store)
        self.desk = self._replay()
        self._snapshot_when_due()
        self.reject_count = store.reject_count()
        self._stale = False

    @property
    def book(self) -> Book:
        return self.desk.book

    def process(self, items: Sequence[InboxItem], tracking: Tracking | None = None) -> BatchOutcome:
        """Decide `items` in order and record the outcome in one store transaction."""
        require(len(items) <= inbox_batch_records_max, "an inbox batch exceeds its bound")
        if self._stale:
            raise StaleBook(
                "the book could not be rebuilt from the store after a failed append: "
                "open a new LedgerApplication once the store is back"
            )
        outcome = BatchOutcome()
        self.desk.pending = []
        for item in items:
            self._process_one(item, outcome)
        outcome.journal = self.desk.pending
        try:
            self.store.append(outcome.journal, outcome.rejects, tracking)
        except BaseException:
            # Memory holds decisions the store refused: rebuild from the store, and if even
            # that fails, refuse to decide anything more with this book.
            self._stale = True
            self.desk = self._replay()
            self.reject_count = self.store.reject_count()
            self._stale = False
            raise
        self._snapshot_when_due()
        return outcome

    def _snapshot_when_due(self) -> None:
        """Record a snapshot once `snapshot_events` events passed since the last one. A
        snapshot only saves replay time: a store fault here is logged, not raised, since the
        batch itself is already recorded."""
        if self.book.last_seq - self.snapshot.seq < self.snapshot_events:
            return
        try:
            self.snapshot = snapshots.take(self.store, self.book, self.snapshot)
        except PersistenceError as error:
            log.warning("snapshot at seq %s not recorded: %s", self.book.last_seq, error)

    def _process_one(self, item: InboxItem, outcome: BatchOutcome) -> None:
        try:
            record = decode_inbox(item.value, self.policy)
        except Refusal as refusal:
            self._reject(item, refusal, readable_event_id(item.value), outcome)
            return
        digest = inbox_digest(record)
        seen = self.book.seen_inputs.get(record.event_id)
        if seen is not None:
            if seen == digest:
                outcome.duplicates += 1
                return
            conflict = Refusal(
                ReasonCode.EVENT_ID_CONFLICT,
                f"event_id {record.event_id!r} was already booked with different content: "
                "give a new fact a new event_id",
            )
            self._reject(item, conflict, record.event_id, outcome)
            return
        self.desk.begin(record.event_id, record.occurred_at, digest)
        self._adopt_policy()
        recorded_before = len(self.desk.pending)
        try:
            rejected = decide(self.desk, record)
        except Refusal as refused:
            require(
                len(self.desk.pending) == recorded_before, "a refused input recorded journal events"
            )
            self._reject(item, refused, record.event_id, outcome)
            return
        if rejected is not None:
            self._reject(item, rejected, record.event_id, outcome)
        else:
            outcome.accepted += 1

    def _adopt_policy(self) -> None:
        """Record the policy in the journal the first time a decision is taken under it."""
        if self.book.policy_digest == self.policy.digest:
            return
        self.desk.record(
            je.PolicyAdopted(
                recorded_at=self.desk.now_text,
                causation_id=self.desk.cause,
                version=self.policy.version,
                digest=self.policy.digest,
            )
        )

    def _reject(
        self, item: InboxItem, refusal: Refusal, event_id: str | None, outcome: BatchOutcome
    ) -> None:
        self.reject_count += 1
        clock = self.book.clock
        try:
            value, encoding = item.value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(item.value).decode("ascii"), "base64"
        key = None if item.key is None else item.key.decode("utf-8", errors="replace")
        outcome.rejects.append(
            canonical_json(
                {
                    "number": self.reject_count,
                    "recorded_at": None if clock is None else format_timestamp(clock),
                    "reason_code": str(refusal.reason_code),
                    "detail": refusal.detail,
                    "event_id": event_id,
                    "topic": item.topic,
                    "partition": item.partition,
                    "offset": item.offset,
                    "key": key,
                    "value": value,
                    "value_encoding": encoding,
                }
            )
        )
        outcome.refused += 1
        outcome.refused_by_reason[str(refusal.reason_code)] += 1
        log.info(
            "refused reason_code=%s topic=%s partition=%s offset=%s event_id=%s",
            refusal.reason_code,
            item.topic,
            item.partition,
            item.offset,
            event_id,
        )

    def _replay(self) -> Desk:
        book = snapshots.book_at(self.store, with_inputs=True)
        desk = Desk(book=book, policy=self.policy, watchlist=Watchlist(self.policy))
        watch_all(desk)
        return desk
