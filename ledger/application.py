"""The ledger application: replay the journal into a book, then decide batches of inbox records.

`ledger ingest` (a file) and `ledger run` (Kafka) both call `LedgerApplication.process`,
so the decisions are one code path whatever the inbox comes from. A batch is decided in
memory and recorded in one store transaction with its rejects and its inbox position; if
that transaction fails, the book is rebuilt from the store, so memory never holds a
decision the store does not.

The book is restored from the latest snapshot and the journal's tail (`ledger.snapshots`),
and a snapshot is recorded every `snapshot_interval_events` journal events. The inputs
already decided are not in memory: the store keeps them, written with the journal, and a
batch asks it once for all its event ids (`LedgerStore.inputs_seen`); the book holds only
those of the batch being decided (`Book.new_inputs`). Nor are the client trades and deposits
booked: the store keeps them (`LedgerStore.trades_booked`, `deposits_booked`), written with
the journal from those the book booked in the batch (`Book.new_trades`, `new_deposits`),
and a batch asks it once for the originals its busts and returns name. A start records in
the store the trades and deposits of the events it replays (all of them, once, on a store
written before the tables existed).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import assert_never

import msgspec

from ledger import inbox, snapshots
from ledger import journal_events as je
from ledger.adopted_policies import adopted_at
from ledger.book import Book
from ledger.collector import cyclic_collector_paused
from ledger.decisions import Booked, Refused, Rejected, decide
from ledger.desk import Desk
from ledger.identifiers import printable
from ledger.inbox import DigestedRecord, InboxRecordType, decode_digested, readable_event_id
from ledger.inbox_lines import Truncation
from ledger.invariants import present, require
from ledger.journal import JournalEntry, canonical_json, format_timestamp
from ledger.limits import (
    inbox_batch_records_max,
    inbox_record_bytes_max,
    snapshot_interval_events,
)
from ledger.margin import watch_all
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal
from ledger.store import JournalConflict, LedgerStore, PersistenceError, PolicyDocument, Tracking
from ledger.watchlist import Watchlist

log = logging.getLogger("ledger.application")


class InboxItem(msgspec.Struct, frozen=True):
    """One inbox record as it arrived, with where it came from (a Struct: one is made per
    record, and a frozen dataclass costs several times more to make)."""

    value: bytes
    key: bytes | None
    topic: str
    partition: int | None
    offset: int | None
    truncation: Truncation | None = None  # `value` is only the first bytes of the record

    def describe(self) -> str:
        """Where the record came from, for a person: `ledger.inbox:0:1234`, `file:x.jsonl:7`."""
        partition = "" if self.partition is None else f"{self.partition}:"
        return f"{self.topic}:{partition}{self.offset}"


@dataclass
class BatchOutcome:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    journal: list[JournalEntry] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    # The document of the policy each `policy_adopted` of `journal` adopts, at its seq.
    policies: list[PolicyDocument] = field(default_factory=list)
    refused_by_reason: Counter[str] = field(default_factory=Counter)


class _Read(msgspec.Struct, frozen=True):
    """An inbox item decoded ahead of its decision, so that a batch asks the store about
    all its event ids at once: the record, or why it is refused (with its event id when
    one is readable), or the fault decoding it met (raised when its turn comes)."""

    decoded: DigestedRecord | None = None
    refusal: Refusal | None = None
    event_id: str | None = None
    fault: Exception | None = None

    @property
    def record(self) -> InboxRecordType | None:
        return None if self.decoded is None else self.decoded.record


class StaleBook(RuntimeError):
    """The in-memory book may hold decisions the store never recorded."""


class UndecidableRecord(RuntimeError):
    """Deciding one inbox record failed: a fault in the ledger, never the record's refusal.

    The records of its batch before it are recorded, with their position, and nothing
    after it; the book is rebuilt from the store. The writer stops here, every time, until
    the ledger is fixed or an operator moves past the record with `ledger inbox skip`
    (which records that it did so in the rejects)."""

    def __init__(self, item: InboxItem, error: Exception) -> None:
        super().__init__(
            f"the record at {item.describe()} could not be decided "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        )
        self.item = item
        self.error = error


# What a reject keeps of an oversized record: its first bytes, its length and its SHA-256.
reject_value_bytes_max = inbox_record_bytes_max


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
        store.catch_up_inputs_seen()
        self.replayed_events = 0  # journal events applied at the last start, after a snapshot
        self.snapshot_seq = 0  # the seq of this code's latest book snapshot (0: none used)
        self.desk = self._replay()
        self._keep_policy_document()
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
        with cyclic_collector_paused():
            outcome = self._decide(items, tracking)
            with self._rebuilt_on_store_fault():
                trades, deposits = snapshots.originals_booked(self.book)
                self.store.append(
                    outcome.journal,
                    outcome.rejects,
                    tracking,
                    trades,
                    deposits,
                    policies=outcome.policies,
                )
            self.book.new_inputs = {}  # the store has them now
            self.book.new_trades, self.book.new_deposits = {}, {}
            self._snapshot_when_due()
        return outcome

    def _decide(self, items: Sequence[InboxItem], tracking: Tracking | None) -> BatchOutcome:
        outcome = BatchOutcome()
        self.desk.pending = []
        reads = [self._read(item) for item in items]
        event_ids = {read.record.event_id for read in reads if read.record is not None}
        records = [read.record for read in reads]
        busted = {record.trade_id for record in records if isinstance(record, inbox.TradeBusted)}
        returned = {
            record.reference for record in records if isinstance(record, inbox.DepositReturned)
        }
        with self._rebuilt_on_store_fault():
            seen = self.store.inputs_seen(event_ids, self.book.last_seq)
            # The originals the batch's busts and returns name, booked before it (rare).
            self.book.trades = (
                self.store.trades_booked(busted, self.book.last_seq) if busted else {}
            )
            self.book.deposits = snapshots.deposits_booked(self.store, returned, self.book.last_seq)
        for index, (item, read) in enumerate(zip(items, reads, strict=True)):
            try:
                self._process_one(item, read, seen, outcome)
            except Exception as error:
                self._rebuild()
                self._record_before(items[:index], tracking)
                raise UndecidableRecord(item, error) from error
        outcome.journal = self.desk.pending
        return outcome

    def _snapshot_when_due(self) -> None:
        """Record a snapshot once the book stands `snapshot_events` events past this code's
        latest one: at start too, so that after an upgrade (no snapshot of this code) only
        the first start replays from seq 1, even on a store at rest. A snapshot only saves
        replay time: a store fault here is logged, not raised, since the batch itself is
        already recorded."""
        if self.book.last_seq - self.snapshot_seq < self.snapshot_events:
            return
        try:
            snapshots.take(self.store, self.book)
            self.snapshot_seq = self.book.last_seq
        except (PersistenceError, JournalConflict) as error:
            log.warning("snapshot at seq %s not recorded: %s", self.book.last_seq, error)

    def _record_before(self, items: Sequence[InboxItem], tracking: Tracking | None) -> None:
        """Record the records before an undecidable one, with the position of the last of
        them: the input then stands exactly before it, which is what a skip moves past."""
        if not items:
            return
        last_offset = items[-1].offset
        require(tracking is None or last_offset is not None, "a tracked batch has item offsets")
        before = None
        if tracking is not None and last_offset is not None:
            before = Tracking(tracking.application_name, last_offset)
        self.process(items, before)

    def skip(self, position: Tracking, item: InboxItem, reason: str) -> int:
        """Move the input `position` past a record without deciding it, recording that in
        the rejects as `skipped_by_operator`; returns the reject's number. Raises
        `TrackingConflict` when the position is already at or past it."""
        outcome = BatchOutcome()
        refusal = Refusal(
            ReasonCode.SKIPPED_BY_OPERATOR,
            f"an operator moved past this record without deciding it: {printable(reason)}",
        )
        self._reject(item, refusal, None, outcome)
        with self._rebuilt_on_store_fault():
            self.store.append([], outcome.rejects, position)
        return self.reject_count

    @contextmanager
    def _rebuilt_on_store_fault(self) -> Iterator[None]:
        """A store fault (or an interruption) may leave memory ahead of the store, or the
        store unreachable: rebuild the book from it before the fault goes on."""
        try:
            yield
        except BaseException:
            self._rebuild()
            raise

    def _rebuild(self) -> None:
        """Memory may hold decisions the store lacks: rebuild from the store, and if even
        that fails, refuse to decide anything more with this book."""
        self._stale = True
        self.desk = self._replay()
        self.reject_count = self.store.reject_count()
        self._stale = False

    def _read(self, item: InboxItem) -> _Read:
        if item.truncation is not None:
            length = item.truncation.length_bytes
            oversized = Refusal(
                ReasonCode.RECORD_TOO_LARGE,
                f"the record is {length} bytes; an inbox record may hold at most "
                f"{inbox_record_bytes_max} bytes",
            )
            return _Read(refusal=oversized)
        try:
            return _Read(decoded=decode_digested(item.value, self.policy))
        except Refusal as refusal:
            return _Read(refusal=refusal, event_id=readable_event_id(item.value))
        except Exception as fault:  # a fault of the ledger's: raised in the record's turn
            return _Read(fault=fault)

    def _process_one(
        self, item: InboxItem, read: _Read, seen_before: dict[str, str], outcome: BatchOutcome
    ) -> None:
        if read.fault is not None:
            raise read.fault
        if read.decoded is None:
            self._reject(
                item, present(read.refusal, "a read without record"), read.event_id, outcome
            )
            return
        record, digest = read.decoded.record, read.decoded.digest
        new_inputs = present(self.book.new_inputs, "the writer's book keeps its new inputs")
        seen = new_inputs.get(record.event_id) or seen_before.get(record.event_id)
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
        self._adopt_policy(outcome)
        decision = decide(self.desk, record)
        match decision:
            case Booked():
                outcome.accepted += 1
            case Rejected(refusal=refused) | Refused(refusal=refused):
                self._reject(item, refused, record.event_id, outcome)
            case _:
                assert_never(decision)

    def _keep_policy_document(self) -> None:
        """A store written before the documents of adopted policies were kept may hold a
        journal under this writer's policy and no document of it (a writer upgraded under
        the same policy adopts nothing new): keep it now at each seq that adopted it, so
        that its readers need no file for it (docs/views.md "Policies")."""
        policy, store = self.policy, self.store
        if self.book.policy_digest != policy.digest:
            return  # the next decision adopts it, its document kept in that transaction
        kept = {hashlib.sha256(document).hexdigest() for _, document in store.adopted_policies()}
        if policy.digest in kept:
            return
        require(
            hashlib.sha256(policy.document).hexdigest() == policy.digest,
            "a policy's document is the file its digest was taken of",
        )
        adoptions = [
            seq
            for seq in store.policy_adoptions()
            if adopted_at(store, seq).digest == policy.digest
        ]
        store.keep_policy_documents([(seq, policy.document) for seq in adoptions])
        log.info("kept policy document version=%s seqs=%s", policy.version, adoptions)

    def _adopt_policy(self, outcome: BatchOutcome) -> None:
        """Record the policy in the journal the first time a decision is taken under it, and
        its document in the store with it (a reader values that part of the journal with it)."""
        if self.book.policy_digest == self.policy.digest:
            return
        require(
            hashlib.sha256(self.policy.document).hexdigest() == self.policy.digest,
            "a policy's document is the file its digest was taken of",
        )
        adopted = self.desk.record(
            je.PolicyAdopted(
                recorded_at=self.desk.now_text,
                causation_id=self.desk.cause,
                version=self.policy.version,
                digest=self.policy.digest,
            )
        )
        outcome.policies.append((adopted.seq, self.policy.document))

    def _reject(
        self, item: InboxItem, refusal: Refusal, event_id: str | None, outcome: BatchOutcome
    ) -> None:
        self.reject_count += 1
        clock = self.book.clock
        reject = {
            "number": self.reject_count,
            "recorded_at": None if clock is None else format_timestamp(clock),
            "reason_code": str(refusal.reason_code),
            "detail": refusal.detail,
            "event_id": event_id,
            "topic": item.topic,
            "partition": item.partition,
            "offset": item.offset,
            **_kept_key(item.key),
            **_kept_value(item),
        }
        outcome.rejects.append(canonical_json(reject))
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
        """The book from the latest snapshot and the journal after it, recording in the
        store the client trades and deposits booked there, a page of the journal at a time."""
        book = snapshots.restore(self.store, writer=True)
        self.snapshot_seq = book.last_seq
        snapshots.replay_into(self.store, book, self.store.last_seq())
        self.replayed_events = book.last_seq - self.snapshot_seq
        book.new_inputs = {}
        desk = Desk(book=book, policy=self.policy, watchlist=Watchlist(self.policy))
        watch_all(desk)
        return desk


def _kept_key(key: bytes | None) -> dict[str, object]:
    """The refused record's Kafka key as a reject keeps it: its text, or, when it is not
    UTF-8, base64 with `key_encoding: "base64"` (written only then, so a reject of a text
    key reads as before). Read with replacement characters, its bytes were lost: upstream
    could not match the reject to its record, and the rejects topic was keyed otherwise."""
    if key is None:
        return {"key": None}
    text, encoding = _as_text(key, whole=True)
    return {"key": text} if encoding == "utf-8" else {"key": text, "key_encoding": encoding}


def _kept_value(item: InboxItem) -> dict[str, object]:
    """The refused value as a reject keeps it: whole, or, for a record over
    `reject_value_bytes_max`, its first bytes with the whole record's length and SHA-256."""
    truncation = item.truncation
    if truncation is None and len(item.value) > reject_value_bytes_max:
        truncation = Truncation(len(item.value), hashlib.sha256(item.value).hexdigest())
    kept = item.value[:reject_value_bytes_max]
    value, encoding = _as_text(kept, whole=truncation is None)
    fields: dict[str, object] = {"value": value, "value_encoding": encoding}
    if truncation is not None:
        fields["value_bytes"] = truncation.length_bytes
        fields["value_sha256"] = truncation.sha256
    return fields


_UTF8_SEQUENCE_BYTES_MAX = 4


def _as_text(value: bytes, *, whole: bool) -> tuple[str, str]:
    """UTF-8 text when the bytes are (a prefix may end inside a character: that is cut
    off), base64 otherwise."""
    for cut in range(1 if whole else _UTF8_SEQUENCE_BYTES_MAX):
        try:
            return value[: len(value) - cut].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            continue
    return base64.b64encode(value).decode("ascii"), "base64"
