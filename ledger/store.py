"""`LedgerStore`: the journal, the rejects and the Kafka positions in one store transaction.

Built on eventsourcing's process recorders (SQLite and PostgreSQL), used directly: no
mapper, transcoder, cipher or compressor touches a record, so a row's `state` is the
journal record's canonical JSON byte for byte. DESIGN.md "One sequencer, one journal":

- the journal is one stream, `JOURNAL_STREAM_ID`, with `originator_version` = `seq` and
  `topic` = the journal event type; the unique key on (originator_id, originator_version)
  makes a repeated `seq` impossible whatever the database;
- rejects are a second stream, `REJECTS_STREAM_ID`, with version = the reject `number`;
- a `Tracking` (input partition name, Kafka offset) is recorded in the same transaction,
  so a redelivered input books nothing: `append` raises `TrackingConflict`;
- book snapshots are a stream per version of the code that applies events
  (`snapshot_stream(code_digest)`), with version = the journal `seq` they stand at
  (`ledger.snapshots` writes and checks them; they are derived, never the truth). A stream
  per version lets an upgraded writer record its snapshot at a seq where older code
  recorded one (a store at rest);
- the document of every policy the journal adopted (its TOML file's bytes) is a stream too,
  `POLICIES_STREAM_ID`, with version = the seq of its `policy_adopted`, written in the
  transaction that journals it: a reader values each part of the journal with the policy
  in force there without being handed the files (a store written before this keeps none;
  its readers are given the files). The events table holds it, as it holds the snapshots
  and checkpoints: no other table, no migration, the roles' privileges as they are;
- signed checkpoints of the journal's end (`ledger.checkpoints`) are a fifth stream,
  `CHECKPOINTS_STREAM_ID`, with version = the checkpoint's number (1, 2, ... without gaps);
- the inputs seen (`INPUTS_SEEN_TABLE`: event id, input digest, the seq of its first journal
  event) are a table of their own, found by event id (on SQLite its rows are kept in seq
  order, on PostgreSQL keyed by event id), its rows taken from the journal
  records of each `append` and written in the same transaction: a writer asks it which of
  a batch's event ids were decided before (`inputs_seen`), and no book keeps them in
  memory. A store written before the table existed is filled from its journal when a writer
  opens it (`catch_up_inputs_seen`);
- the client trades booked (`TRADES_TABLE`: trade id, the seq of its journal event, the
  encoded `BookedTrade` a bust needs) are a table too, written in the journal's transaction
  from what the writer's book kept while deciding (`append(..., trades=)`), and filled by a
  writer's start from the events it replays (`record_originals`): a bust's original is
  asked with its batch's one lookup (`trades_booked`), and no book keeps every trade in
  memory. So are the client deposits with a reference (`DEPOSITS_TABLE`: reference, the seq
  of its `deposit_credited`, the original a return reverses: `deposits_booked`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias, TypeVar, cast
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import msgspec
import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteCursor, SQLiteFactory, SQLiteProcessRecorder

from ledger import limits, store_privileges
from ledger.invariants import InvariantViolation, require
from ledger.journal import JournalEntry
from ledger.rejections import decode_reject_record
from ledger.store_url import PostgresLocation, StoreUrlError, parse_postgres_url

# The store's interface: the position type and the faults a caller may meet, so that no
# module outside this adapter imports eventsourcing's persistence layer.
__all__ = [
    "CHECKPOINTS_STREAM_ID",
    "JOURNAL_STREAM_ID",
    "POLICIES_STREAM_ID",
    "REJECTS_STREAM_ID",
    "InterfaceError",
    "JournalConflict",
    "LedgerStore",
    "NotALedgerStore",
    "OperationalError",
    "PersistenceError",
    "PolicyDocument",
    "ProgrammingError",
    "StoreNotPermitted",
    "StoreUrlError",
    "Tracking",
    "TrackingConflict",
]

JOURNAL_STREAM_ID: UUID = uuid5(NAMESPACE_URL, "urn:collateral-ledger:journal")
REJECTS_STREAM_ID: UUID = uuid5(NAMESPACE_URL, "urn:collateral-ledger:rejects")
CHECKPOINTS_STREAM_ID: UUID = uuid5(NAMESPACE_URL, "urn:collateral-ledger:checkpoints")
POLICIES_STREAM_ID: UUID = uuid5(NAMESPACE_URL, "urn:collateral-ledger:policies")
REJECT_TOPIC = "reject"  # the `topic` column of reject rows: they have no event type
SNAPSHOT_TOPIC = "book_snapshot"
CHECKPOINT_TOPIC = "journal_checkpoint"
POLICY_TOPIC = "policy_document"
_POLICY_ADOPTED = "policy_adopted"  # the journal event type a policy document belongs to
# eventsourcing keeps its tracking-table migration marker under this name.
_RESERVED_TRACKING_NAME = "__migration__"
_SQLITE_SYNCHRONOUS_FULL = 2


def snapshot_stream(code_digest: str) -> UUID:
    """The stream of the book snapshots written by the code of `code_digest`. (Stores written
    before streams per version keep theirs under `urn:collateral-ledger:snapshots`, and
    their register records under `urn:collateral-ledger:snapshot-registers...`, unread.)"""
    return uuid5(NAMESPACE_URL, f"urn:collateral-ledger:snapshots:{code_digest}")


StoreFactory: TypeAlias = SQLiteFactory | PostgresFactory


class NotALedgerStore(StoreUrlError):
    """The URL names no ledger store: a missing file, an empty or foreign file, a database
    without the ledger's tables. Nothing was created."""


class StoreNotPermitted(StoreUrlError):
    """The URL's role may not use the store's schema or tables: a setting to fix, never an
    outage to wait out."""


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


class TrackingConflict(Exception):
    """The input position was already recorded: the batch was applied before, nothing was
    written now. Not a failure: acknowledge the input and move on."""

    def __init__(self, tracking: Tracking, recorded_id: int) -> None:
        super().__init__(
            f"{tracking.application_name} position {tracking.notification_id} already "
            f"applied (recorded up to {recorded_id})"
        )
        self.tracking = tracking
        self.recorded_id = recorded_id


class JournalConflict(InvariantViolation):
    """A journal `seq` or reject number was already recorded: two writers, or a sequencer
    bug. Nothing was written; the writer must stop."""


class _RecordHead(msgspec.Struct, frozen=True):
    seq: int
    type: str
    causation_id: str = ""
    input_digest: str | None = None  # on the first journal event of each decided input


_decode_record_head = msgspec.json.Decoder(_RecordHead).decode

# One decided input: its event id, its input digest, the seq of its first journal event.
InputSeen: TypeAlias = tuple[str, str, int]
INPUTS_SEEN_TABLE = store_privileges.INPUTS_SEEN_TABLE
# Event ids or trade ids asked per statement (SQLite binds at most 32,766 values to one).
lookup_ids_max = 1_000
# One client trade booked: its trade id, the seq of its journal event, its `BookedTrade`.
TradeBooked: TypeAlias = tuple[str, int, bytes]
TRADES_TABLE = store_privileges.TRADES_TABLE
# One client deposit booked under a reference: the reference, the seq of its journal event.
DepositBooked: TypeAlias = tuple[str, int]
DEPOSITS_TABLE = store_privileges.DEPOSITS_TABLE
# One adopted policy's document: the seq of its `policy_adopted`, the policy file's bytes.
PolicyDocument: TypeAlias = tuple[int, bytes]


class _LedgerTablesRecorder(Protocol):
    """What both dialects' journal recorders add to eventsourcing's: the inputs-seen and
    trades and deposits tables."""

    def select_inputs_seen(self, event_ids: Sequence[str], until_seq: int) -> dict[str, str]: ...

    def select_records(
        self, stream: UUID, after: int, limit: int
    ) -> Sequence[tuple[int, str, bytes]]: ...

    def select_states(self, stream: UUID, after: int, limit: int) -> list[bytes]: ...

    def last_input_seen_seq(self) -> int: ...

    def select_versions_of_topic(self, stream: UUID, topic: str, after: int) -> list[int]: ...

    def select_trades(self, trade_ids: Sequence[str], until_seq: int) -> dict[str, bytes]: ...

    def select_deposits(self, references: Sequence[str], until_seq: int) -> dict[str, int]: ...


# SQLite's statements on the inputs-seen table (its name a constant, never an input). Its
# rows are keyed by seq, so each batch's rows go at the table's end, and found by event id
# through an index holding only the id: keyed by the id (upstream's ids arrive in no order),
# each batch of 1,000 rows dirtied most of the table's pages, and cost the append about 10
# us of CPU per journal event, about 5 with this layout (docs/performance.md).
_SQLITE_INPUTS_SEEN = (
    f"CREATE TABLE IF NOT EXISTS {INPUTS_SEEN_TABLE} (seq INTEGER PRIMARY KEY, "
    "event_id TEXT NOT NULL, input_digest TEXT NOT NULL)",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {INPUTS_SEEN_TABLE}_event_id "
    f"ON {INPUTS_SEEN_TABLE} (event_id)",
)
# The index only the earlier layout had (keyed by event id, rows indexed by seq): a writer
# opening a store that has it moves its rows to this layout (`_create_inputs_seen`).
_SQLITE_EARLIER_INPUTS_SEEN_INDEX = f"{INPUTS_SEEN_TABLE}_seq"
_SQLITE_EARLIER_INPUTS_SEEN_MOVE = (
    f"ALTER TABLE {INPUTS_SEEN_TABLE} RENAME TO {INPUTS_SEEN_TABLE}_earlier",
    _SQLITE_INPUTS_SEEN[0],
    f"INSERT INTO {INPUTS_SEEN_TABLE} (seq, event_id, input_digest) "  # noqa: S608
    f"SELECT seq, event_id, input_digest FROM {INPUTS_SEEN_TABLE}_earlier ORDER BY seq",
    _SQLITE_INPUTS_SEEN[1],  # after the rows: one sort instead of an insert per row
    f"DROP TABLE {INPUTS_SEEN_TABLE}_earlier",
)
_SQLITE_INSERT_INPUT = (
    f"INSERT INTO {INPUTS_SEEN_TABLE} (event_id, input_digest, seq) VALUES (?, ?, ?) "  # noqa: S608
    "ON CONFLICT (event_id) DO NOTHING"
)
_SQLITE_SELECT_INPUTS = (
    f"SELECT event_id, input_digest FROM {INPUTS_SEEN_TABLE} WHERE seq <= ? AND event_id IN "  # noqa: S608
)
_SQLITE_LAST_INPUT_SEQ = f"SELECT MAX(seq) AS seq FROM {INPUTS_SEEN_TABLE}"  # noqa: S608
# The trades table: looked up by trade id only (a bust names one), so no index on seq.
_SQLITE_TRADES = (
    f"CREATE TABLE IF NOT EXISTS {TRADES_TABLE} (trade_id TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL, trade BLOB NOT NULL) WITHOUT ROWID",
)
# The first booking under a trade id is the one a bust reverses: a later one is not kept.
_SQLITE_INSERT_TRADE = (
    f"INSERT INTO {TRADES_TABLE} (trade_id, seq, trade) VALUES (?, ?, ?) "  # noqa: S608
    "ON CONFLICT (trade_id) DO NOTHING"
)
_SQLITE_SELECT_TRADES = (
    f"SELECT trade_id, trade FROM {TRADES_TABLE} WHERE seq <= ? AND trade_id IN "  # noqa: S608
)
_SQLITE_DEPOSITS = (
    f"CREATE TABLE IF NOT EXISTS {DEPOSITS_TABLE} (reference TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL) WITHOUT ROWID",
)
_SQLITE_INSERT_DEPOSIT = (
    f"INSERT INTO {DEPOSITS_TABLE} (reference, seq) VALUES (?, ?) "  # noqa: S608
    "ON CONFLICT (reference) DO NOTHING"
)
_SQLITE_SELECT_DEPOSITS = (
    f"SELECT reference, seq FROM {DEPOSITS_TABLE} WHERE seq <= ? AND reference IN "  # noqa: S608
)


_SQLITE_LEDGER_TABLES = (INPUTS_SEEN_TABLE, TRADES_TABLE, DEPOSITS_TABLE)


class SQLiteJournalRecorder(SQLiteProcessRecorder):
    """eventsourcing's SQLite process recorder, writing the inputs seen and the trades and
    deposits booked in the transaction of the journal records they come from (the
    `inputs_seen`, `trades` and `deposits` arguments of `insert_events`)."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *_SQLITE_TRADES,
            *_SQLITE_DEPOSITS,
        ]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        _create_inputs_seen(c)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The rows of eventsourcing's `SQLiteProcessRecorder._insert_events`, the events in
        one `executemany` rather than a statement per row that reads back its rowid (the
        notification ids it returns, which nothing of the ledger reads), then the
        position, then the ledger's tables."""
        hex_ids: dict[UUID | str, str] = {}  # a UUID's `hex` is computed on each read
        c.executemany(
            self.insert_events_statement,
            [
                (
                    hex_ids.get(s.originator_id) or hex_ids.setdefault(s.originator_id, _hex(s)),
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        for argument, insert in (
            ("inputs_seen", _SQLITE_INSERT_INPUT),
            ("trades", _SQLITE_INSERT_TRADE),
            ("deposits", _SQLITE_INSERT_DEPOSIT),
        ):
            rows: Sequence[tuple[Any, ...]] = kwargs.get(argument, ())
            if rows:
                c.executemany(insert, rows)
        return None

    def select_trades(self, trade_ids: Sequence[str], until_seq: int) -> dict[str, bytes]:
        rows = self._select(_SQLITE_SELECT_TRADES, trade_ids, until_seq)
        return {row[0]: bytes(row[1]) for row in rows}

    def select_deposits(self, references: Sequence[str], until_seq: int) -> dict[str, int]:
        rows = self._select(_SQLITE_SELECT_DEPOSITS, references, until_seq)
        return {row[0]: int(row[1]) for row in rows}

    def _select(self, query: str, keys: Sequence[str], until_seq: int) -> list[Any]:
        """The rows of `query` (ending in `IN `) for `keys`, as of `until_seq`."""
        marks = ", ".join("?" * len(keys))
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"{query}({marks})", [until_seq, *keys])
            return list(c.fetchall())

    def select_records(self, stream: UUID, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to `limit` (version, topic, state) rows of `stream` after version `after`, in
        order: as `select_events` without building a `StoredEvent` and parsing its UUID per
        row, which was half of reading the journal (docs/performance.md)."""
        return list(self._select_page("originator_version, topic, state", stream, after, limit))

    def select_states(self, stream: UUID, after: int, limit: int) -> list[bytes]:
        """The records (states) alone of `select_records`: the version and topic columns
        were a third of reading the journal's rows (SQLite's instructions per row)."""
        return [state for (state,) in self._select_page("state", stream, after, limit)]

    def _select_page(self, columns: str, stream: UUID, after: int, limit: int) -> list[Any]:
        statement = (
            f"SELECT {columns} FROM {self.events_table_name} "  # noqa: S608  # constants
            "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version "
            "LIMIT ?"
        )
        with self.datastore.transaction(commit=False) as c:
            # Plain tuples: a `sqlite3.Row` per row (the adapter's row factory) cost a
            # replay from the store about 8% of its CPU.
            c.sqlite_cursor.row_factory = None
            c.execute(statement, (stream.hex, after, limit))
            rows: list[Any] = c.fetchall()
            return rows

    def select_versions_of_topic(self, stream: UUID, topic: str, after: int) -> list[int]:
        """The versions after `after` of `stream`'s rows of `topic`, in order (the stream
        scanned from `after`)."""
        statement = (
            f"SELECT originator_version FROM {self.events_table_name} "  # noqa: S608
            "WHERE originator_id = ? AND originator_version > ? AND topic = ? "
            "ORDER BY originator_version"
        )
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None
            c.execute(statement, (stream.hex, after, topic))
            return [int(version) for (version,) in c.fetchall()]

    def select_inputs_seen(self, event_ids: Sequence[str], until_seq: int) -> dict[str, str]:
        marks = ", ".join("?" * len(event_ids))
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"{_SQLITE_SELECT_INPUTS}({marks})", [until_seq, *event_ids])
            return {row["event_id"]: row["input_digest"] for row in c.fetchall()}

    def last_input_seen_seq(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_LAST_INPUT_SEQ)
            return int(c.fetchone()["seq"] or 0)


def _hex(event: StoredEvent) -> str:
    """The stream id as eventsourcing's SQLite recorder writes it."""
    stream = event.originator_id
    return stream.hex if isinstance(stream, UUID) else stream


def _create_inputs_seen(c: SQLiteCursor) -> None:
    """The inputs-seen table, in the writer's opening transaction: made when missing, and
    on a store written before the inputs seen were keyed by seq its rows moved to this
    layout (a reader reads either layout).

    After the other tables' statements, never before them: its look at the schema is a
    read, and a transaction that has read can no longer write once another writer has
    committed (SQLite refuses it at once, "database is locked", without waiting), where a
    first statement that writes (a new store's first table) waits for the lock. Looking
    first made a writer's open fail beside another creating the same store."""
    c.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
        (_SQLITE_EARLIER_INPUTS_SEEN_INDEX,),
    )
    statements = _SQLITE_EARLIER_INPUTS_SEEN_MOVE if c.fetchone() is not None else ()
    for statement in (*statements, *_SQLITE_INPUTS_SEEN):
        c.execute(statement)


SQLITE_RECORDER_TOPIC = f"{__name__}:{SQLiteJournalRecorder.__qualname__}"


class LedgerStore:
    """The ledger's store: open with `LedgerStore.open(url)`, one writer per journal."""

    def __init__(self, factory: StoreFactory, recorder: ProcessRecorder, description: str) -> None:
        self._factory = factory
        self._recorder = recorder
        self._tables = cast(_LedgerTablesRecorder, recorder)  # both recorders are the ledger's
        self._description = description
        self._probe: sqlite3.Connection | None = None  # `_read_connection`, opened on first use

    @classmethod
    def open(cls, url: str, *, read_only: bool = False, reach_timeout_s: int | None = None) -> Self:
        """Open (and, unless `read_only`, create when missing) the store at `url`:

        `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:`
        (private to this instance), `postgresql://user[:password]@host[:port]/dbname`
        with an optional `?schema=name` (created when missing; default `public`).

        `read_only` is for the commands that only read: a SQLite file is opened read-only
        (and works on a read-only file system), and a store that does not exist or holds
        no ledger is `NotALedgerStore` instead of a new empty store. A file that exists but
        is empty or not SQLite is refused in both modes: it is never a new store.

        `reach_timeout_s` is for a reader that must answer while PostgreSQL is down (the
        API): each read waits that many seconds for a connection and is tried once, where
        the default waits `postgres_connect_timeout_s` and tries 10 times (about 80 s). A
        SQLite file is always reached: it is ignored there.
        """
        require(
            reach_timeout_s is None or read_only,
            "only a reader gives up on an unreachable store; a writer waits for it",
        )
        factory, description = open_factory(
            url, read_only=read_only, reach_timeout_s=reach_timeout_s
        )
        try:
            recorder = _process_recorder(factory)
            if isinstance(factory, PostgresFactory) and not read_only:
                _prepare_postgres(factory, recorder, description)
            if read_only:
                _require_ledger_tables(factory, recorder, description)
        except ProgrammingError as error:
            factory.close()
            # Never an outage: waiting would not change the role's rights.
            raise StoreNotPermitted(
                f"{_first_line(error)}: this role may not use the store "
                "(the owner's first open grants ledger_writer and ledger_reader; "
                "docs/security.md)"
            ) from None
        except BaseException:
            factory.close()
            raise
        return cls(factory, recorder, description)

    def describe(self) -> str:
        """The store's URL for logs, without any password."""
        return self._description

    def append(
        self,
        journal: Sequence[JournalEntry],
        rejects: Sequence[bytes],
        tracking: Tracking | None,
        trades: Sequence[TradeBooked] = (),
        deposits: Sequence[DepositBooked] = (),
        *,
        policies: Sequence[PolicyDocument] = (),
    ) -> None:
        """Record journal entries, rejects, the input position, the client trades and
        deposits (with a reference) the journal entries book and the documents of the
        policies they adopt in ONE transaction.

        `journal` continues the journal without a gap; `rejects` are reject records whose
        `number` continues the rejects. Raises `TrackingConflict` when `tracking` is at or
        below the position already recorded for its name (nothing is written), and
        `JournalConflict` when a `seq` or reject number is already taken.
        """
        if tracking is not None:
            require(
                tracking.application_name != _RESERVED_TRACKING_NAME,
                f"tracking name {_RESERVED_TRACKING_NAME!r} is eventsourcing's own",
            )
        journal_rows, inputs = self._journal_rows(journal)
        stored = journal_rows + self._reject_rows(rejects) + _policy_rows(journal, policies)
        if not stored and tracking is None:
            return
        try:
            self._recorder.insert_events(
                stored, tracking=tracking, inputs_seen=inputs, trades=trades, deposits=deposits
            )
        except IntegrityError as error:
            raise self._conflict(error, tracking) from error

    def _journal_rows(
        self, journal: Sequence[JournalEntry]
    ) -> tuple[list[StoredEvent], list[InputSeen]]:
        """The journal's rows, checked to continue it, and the inputs its records decided."""
        if not journal:
            return [], []
        first_seq = journal[0].seq
        # A gap is a sequencer bug the database cannot see; a repeat it refuses itself,
        # which lets a redelivered batch surface as TrackingConflict.
        last_seq = self.last_seq()
        require(first_seq <= last_seq + 1, f"seq {first_seq} would leave a gap after {last_seq}")
        rows, inputs = [], []
        for offset, entry in enumerate(journal):
            head = _decode_record_head(entry.record)
            if not (entry.seq == first_seq + offset == head.seq and head.type == entry.type):
                # Built only on failure: an f-string per record costs the hot path.
                raise InvariantViolation(
                    f"journal entry seq {entry.seq}, type {entry.type!r} (record says "
                    f"{head.seq}, {head.type!r}) breaks the batch's run from {first_seq}"
                )
            rows.append(StoredEvent(JOURNAL_STREAM_ID, entry.seq, entry.type, entry.record))
            if head.input_digest is not None:
                inputs.append((head.causation_id, head.input_digest, head.seq))
        return rows, inputs

    def inputs_seen(self, event_ids: Collection[str], until_seq: int) -> dict[str, str]:
        """The input digest of each of `event_ids` that a journal record up to `until_seq`
        decided; absent: never decided (a refused input is not seen)."""
        return _looked_up(self._tables.select_inputs_seen, event_ids, until_seq)

    def catch_up_inputs_seen(self) -> int:
        """Fill the inputs-seen table from the journal records after the last input it holds
        (all of them, once, on a store written before the table existed). A writer calls it
        at start; returns how many journal records were read."""
        after = read = self._tables.last_input_seen_seq()
        while entries := self.read_journal(after):
            inputs = []
            for entry in entries:
                head = _decode_record_head(entry.record)
                if head.input_digest is not None:
                    inputs.append((head.causation_id, head.input_digest, head.seq))
            if inputs:
                self._recorder.insert_events([], inputs_seen=inputs)
            after = entries[-1].seq
        return after - read

    def trades_booked(self, trade_ids: Collection[str], until_seq: int) -> dict[str, bytes]:
        """The encoded `BookedTrade` of each of `trade_ids` that a journal record up to
        `until_seq` booked (its first booking); absent: never booked as a client trade."""
        return _looked_up(self._tables.select_trades, trade_ids, until_seq)

    def deposits_booked(self, references: Collection[str], until_seq: int) -> dict[str, int]:
        """The seq of the `deposit_credited` that booked each of `references` up to
        `until_seq` (its first booking); absent: never booked as a client deposit."""
        return _looked_up(self._tables.select_deposits, references, until_seq)

    def record_originals(
        self, trades: Sequence[TradeBooked], deposits: Sequence[DepositBooked]
    ) -> None:
        """Record client trades and deposits the journal booked already (a writer's start
        records those of the events it replays: all of them, once, on a store written
        before the tables existed); a trade id or reference recorded already keeps its row."""
        if trades or deposits:
            self._recorder.insert_events([], trades=trades, deposits=deposits)

    def _reject_rows(self, rejects: Sequence[bytes]) -> list[StoredEvent]:
        if not rejects:
            return []
        first_number = decode_reject_record(rejects[0]).number
        last_number = self.reject_count()
        require(
            first_number <= last_number + 1,
            f"reject number {first_number} would leave a gap after {last_number}",
        )
        rows = []
        for offset, record in enumerate(rejects):
            number = decode_reject_record(record).number
            if number != first_number + offset:
                raise InvariantViolation(
                    f"reject number {number} breaks the batch's run from {first_number}"
                )
            rows.append(StoredEvent(REJECTS_STREAM_ID, number, REJECT_TOPIC, record))
        return rows

    def _conflict(self, error: IntegrityError, tracking: Tracking | None) -> Exception:
        """Tell "already applied" (the position is recorded) from a sequencer bug."""
        if tracking is not None:
            recorded = self._recorder.max_tracking_id(tracking.application_name)
            if recorded is not None and recorded >= tracking.notification_id:
                return TrackingConflict(tracking, recorded)
        return JournalConflict(f"journal seq or reject number already recorded: {error}")

    def read_journal(
        self, after_seq: int = 0, limit: int = limits.journal_read_batch_events_max
    ) -> list[JournalEntry]:
        """Up to `limit` journal entries after `after_seq`, in seq order, gap-free."""
        rows = self._journal_page(after_seq, limit)
        return [JournalEntry(seq, topic, record) for seq, topic, record in rows]

    def read_journal_records(
        self, after_seq: int = 0, limit: int = limits.journal_read_batch_events_max
    ) -> list[bytes]:
        """The records of `read_journal`, for a replay that decodes them and applies them
        to a `Book`, whose `apply` refuses any seq but the next (so a gap is refused where
        the records are applied, as `read_journal` refuses it where it reads): neither an
        entry per record nor the seq and type columns read (docs/performance.md)."""
        require(
            0 < limit <= limits.journal_read_batch_events_max,
            f"read limit {limit} outside 1..{limits.journal_read_batch_events_max}",
        )
        return self._tables.select_states(JOURNAL_STREAM_ID, after_seq, limit)

    def _journal_page(self, after_seq: int, limit: int) -> Sequence[tuple[int, str, bytes]]:
        """Up to `limit` journal rows (seq, type, record) after `after_seq`, gap-free."""
        require(
            0 < limit <= limits.journal_read_batch_events_max,
            f"read limit {limit} outside 1..{limits.journal_read_batch_events_max}",
        )
        rows = self._tables.select_records(JOURNAL_STREAM_ID, after_seq, limit)
        # Seqs are unique and read in ascending order: the first and the last in place
        # means none is missing between them.
        if rows:
            first, last = rows[0][0], rows[-1][0]
            require(
                first == after_seq + 1 and last == after_seq + len(rows),
                f"journal gap: seqs {first}..{last} read where "
                f"{after_seq + 1}..{after_seq + len(rows)} belong",
            )
        return rows

    def iter_journal(self, after_seq: int = 0) -> Iterator[JournalEntry]:
        """Every journal entry after `after_seq`, read a bounded page at a time."""
        while entries := self.read_journal(after_seq):
            yield from entries
            after_seq = entries[-1].seq

    def last_seq(self) -> int:
        """The journal's last `seq`; 0 when it is empty."""
        return self._numbered_count(JOURNAL_STREAM_ID)

    def adopted_policies(self) -> list[PolicyDocument]:
        """The document of every policy the journal adopted, with the seq of its
        `policy_adopted`, in seq order (none on a store written before they were kept)."""
        found: list[PolicyDocument] = []
        while page := self._tables.select_records(
            POLICIES_STREAM_ID, found[-1][0] if found else 0, limits.journal_read_batch_events_max
        ):
            found.extend((seq, document) for seq, _, document in page)
        return found

    def policy_adoptions(self, after_seq: int = 0) -> list[int]:
        """The seq of every `policy_adopted` of the journal after `after_seq` (a scan of the
        journal's rows from there, their type alone: a writer's start on a store that keeps
        no document of its policy; a read of one account at a past seq)."""
        return self._tables.select_versions_of_topic(JOURNAL_STREAM_ID, _POLICY_ADOPTED, after_seq)

    def keep_policy_documents(self, documents: Sequence[PolicyDocument]) -> None:
        """Keep the documents of policies the journal adopted before the store kept them (a
        seq already keeping one is left as it is)."""
        for seq, document in documents:
            row = StoredEvent(POLICIES_STREAM_ID, seq, POLICY_TOPIC, document)
            with contextlib.suppress(IntegrityError):  # another writer's start kept it
                self._recorder.insert_events([row])

    def read_rejects(
        self, after: int = 0, limit: int = limits.journal_read_batch_events_max
    ) -> list[bytes]:
        """Up to `limit` reject records after reject number `after`, in number order."""
        return self._read_numbered(REJECTS_STREAM_ID, after, limit)

    def reject_count(self) -> int:
        """How many rejects are recorded (they are numbered 1, 2, … without gaps)."""
        return self._numbered_count(REJECTS_STREAM_ID)

    def append_snapshot(self, seq: int, code_digest: str, book: bytes) -> None:
        """Record a book snapshot written by the code of `code_digest` at journal `seq`.
        Raises `JournalConflict` when that code's stream has one at `seq` already."""
        require(0 < seq <= self.last_seq(), f"a snapshot at seq {seq} is beyond the journal")
        row = StoredEvent(snapshot_stream(code_digest), seq, SNAPSHOT_TOPIC, book)
        try:
            self._recorder.insert_events([row])
        except IntegrityError as error:
            raise JournalConflict(f"a snapshot at seq {seq} is already recorded") from error

    def snapshot_at_or_before(
        self, code_digest: str, seq: int | None = None
    ) -> tuple[int, bytes] | None:
        """The latest book snapshot of `code_digest` at or before `seq` (default: the
        latest), with its seq."""
        stream = snapshot_stream(code_digest)
        rows = self._recorder.select_events(stream, lte=seq, desc=True, limit=1)
        return (rows[0].originator_version, rows[0].state) if rows else None

    def read_snapshots(
        self, code_digest: str, after_seq: int = 0, limit: int = 1
    ) -> list[tuple[int, bytes]]:
        """Up to `limit` book snapshots of `code_digest` after journal seq `after_seq`, in
        seq order."""
        stream = snapshot_stream(code_digest)
        rows = self._recorder.select_events(stream, gt=after_seq, limit=limit)
        return [(row.originator_version, row.state) for row in rows]

    def append_checkpoint(self, number: int, checkpoint: bytes) -> None:
        """Record signed checkpoint `number` (the next after `checkpoint_count()`). Raises
        `JournalConflict` when that number is taken: two writers."""
        require(
            number == self.checkpoint_count() + 1,
            f"checkpoint number {number} does not follow {self.checkpoint_count()}",
        )
        row = StoredEvent(CHECKPOINTS_STREAM_ID, number, CHECKPOINT_TOPIC, checkpoint)
        try:
            self._recorder.insert_events([row])
        except IntegrityError as error:
            raise JournalConflict(f"checkpoint {number} is already recorded") from error

    def read_checkpoints(
        self, after: int = 0, limit: int = limits.journal_read_batch_events_max
    ) -> list[bytes]:
        """Up to `limit` signed checkpoints after checkpoint number `after`, in order."""
        return self._read_numbered(CHECKPOINTS_STREAM_ID, after, limit)

    def checkpoint_count(self) -> int:
        """How many signed checkpoints are recorded (numbered 1, 2, ... without gaps)."""
        return self._numbered_count(CHECKPOINTS_STREAM_ID)

    def _read_numbered(self, stream: UUID, after: int, limit: int) -> list[bytes]:
        """Up to `limit` records of a numbered stream after number `after`, in order."""
        require(
            0 < limit <= limits.journal_read_batch_events_max,
            f"read limit {limit} outside 1..{limits.journal_read_batch_events_max}",
        )
        return self._tables.select_states(stream, after, limit)

    def _numbered_count(self, stream: UUID) -> int:
        """The last number of a numbered stream (1, 2, … without gaps); 0 when empty."""
        rows = self._recorder.select_events(stream, desc=True, limit=1)
        return rows[0].originator_version if rows else 0

    def max_tracking_id(self, name: str) -> int | None:
        """The last input position recorded under `name` (`ledger.inbox:0`); None if none."""
        return self._recorder.max_tracking_id(name)

    def commit_marker(self) -> int | None:
        """A number that changes whenever a transaction has been committed to the store since
        the last call, by any connection of any process; None when the store cannot tell
        without reading it (PostgreSQL, a SQLite store in memory): then read.

        SQLite's `data_version` of a connection of its own that never writes: a few
        microseconds, against a tenth of a millisecond or more for a read of the journal's
        end, which is what the API's pre-trade check did before each check to see nothing
        new."""
        probe = self._read_connection()
        if probe is None:
            return None
        row = probe.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def input_seen(self, event_id: str, until_seq: int) -> str | None:
        """`inputs_seen` of one event id, for a reader asking one at a time (the pre-trade
        check): on a SQLite file, read on the store's own read connection, not through the
        store adapter's pooled transaction, which cost a check about 50 us of its 420."""
        reader = self._read_connection()
        if reader is None:
            return self.inputs_seen((event_id,), until_seq).get(event_id)
        rows = reader.execute(f"{_SQLITE_SELECT_INPUTS}(?)", (until_seq, event_id)).fetchall()
        return str(rows[0][1]) if rows else None

    def role_may_append(self) -> bool:
        """Whether the PostgreSQL role of the store's URL may append to the journal (the
        writer's and the owner's may); False on SQLite, which has no roles (the file's
        permissions are its only rights)."""
        if not isinstance(self._factory, PostgresFactory):
            return False
        return store_privileges.may_append(self._factory)

    def answers(self) -> bool:
        """Whether the store answers a trivial query now, asked on a connection of its own
        made for the question, within `store_probe_timeout_s`: for `ledger run`'s /health,
        which would otherwise learn of a PostgreSQL outage only when a batch waits out the
        pool (10 s, and never while the inbox is idle). Never the pool's connections: a
        probe must not wait behind the writer nor hold a connection it needs. A SQLite
        file is on the writer's own disk: always True."""
        if not isinstance(self._factory, PostgresFactory):
            return True
        # The pool's own connection arguments (its kwargs are a dict: `_postgres_factory`).
        arguments = cast(dict[str, Any], self._factory.datastore.pool.kwargs)
        try:
            with psycopg.connect(
                host=arguments["host"],
                port=arguments["port"],
                dbname=arguments["dbname"],
                user=arguments["user"],
                password=arguments["password"],
                connect_timeout=store_probe_timeout_s,
                # The server ends the query, should it take longer: the probe never waits.
                options=f"-c statement_timeout={store_probe_timeout_s * 1_000}",
                autocommit=True,
            ) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _read_connection(self) -> sqlite3.Connection | None:
        """A connection of its own to a SQLite file, that never writes (opened on first
        use); None for PostgreSQL and a SQLite store in memory."""
        if self._probe is None:
            if not isinstance(self._factory, SQLiteFactory):
                return None
            pool = self._factory.datastore.pool
            if pool.is_sqlite_memory_mode:
                return None
            self._probe = sqlite3.connect(pool.db_name, uri=True, check_same_thread=False)
        return self._probe

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._factory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_Found = TypeVar("_Found")


def _policy_rows(
    journal: Sequence[JournalEntry], policies: Sequence[PolicyDocument]
) -> list[StoredEvent]:
    """The rows of the policy documents, each at the seq of a `policy_adopted` of `journal`."""
    if not policies:
        return []
    adopted = {entry.seq for entry in journal if entry.type == _POLICY_ADOPTED}
    rows = []
    for seq, document in policies:
        require(seq in adopted, f"a policy document at seq {seq}, where no policy_adopted is")
        rows.append(StoredEvent(POLICIES_STREAM_ID, seq, POLICY_TOPIC, document))
    return rows


def _looked_up(
    select: Callable[[Sequence[str], int], dict[str, _Found]],
    keys: Collection[str],
    until_seq: int,
) -> dict[str, _Found]:
    """`select` of `keys` as of `until_seq`, asked a bounded chunk of keys at a time."""
    ids = list(keys)
    found: dict[str, _Found] = {}
    for start in range(0, len(ids), lookup_ids_max):
        found.update(select(ids[start : start + lookup_ids_max], until_seq))
    return found


def _process_recorder(factory: StoreFactory) -> ProcessRecorder:
    try:
        return factory.process_recorder()
    except IntegrityError:
        # Another process created the tables and their migration marker between this one's
        # look and its insert (two commands opening a new SQLite store at once): the store
        # is made now, and a second look finds it so.
        return factory.process_recorder()


def open_factory(
    url: str, *, read_only: bool = False, reach_timeout_s: int | None = None
) -> tuple[StoreFactory, str]:
    """The eventsourcing factory for `url`, every setting spelled out, and the URL as it
    may be logged. Used by `LedgerStore.open` and the recorder benchmark."""
    if url.startswith("sqlite:///"):
        return _sqlite_factory(url.removeprefix("sqlite:///"), read_only=read_only)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_factory(url, reach_timeout_s=reach_timeout_s)
    scheme = url.split(":", maxsplit=1)[0]
    msg = f"store URL must start with sqlite:/// or postgresql://, got {scheme!r}"
    raise StoreUrlError(msg)


def _sqlite_factory(path_text: str, *, read_only: bool) -> tuple[SQLiteFactory, str]:
    if not path_text:
        raise StoreUrlError("sqlite:/// needs a path or :memory:")
    if path_text == ":memory:" and read_only:
        raise NotALedgerStore("sqlite:///:memory: is a new, empty store: reading needs a file")
    if path_text == ":memory:":
        # A named shared-cache memory database: every pooled connection of this store
        # sees the same data (a bare ":memory:" would give each connection its own).
        database = f"file:ledger-{uuid4().hex}?mode=memory&cache=shared"
        description = "sqlite:///:memory:"
    else:
        path = Path(path_text).resolve()
        description = f"sqlite:///{path}"
        _require_sqlite_file(path, description, must_exist=read_only)
        if not read_only and not path.exists():
            _require_folder(path.parent)
            _create_sqlite_file(path)
        # eventsourcing connects with uri=True: a quoted file: URI keeps `?`, `#` and
        # `:memory:` in a file name from being read as URI syntax.
        database = sqlite_reader_uri(path) if read_only else sqlite_file_uri(path)
        # A writer looks read-only too: it must not change a file it may then refuse.
        _require_sqlite_ledger(sqlite_reader_uri(path), description, read_only=read_only)
    factory = SQLiteFactory(
        {
            # Documents the adapter; the factory class is chosen here, not by topic.
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": database,
            # Seconds a statement waits for another connection's write lock (sqlite3
            # `timeout`); only a second writer holds it that long, so then fail loudly.
            "SQLITE_LOCK_TIMEOUT": "5",
            # One row per input partition, ids strictly increasing: a redelivered or
            # older offset raises IntegrityError, which `append` turns into
            # TrackingConflict. Stated, never left to the default.
            "SINGLE_ROW_TRACKING": "y",
            "ORIGINATOR_ID_TYPE": "uuid",  # stream ids are UUIDs (stored as hex text)
            # A new store creates its tables on open; a reader never creates anything.
            "CREATE_TABLE": "n" if read_only else "y",
            # eventsourcing's SQLiteProcessRecorder, with the inputs-seen table.
            "PROCESS_RECORDER_TOPIC": SQLITE_RECORDER_TOPIC,
        }
    )
    if database.startswith("file:/"):
        try:
            _require_full_sync(factory)
        except sqlite3.DatabaseError as error:
            factory.close()
            raise NotALedgerStore(f"{description} is not a readable SQLite file: {error}") from None
    return factory, description


_SQLITE_HEADER = b"SQLite format 3\x00"
_EVENTS_TABLE = "stored_events"  # eventsourcing's table of the process recorder's events


def _require_sqlite_file(path: Path, description: str, *, must_exist: bool) -> None:
    """Refuse a file that can never be a ledger store, before SQLite would make it one
    (an empty file is a valid empty database to SQLite)."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        if must_exist:
            raise NotALedgerStore(f"{description} does not exist") from None
        return
    except IsADirectoryError:
        raise NotALedgerStore(f"{description} is a directory, not a store file") from None
    except NotADirectoryError:
        raise NotALedgerStore(f"{description}: a file in its path is not a folder") from None
    if not header:
        raise NotALedgerStore(f"{description} is an empty file, not a ledger store")
    if header != _SQLITE_HEADER:
        raise NotALedgerStore(f"{description} is not a SQLite file, so not a ledger store")


def _require_folder(folder: Path) -> None:
    """A new store is made only in a folder that exists: a mistyped path in a URL is refused
    rather than made into a new store in new folders (`ledger` makes its default store's
    folder itself)."""
    if not folder.is_dir():
        raise StoreUrlError(f"the folder {folder} does not exist: make it, or correct the path")


sqlite_file_mode = 0o600


def _create_sqlite_file(path: Path) -> None:
    """A new store file appears whole or not at all: made under a temporary name with its
    SQLite header written (WAL mode), synced, then renamed into place. So a process killed
    while creating a store never leaves the empty file that `_require_sqlite_file` refuses
    as a damaged store (a `kill -9` between SQLite creating the file and writing to it)."""
    creating = path.with_name(f".{path.name}.{uuid4().hex}.creating")
    try:
        # Every client's figures: readable by the owner alone, whatever the umask (0644
        # before). SQLite gives its -wal and -shm files the database file's mode.
        os.close(os.open(creating, os.O_CREAT | os.O_EXCL | os.O_WRONLY, sqlite_file_mode))
        connection = sqlite3.connect(creating)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # writes the header: never empty
        finally:
            connection.close()
        with creating.open("rb") as written:
            os.fsync(written.fileno())
        # A hard link, not a rename: atomic, and it never replaces a store that another
        # process created meanwhile (that one is then used as it is).
        with contextlib.suppress(FileExistsError):
            os.link(creating, path)
    finally:
        creating.unlink(missing_ok=True)


def sqlite_file_uri(path: Path) -> str:
    """`path` as a quoted `file:` URI: `?`, `#` and `:memory:` in a file name are not read as
    URI syntax."""
    return "file:" + urllib.parse.quote(str(path))


def sqlite_reader_uri(path: Path) -> str:
    """The URI a reader opens `path` with: `mode=ro`; where the file or its folder cannot be
    written (a read-only file system, another user's store) also `immutable=1`, since SQLite
    cannot create the WAL index there (nor can anything change the file)."""
    writable = os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
    return sqlite_file_uri(path) + ("?mode=ro" if writable else "?mode=ro&immutable=1")


def _require_ledger_tables(
    factory: StoreFactory, recorder: ProcessRecorder, description: str
) -> None:
    """A store opened for reading must already hold the ledger's tables, on PostgreSQL as
    prepared for this code's layout."""
    if isinstance(factory, SQLiteFactory):
        return  # checked before the factory opened it (`_require_sqlite_ledger`)
    table = getattr(recorder, "events_table_name", _EVENTS_TABLE)
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL AS present",
            (f"{factory.datastore.schema}.{table}",),
        )
        row = cursor.fetchone()
    if row is None or not row["present"]:
        raise NotALedgerStore(f"{description} holds no ledger (it has no journal table)")
    try:
        store_privileges.require_this_layout(factory)
    except store_privileges.StoreNotCreated as error:
        raise StoreUrlError(str(error)) from error


def _require_sqlite_ledger(database: str, description: str, *, read_only: bool) -> None:
    """Before eventsourcing opens it (it would switch the file to WAL, a write, and create
    its tables): the file is a SQLite database that holds the ledger's journal table, or,
    for a writer, one that holds no table yet (a new store)."""
    try:
        connection = sqlite3.connect(database, uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = sorted(str(row[0]) for row in rows)
            (journal_mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise NotALedgerStore(f"{description} is not a readable SQLite file: {error}") from None
    _require_ledger_or_new(description, tables, read_only=read_only)
    changeable = "immutable=1" not in database  # an immutable file's mode is never set
    if read_only and changeable and str(journal_mode).lower() not in ("wal", "memory"):
        # A copy made with VACUUM INTO (or a file copied back from a tool) is in rollback
        # mode: the reader's open would switch it to WAL, a write, and fail as "not a
        # readable SQLite file: attempt to write a readonly database".
        raise NotALedgerStore(
            f"{description} is in SQLite's {journal_mode} journal mode, not WAL (a copy made "
            "with VACUUM INTO?), which a read command cannot change: run `sqlite3 FILE "
            "'PRAGMA journal_mode=WAL'` once, and copy a store with `sqlite3 STORE '.backup "
            "COPY'` (docs/cli.md)"
        )
    # A store older code wrote lacks tables this code reads (a writer's open creates them
    # and its first start fills them): refused at the open, as a PostgreSQL store prepared
    # for an older layout is, rather than at the first read of one of them.
    missing = [table for table in _SQLITE_LEDGER_TABLES if table not in tables]
    if read_only and missing:
        raise StoreUrlError(
            f"the file was written by older code (it has no {missing[0]} table): "
            "open it once with this code's writer (`ledger store init`) to update it"
        )


foreign_tables_named_max = 5  # a refusal names the first few tables it found


def _require_ledger_or_new(description: str, tables: Sequence[str], *, read_only: bool) -> None:
    """A reader needs the journal table; a writer makes a new store only where there is no
    table at all, never next to another application's tables."""
    if _EVENTS_TABLE in tables:
        return
    if read_only:
        raise NotALedgerStore(f"{description} holds no ledger (it has no journal table)")
    if tables:
        named = ", ".join(tables[:foreign_tables_named_max])
        more = ", ..." if len(tables) > foreign_tables_named_max else ""
        raise NotALedgerStore(
            f"{description} holds other tables ({named}{more}) and no ledger: a new store "
            "needs a new file or an empty schema"
        )


def _require_full_sync(factory: SQLiteFactory) -> None:
    """A committed batch must survive power loss: its journal may already be published."""
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        level = cursor.fetchone()[0]
    require(
        level >= _SQLITE_SYNCHRONOUS_FULL,
        f"SQLite synchronous={level}: this build does not fsync every commit (FULL=2 needed)",
    )


def _postgres_factory(url: str, *, reach_timeout_s: int | None) -> tuple[PostgresFactory, str]:
    """A reader is the `ledger_reader` role (`open` skips creating tables); one with a
    `reach_timeout_s` gives up on a read after that many seconds, without retries."""
    location = parse_postgres_url(url)
    _require_server_accepts(location)
    factory = PostgresFactory(
        {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",  # documents the adapter
            "POSTGRES_DBNAME": location.dbname,
            "POSTGRES_HOST": location.host,
            "POSTGRES_PORT": str(location.port),
            "POSTGRES_USER": location.user,
            "POSTGRES_PASSWORD": location.password,  # "" with trust or peer auth
            "POSTGRES_GET_PASSWORD_TOPIC": "",  # the password comes from the URL
            "POSTGRES_SCHEMA": location.schema,  # tables live in this schema alone
            # Seconds to wait for a pooled connection: fail loudly, never hang a writer.
            "POSTGRES_CONNECT_TIMEOUT": str(reach_timeout_s or postgres_connect_timeout_s),
            # Two connections: the writer, and one reader (a replay or a CLI query).
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "2",  # short bursts of extra readers, bounded
            "POSTGRES_MAX_WAITING": "8",  # bounded queue for a connection (0 = unbounded)
            "POSTGRES_CONN_MAX_AGE": "3600",  # seconds; recycle connections hourly
            # Check a pooled connection before use, so a server restart costs one
            # reconnect rather than a failed batch.
            "POSTGRES_PRE_PING": "y",
            # Seconds an insert waits for the events table's EXCLUSIVE lock. The ledger
            # is the single writer, so waiting longer means a second writer: fail. (The
            # recorder retries OperationalError up to 10 times, 0.2 s apart.)
            "POSTGRES_LOCK_TIMEOUT": "5",
            # Seconds before the server ends a session idle inside a transaction.
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "5",
            # One row per input partition, strictly increasing ids: a redelivered or
            # older offset raises IntegrityError (TrackingConflict).
            "SINGLE_ROW_TRACKING": "y",
            "ORIGINATOR_ID_TYPE": "uuid",  # stream ids are UUIDs (native uuid column)
            # OFF: the stored-function insert path skips the tracking row and the table
            # lock (docs/pipeline.md, exactly once), which would break exactly-once.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            # Only the schema's owner creates tables, after `_prepare_postgres` has found
            # that the URL's role is the owner (ledger/store_privileges.py).
            "CREATE_TABLE": "n",
            # eventsourcing's recorder, taking its write lock through the owner's function.
            "PROCESS_RECORDER_TOPIC": (
                store_privileges.JOURNAL_RECORDER_TOPIC
                if reach_timeout_s is None
                else ONE_ATTEMPT_RECORDER_TOPIC
            ),
        }
    )
    return factory, location.describe()


postgres_connect_timeout_s = 10  # one connection attempt, before the pool and in it
# `LedgerStore.answers`: seconds to connect, then for its query (libpq counts whole
# seconds, and 2 at least).
store_probe_timeout_s = 2


def _first_attempt(read: str) -> Any:
    """eventsourcing's recorder method `read` without its retry decorator."""
    return getattr(store_privileges.JournalRecorder, read).__wrapped__


class OneAttemptJournalRecorder(store_privileges.JournalRecorder):
    """The journal recorder of a reader that must answer while the server is down: each
    read tried once, not 10 times 0.2 s apart, each waiting the pool's whole timeout."""

    select_events = _first_attempt("select_events")
    select_notifications = _first_attempt("select_notifications")
    max_notification_id = _first_attempt("max_notification_id")
    max_tracking_id = _first_attempt("max_tracking_id")


ONE_ATTEMPT_RECORDER_TOPIC = f"{__name__}:{OneAttemptJournalRecorder.__qualname__}"


def _require_server_accepts(location: PostgresLocation) -> None:
    """One direct connection before the pool is made. A server that refuses the role, the
    password or the database says so at once; the pool would retry in the background for
    its whole timeout and then say only that it got no connection."""
    try:
        conninfo = psycopg.conninfo.make_conninfo("", **location.connection_arguments())
        psycopg.connect(conninfo, connect_timeout=postgres_connect_timeout_s).close()
    except psycopg.OperationalError as error:
        reason = _first_line(error).removeprefix("connection failed: ")
        if any(answer in reason for answer in _REFUSALS):
            raise StoreNotPermitted(
                f"{reason}: check the role, password and database of the store URL"
            ) from None
        raise OperationalError(reason) from None


# The server's (or libpq's) answers that refuse the URL's role, password or database: a
# setting to fix, never an outage to wait out (exit status 2, as for a role without rights
# on the schema). libpq gives them no SQLSTATE, only the server's sentence, so they are
# known by it (in English, the server's default); any other answer (the server starting up
# or shutting down, too many connections, none at all) is the store being unreachable.
_REFUSALS = (
    "does not exist",  # role "x" does not exist, database "x" does not exist
    "authentication failed",  # password, SCRAM, peer or ident
    "no pg_hba.conf entry",
    "is not permitted to log in",
    "permission denied for database",
    "no password supplied",
)


def _prepare_postgres(
    factory: PostgresFactory, recorder: ProcessRecorder, description: str
) -> None:
    """The owner creates the schema, tables, triggers and grants; a writer or reader
    finds them. A role that may not create a missing store is a StoreUrlError."""
    require(
        isinstance(recorder, store_privileges.JournalRecorder),
        "the PostgreSQL recorder is the ledger's JournalRecorder",
    )
    schema = factory.datastore.schema
    _require_ledger_or_new(description, _postgres_tables(factory, schema), read_only=False)
    try:
        try:
            owner = store_privileges.may_create(factory, schema)
        except IntegrityError:
            # Two processes created the schema at once; IF NOT EXISTS does not cover that race.
            owner = store_privileges.may_create(factory, schema)
        journal_recorder = cast(store_privileges.JournalRecorder, recorder)
        store_privileges.prepare_tables(factory, journal_recorder, owner)
    except store_privileges.StoreNotWritable as error:
        raise StoreNotPermitted(str(error)) from error
    except store_privileges.StoreNotCreated as error:
        raise StoreUrlError(str(error)) from error


def _postgres_tables(factory: PostgresFactory, schema: str) -> list[str]:
    """The tables, views and foreign tables in `schema`, by name; none when it is missing."""
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT c.relname AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
            (schema,),
        )
        return [str(row["name"]) for row in cursor.fetchall()]
