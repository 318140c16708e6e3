"""PostgreSQL least privilege for the ledger's store: who creates, who appends, who reads.

Three roles (docs/security.md "PostgreSQL"):

- the **owner**: any role that may CREATE in the store's schema. Its first open creates
  the tables, the append-only triggers and the journal-lock function, and grants the two
  roles below their rights;
- `ledger_writer` (`ledger run`, `ledger ingest`): SELECT and INSERT on the journal and
  rejects table and on the inputs-seen, trades and deposits tables, SELECT and INSERT on
  the tracking table and UPDATE of its position column (`notification_id`), nothing else;
- `ledger_reader` (`ledger api`, the read commands): SELECT on those tables (and on the
  view tables, granted by `projections.database` when the owner creates them).

The writer keeps UPDATE on the tracking table because eventsourcing's single-row tracking
advances a partition's row with `INSERT ... ON CONFLICT DO UPDATE ... WHERE id < new`: that
UPDATE is the in-transaction refusal of an older offset (docs/security.md says why it stays
and what it leaves an attacker).

A deployment's login roles are these roles or members of them (`GRANT ledger_writer TO
run_service`). Triggers refuse UPDATE, DELETE and TRUNCATE of the journal and rejects for
everyone, the owner included, and let a tracking position only move forward (the recorder
advances its one row per input partition with an UPDATE). A superuser can still drop a
trigger: the signed checkpoints (`ledger audit verify --checkpoint`) catch what follows.

The owner does this once per layout version and set of roles, and marks it on the lock
function: an open of a prepared store runs no DDL, so a second instance opening the store
never waits on, or deadlocks with, the first one's write lock.

The recorder's lock: eventsourcing takes `LOCK TABLE ... IN EXCLUSIVE MODE` on the events
table so that commit order is notification order. PostgreSQL lets only a role with UPDATE,
DELETE or TRUNCATE on a table take that lock, so the writer takes it through
`ledger_lock_journal()`, a SECURITY DEFINER function of the owner's that does nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor, sql
from psycopg.errors import UniqueViolation
from psycopg.rows import DictRow, tuple_row

WRITER_ROLE = "ledger_writer"
READER_ROLE = "ledger_reader"
LOCK_FUNCTION = "ledger_lock_journal"
REFUSE_REWRITE_FUNCTION = "ledger_refuse_rewrite"
TRACKING_FORWARD_FUNCTION = "ledger_tracking_forward_only"
JOURNAL_TABLE = "stored_events"  # eventsourcing's names for a factory without a name
TRACKING_TABLE = "notification_tracking"
# The inputs seen (event id, input digest, seq), written with the journal (ledger/store.py).
INPUTS_SEEN_TABLE = "ledger_inputs_seen"
# The client trades booked (trade id, seq, encoded `BookedTrade`), written with the journal.
TRADES_TABLE = "ledger_trades"
# The client deposits booked under a reference (reference, seq), written with the journal.
DEPOSITS_TABLE = "ledger_deposits"
# Bump when the owner's statements below change, so that the next owner open applies them.
# 2: the writer's UPDATE is on the position column only; 3: the inputs-seen table;
# 4: the trades table; 5: the deposits table.
STORE_LAYOUT = "ledger store layout 5"


class StoreNotCreated(Exception):
    """The schema or its tables are missing and the URL's role may not create them."""


class StoreNotWritable(StoreNotCreated):
    """The URL's role may read the store but a writing open needs it to append."""


class StoreNotReadable(StoreNotCreated):
    """The URL's role may not read the ledger's tables (no `ledger_reader` rights)."""


# The columns of the ledger's tables, with their PostgreSQL types (COPY's binary format).
_INPUT_SEEN_COLUMNS = (("event_id", "text"), ("input_digest", "text"), ("seq", "int8"))
_TRADE_COLUMNS = (("trade_id", "text"), ("seq", "int8"), ("trade", "bytea"))
_DEPOSIT_COLUMNS = (("reference", "text"), ("seq", "int8"))


@dataclass(frozen=True)
class _LedgerTable:
    """One of the tables written with the journal: the `insert_events` argument holding
    its rows, and its two statements."""

    argument: str
    types: list[str]
    copy: sql.Composed
    insert_new: sql.Composed  # a row whose key is taken is left out: the first one stays

    @classmethod
    def of(
        cls, table: sql.Identifier, argument: str, key: str, columns: Sequence[tuple[str, str]]
    ) -> _LedgerTable:
        names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
        values = sql.SQL(", ").join(sql.Placeholder() for _ in columns)
        return cls(
            argument=argument,
            types=[kind for _, kind in columns],
            copy=sql.SQL("COPY {0} ({1}) FROM STDIN (FORMAT BINARY)").format(table, names),
            insert_new=sql.SQL(
                "INSERT INTO {0} ({1}) VALUES ({2}) ON CONFLICT ({3}) DO NOTHING"
            ).format(table, names, values, sql.Identifier(key)),
        )


class JournalRecorder(PostgresProcessRecorder):
    """eventsourcing's process recorder, locking the journal through the owner's function,
    and writing the inputs seen and the trades and deposits booked in the transaction of
    the journal records they come from (the `inputs_seen`, `trades` and `deposits`
    arguments of `insert_events`)."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._inputs = sql.Identifier(datastore.schema, INPUTS_SEEN_TABLE)
        self._trades = sql.Identifier(datastore.schema, TRADES_TABLE)
        self._deposits = sql.Identifier(datastore.schema, DEPOSITS_TABLE)
        self._copy_events = sql.SQL(
            "COPY {0} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(sql.Identifier(datastore.schema, self.events_table_name))
        self._select_records = sql.SQL(
            "SELECT originator_version, topic, state FROM {0} WHERE originator_id = %s "
            "AND originator_version > %s ORDER BY originator_version LIMIT %s"
        ).format(sql.Identifier(datastore.schema, self.events_table_name))
        self._select_states = sql.SQL(
            "SELECT state FROM {0} WHERE originator_id = %s "
            "AND originator_version > %s ORDER BY originator_version LIMIT %s"
        ).format(sql.Identifier(datastore.schema, self.events_table_name))
        self._event_types = [datastore.originator_id_type, "int8", "text", "bytea"]
        self._ledger_tables = (
            _LedgerTable.of(self._inputs, "inputs_seen", "event_id", _INPUT_SEEN_COLUMNS),
            _LedgerTable.of(self._trades, "trades", "trade_id", _TRADE_COLUMNS),
            _LedgerTable.of(self._deposits, "deposits", "reference", _DEPOSIT_COLUMNS),
        )
        self.sql_create_statements += [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {0} (event_id text PRIMARY KEY, "
                "input_digest text NOT NULL, seq bigint NOT NULL)"
            ).format(self._inputs),
            sql.SQL("CREATE INDEX IF NOT EXISTS {0} ON {1} (seq)").format(
                sql.Identifier(f"{INPUTS_SEEN_TABLE}_seq"), self._inputs
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {0} (trade_id text PRIMARY KEY, "
                "seq bigint NOT NULL, trade bytea NOT NULL)"
            ).format(self._trades),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {0} (reference text PRIMARY KEY, seq bigint NOT NULL)"
            ).format(self._deposits),
        ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        """eventsourcing's transaction (the position's upsert, the table lock, the
        notification, the rows, in that order), with the rows sent by `COPY` rather than
        as one array of composite values and a statement per row of the ledger's tables:
        psycopg dumps those in Python, about 50 us of the writer's CPU per journal event
        (docs/performance.md "`ledger run` on PostgreSQL: the rows by COPY"). A taken
        (originator_id, originator_version) fails the COPY as it failed the INSERT."""
        tracking: Tracking | None = kwargs.get("tracking")
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            with conn.pipeline():  # one round trip for the position, the lock, the notify
                if tracking is not None:
                    self._insert_tracking(curs, tracking)
                if stored_events:
                    self._lock_table(curs)
                    self._notify_channel(curs)
            if stored_events:
                with curs.copy(self._copy_events) as copy:
                    copy.set_types(self._event_types)
                    for event in stored_events:
                        copy.write_row(
                            (
                                event.originator_id,
                                event.originator_version,
                                event.topic,
                                event.state,
                            )
                        )
            self._insert_ledger_rows(curs, kwargs, with_journal=bool(stored_events))

    def _insert_ledger_rows(
        self, curs: Cursor[DictRow], kwargs: dict[str, Any], *, with_journal: bool
    ) -> None:
        """The inputs seen and the trades and deposits booked. Each row is inserted unless
        its key is taken, so that a trade's or deposit's first booking stays, the one a bust
        or return reverses. Rows written with the journal records they come from have new
        keys but for a trade id or deposit reference booked again: they go by COPY in a
        savepoint, and only when a key is taken (the COPY fails; the server logs that
        error) row by row. Rows recorded after their journal (a start recording those of
        the events it replays, mostly there already) go row by row at once."""
        tables = [
            (table, rows) for table in self._ledger_tables if (rows := kwargs.get(table.argument))
        ]
        if with_journal and tables and _copied(curs, tables):
            return
        for table, rows in tables:
            curs.executemany(table.insert_new, rows)

    def select_records(self, stream: UUID, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to `limit` (version, topic, state) rows of `stream` after version `after`, in
        order: as `select_events` without building a `StoredEvent` per row."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(self._select_records, (stream, after, limit), prepare=True)
            return [(version, topic, bytes(state)) for version, topic, state in curs.fetchall()]

    def select_states(self, stream: UUID, after: int, limit: int) -> list[bytes]:
        """The records (states) alone of `select_records`."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(self._select_states, (stream, after, limit), prepare=True)
            return [bytes(state) for (state,) in curs.fetchall()]

    def select_versions_of_topic(self, stream: UUID, topic: str, after: int) -> list[int]:
        """The versions after `after` of `stream`'s rows of `topic`, in order (the stream
        scanned from `after`)."""
        query = sql.SQL(
            "SELECT originator_version FROM {0} WHERE originator_id = %s "
            "AND originator_version > %s AND topic = %s ORDER BY originator_version"
        ).format(sql.Identifier(self.datastore.schema, self.events_table_name))
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(query, (stream, after, topic))
            return [int(version) for (version,) in curs.fetchall()]

    def select_inputs_seen(self, event_ids: Sequence[str], until_seq: int) -> dict[str, str]:
        rows = self._select(self._inputs, "event_id", "input_digest", event_ids, until_seq)
        return {row[0]: row[1] for row in rows}

    def select_trades(self, trade_ids: Sequence[str], until_seq: int) -> dict[str, bytes]:
        rows = self._select(self._trades, "trade_id", "trade", trade_ids, until_seq)
        return {row[0]: bytes(row[1]) for row in rows}

    def select_deposits(self, references: Sequence[str], until_seq: int) -> dict[str, int]:
        rows = self._select(self._deposits, "reference", "seq", references, until_seq)
        return {row[0]: int(row[1]) for row in rows}

    def _select(
        self, table: sql.Identifier, key: str, value: str, keys: Sequence[str], until_seq: int
    ) -> list[tuple[Any, Any]]:
        """(key, value) of the rows of `table` under `keys`, as of `until_seq`."""
        query = sql.SQL(
            "SELECT {1} AS key, {2} AS value FROM {0} WHERE {1} = ANY(%s) AND seq <= %s"
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                query.format(table, sql.Identifier(key), sql.Identifier(value)),
                (list(keys), until_seq),
            )
            return [(row["key"], row["value"]) for row in curs.fetchall()]

    def last_input_seen_seq(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql.SQL("SELECT MAX(seq) AS seq FROM {0}").format(self._inputs))
            row = curs.fetchone()
            return int(row["seq"] or 0) if row is not None else 0

    def _lock_table(self, curs: Cursor[DictRow]) -> None:
        curs.execute(
            sql.SQL("SET LOCAL lock_timeout = '{0}s'").format(self.datastore.lock_timeout),
            prepare=True,
        )
        lock = sql.SQL("SELECT {0}.{1}()").format(
            sql.Identifier(self.datastore.schema), sql.Identifier(LOCK_FUNCTION)
        )
        curs.execute(lock, prepare=True)


def _copied(curs: Cursor[DictRow], tables: Sequence[tuple[_LedgerTable, Any]]) -> bool:
    """Whether the rows of `tables` went in by COPY, in a savepoint; False when a key was
    taken: the savepoint undid the COPY, nothing of it was written."""
    try:
        with curs.connection.transaction():
            for table, rows in tables:
                with curs.copy(table.copy) as copy:
                    copy.set_types(table.types)
                    for row in rows:
                        copy.write_row(row)
    except UniqueViolation:
        return False
    return True


JOURNAL_RECORDER_TOPIC = f"{__name__}:{JournalRecorder.__qualname__}"


def may_create(factory: PostgresFactory, schema: str) -> bool:
    """Whether the URL's role owns the store: it may CREATE in the schema (made if missing)."""
    with factory.datastore.transaction(commit=True) as cursor:
        cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL AS found", (schema,))
        found = _one(cursor)["found"]
        if not found:
            cursor.execute("SELECT has_database_privilege(current_database(), 'CREATE') AS ok")
            if not _one(cursor)["ok"]:
                raise StoreNotCreated(
                    f"schema {schema} does not exist and this role may not create it: "
                    "open the store once with its owner role first"
                )
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            return True
        cursor.execute("SELECT has_schema_privilege(%s, 'CREATE') AS ok", (schema,))
        return bool(_one(cursor)["ok"])


def _one(cursor: Cursor[DictRow]) -> DictRow:
    row = cursor.fetchone()
    if row is None:
        raise StoreNotCreated("the server answered no row to a catalogue query")
    return row


def prepare_tables(
    factory: PostgresFactory, recorder: PostgresProcessRecorder, owner: bool
) -> None:
    """The owner creates (or updates) tables, triggers, lock function and grants; any
    other role finds them or is told to open the store with the owner first."""
    schema = factory.datastore.schema
    if owner and not _prepared(factory, schema):
        recorder.create_table()
        with factory.datastore.transaction(commit=True) as cursor:
            # Two owners opening a fresh store at once: the second waits here, then
            # finds the first one's work done and leaves it alone.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger:{schema}",))
            layout = _expected_layout(cursor)
            if _layout_of(cursor, schema) == layout:
                return
            for statement in _owner_statements(schema):
                cursor.execute(statement)
            for statement in _grants(cursor, schema):
                cursor.execute(statement)
            # In the same transaction as the rest: the mark present means all of it is.
            cursor.execute(
                sql.SQL("COMMENT ON FUNCTION {}.{}() IS {}").format(
                    sql.Identifier(schema), sql.Identifier(LOCK_FUNCTION), sql.Literal(layout)
                )
            )
        return
    with factory.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT to_regprocedure(%s) IS NOT NULL AS found",
            (f"{_quoted(schema)}.{LOCK_FUNCTION}()",),
        )
        if not _one(cursor)["found"]:
            raise StoreNotCreated(
                f"schema {schema} has no ledger tables and this role may not create them: "
                "open the store once with its owner role first"
            )
        _require_this_layout(cursor, schema)
        _require_append_rights(cursor, schema)


def may_append(factory: PostgresFactory) -> bool:
    """Whether the URL's role may append to the journal (the writer's and the owner's may):
    a reader (`ledger api`) that may is served with more rights than it needs."""
    with factory.datastore.transaction(commit=False) as cursor:
        return _may_append(cursor, factory.datastore.schema)


def _may_append(cursor: Cursor[DictRow], schema: str) -> bool:
    cursor.execute(
        "SELECT has_table_privilege(%s, 'INSERT') AND has_function_privilege(%s, 'EXECUTE') AS ok",
        (f"{_quoted(schema)}.{_quoted(JOURNAL_TABLE)}", f"{_quoted(schema)}.{LOCK_FUNCTION}()"),
    )
    return bool(_one(cursor)["ok"])


def _require_append_rights(cursor: Cursor[DictRow], schema: str) -> None:
    # The reader's credentials given to a writer (`ledger ingest`, `ledger run`) are a
    # setting to fix: refused here, before a record is decided, not at the first append.
    if not _may_append(cursor, schema):
        raise StoreNotWritable(
            f"this role may read the store but not write it: a writing command (ingest, run, "
            f"inbox skip, store init, store snapshot) needs the URL of {WRITER_ROLE} or of the "
            "owner (docs/security.md)"
        )


def require_this_layout(factory: PostgresFactory) -> None:
    """A store opened for reading only, by any role, is refused the same way as a writer
    when its owner prepared it for other code: a reader would otherwise fail at its first
    read of a table that layout lacks. So is a role that may not read the ledger's tables."""
    with factory.datastore.transaction(commit=False) as cursor:
        _require_this_layout(cursor, factory.datastore.schema)
        _require_read_rights(cursor, factory.datastore.schema)


_READ_TABLES = (JOURNAL_TABLE, TRACKING_TABLE, INPUTS_SEEN_TABLE, TRADES_TABLE, DEPOSITS_TABLE)


def _require_read_rights(cursor: Cursor[DictRow], schema: str) -> None:
    # A login role nobody granted `ledger_reader` (PostgreSQL lets any role see the
    # tables' names) read `cannot be used: permission denied for table stored_events`,
    # exit status 1, as if the store were broken: a setting to fix, refused at the open.
    cursor.execute(
        "SELECT bool_and(has_table_privilege(name, 'SELECT')) AS ok FROM unnest(%s::text[]) name",
        ([f"{_quoted(schema)}.{_quoted(table)}" for table in _READ_TABLES],),
    )
    if not _one(cursor)["ok"]:
        raise StoreNotReadable(
            f"this role may not read the store: give it {READER_ROLE}'s rights "
            f"(GRANT {READER_ROLE} TO the login role) or use {READER_ROLE}'s URL "
            "(docs/security.md)"
        )


def _require_this_layout(cursor: Cursor[DictRow], schema: str) -> None:
    # A store the owner prepared for other code lacks this code's tables (or has ones it
    # does not know): refused at the open rather than at the first use of one of them.
    layout = _layout_of(cursor, schema) or "no layout"
    if layout.split(";")[0] != STORE_LAYOUT:
        raise StoreNotCreated(
            f"schema {schema} is prepared as {layout.split(';')[0]}, this code needs "
            f"{STORE_LAYOUT}: open the store once with its owner role to update it"
        )


def _prepared(factory: PostgresFactory, schema: str) -> bool:
    """Whether the store already has this version's tables, triggers and grants.

    A prepared store is left untouched: DDL on the journal while another instance holds
    its write lock would wait for it, or deadlock with it (CREATE TRIGGER against the
    recorder's EXCLUSIVE lock)."""
    with factory.datastore.transaction(commit=False) as cursor:
        return _layout_of(cursor, schema) == _expected_layout(cursor)


def _expected_layout(cursor: Cursor[DictRow]) -> str:
    """This version's layout and the ledger roles the server has: a role created after
    the store's first open gets its grants at the owner's next open."""
    return f"{STORE_LAYOUT}; roles: {', '.join(sorted(_present_roles(cursor)))}"


def _present_roles(cursor: Cursor[DictRow]) -> set[str]:
    cursor.execute(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", ([WRITER_ROLE, READER_ROLE],)
    )
    return {row["rolname"] for row in cursor.fetchall()}


def _layout_of(cursor: Cursor[DictRow], schema: str) -> str | None:
    """The layout version the owner wrote on the lock function, None before the first open."""
    cursor.execute(
        "SELECT obj_description(to_regprocedure(%s), 'pg_proc') AS layout",
        (f"{_quoted(schema)}.{LOCK_FUNCTION}()",),
    )
    layout = _one(cursor)["layout"]
    return None if layout is None else str(layout)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _owner_statements(schema: str) -> list[sql.Composed]:
    names = {
        "schema": sql.Identifier(schema),
        "journal": sql.Identifier(JOURNAL_TABLE),
        "tracking": sql.Identifier(TRACKING_TABLE),
        "inputs": sql.Identifier(INPUTS_SEEN_TABLE),
        "trades": sql.Identifier(TRADES_TABLE),
        "deposits": sql.Identifier(DEPOSITS_TABLE),
        "lock": sql.Identifier(LOCK_FUNCTION),
        "refuse": sql.Identifier(REFUSE_REWRITE_FUNCTION),
        "forward": sql.Identifier(TRACKING_FORWARD_FUNCTION),
    }
    texts = [
        # The write lock the recorder takes, and only that, with the owner's rights.
        "CREATE OR REPLACE FUNCTION {schema}.{lock}() RETURNS void LANGUAGE plpgsql "
        "SECURITY DEFINER SET search_path = pg_catalog AS $$ BEGIN "
        "LOCK TABLE {schema}.{journal} IN EXCLUSIVE MODE; END $$",
        "REVOKE ALL ON FUNCTION {schema}.{lock}() FROM PUBLIC",
        "CREATE OR REPLACE FUNCTION {schema}.{refuse}() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'the ledger journal is append-only: % of %.% is refused', "
        "TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; "
        "END $$",
        "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE "
        "ON {schema}.{journal} FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE "
        "ON {schema}.{journal} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE "
        "ON {schema}.{inputs} FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE "
        "ON {schema}.{inputs} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE "
        "ON {schema}.{trades} FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE "
        "ON {schema}.{trades} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE "
        "ON {schema}.{deposits} FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE "
        "ON {schema}.{deposits} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()",
        "CREATE OR REPLACE FUNCTION {schema}.{forward}() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN IF TG_OP = 'UPDATE' AND NEW.application_name = OLD.application_name "
        "AND NEW.notification_id > OLD.notification_id THEN RETURN NEW; END IF; "
        "RAISE EXCEPTION 'a ledger tracking position only moves forward: % of %.% is refused', "
        "TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; "
        "END $$",
        "CREATE OR REPLACE TRIGGER ledger_forward_only BEFORE UPDATE OR DELETE "
        "ON {schema}.{tracking} FOR EACH ROW EXECUTE FUNCTION {schema}.{forward}()",
        "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE "
        "ON {schema}.{tracking} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{forward}()",
    ]
    return [sql.SQL(text).format(**names) for text in texts]


def _grants(cursor: Cursor[DictRow], schema: str) -> list[sql.Composed]:
    """The writer's and reader's rights, for those of the two roles the server has."""
    present = _present_roles(cursor)
    names: dict[str, Any] = {
        "schema": sql.Identifier(schema),
        "journal": sql.Identifier(JOURNAL_TABLE),
        "tracking": sql.Identifier(TRACKING_TABLE),
        "inputs": sql.Identifier(INPUTS_SEEN_TABLE),
        "trades": sql.Identifier(TRADES_TABLE),
        "deposits": sql.Identifier(DEPOSITS_TABLE),
        "lock": sql.Identifier(LOCK_FUNCTION),
        "writer": sql.Identifier(WRITER_ROLE),
        "reader": sql.Identifier(READER_ROLE),
    }
    texts: list[str] = []
    if WRITER_ROLE in present:
        texts += [
            "GRANT USAGE ON SCHEMA {schema} TO {writer}",
            "REVOKE ALL ON {schema}.{journal}, {schema}.{tracking}, {schema}.{inputs}, "
            "{schema}.{trades}, {schema}.{deposits} FROM {writer}",
            "GRANT SELECT, INSERT ON {schema}.{journal}, {schema}.{inputs}, {schema}.{trades}, "
            "{schema}.{deposits} TO {writer}",
            # UPDATE of the position column alone: the recorder's upsert sets nothing else.
            "GRANT SELECT, INSERT, UPDATE (notification_id) ON {schema}.{tracking} TO {writer}",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {writer}",
            "GRANT EXECUTE ON FUNCTION {schema}.{lock}() TO {writer}",
        ]
    if READER_ROLE in present:
        texts += [
            "GRANT USAGE ON SCHEMA {schema} TO {reader}",
            "REVOKE ALL ON {schema}.{journal}, {schema}.{tracking}, {schema}.{inputs}, "
            "{schema}.{trades}, {schema}.{deposits} FROM {reader}",
            "GRANT SELECT ON {schema}.{journal}, {schema}.{tracking}, {schema}.{inputs}, "
            "{schema}.{trades}, {schema}.{deposits} TO {reader}",
        ]
    return [sql.SQL(text).format(**names) for text in texts]
