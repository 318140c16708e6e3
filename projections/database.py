"""The view tables in SQLite or PostgreSQL, through the DB-API directly (sqlite3, psycopg).

The views live next to the journal: the same SQLite file or PostgreSQL schema as the store
(`sqlite:///:memory:` gets a private in-memory database). One transaction per batch
writes the rows the batch changed *and* the projection's position (`last_seq`), with a
compare-and-set on the position, so a view change is recorded exactly once and a second
writer is refused rather than interleaved.

Statements name tables and columns with f-strings (ruff's S608 is silenced there): those
names are the constants of `projections.tables`, never input; values are always bound
parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ledger.store import sqlite_reader_uri
from ledger.store_url import StoreUrlError, parse_postgres_url
from projections.tables import HISTORY_START, HISTORY_TABLES, TABLES, Row, Table

POSITION_TABLE = "projection_position"
# The projection's in-memory state at its position (projections/resume.py): derived data.
STATE_TABLE = "projection_state"
DEFAULT_PROJECTION = "views"
sqlite_lock_timeout_s = 5.0  # a second writer holding the lock longer is an error
postgres_connect_timeout_s = 10


# The states kept at past positions (`save_snapshot`) are rows of the state table keyed
# `{projection}@{seq}`: no table of their own, which views built by older code (and a
# reader's grants) already have. Found by the key's prefix (`substr`: a comparison of
# text would follow the database's collation, which may be a locale's).
_SNAPSHOT_MARK = "@"
_SNAPSHOT_PREFIX = "substr(projection, 1, length(?)) = ?"
_NEAREST_SNAPSHOT = (
    f"SELECT last_seq, state FROM {STATE_TABLE} WHERE {_SNAPSHOT_PREFIX} "  # noqa: S608
    "AND last_seq <= ? ORDER BY last_seq DESC LIMIT 1"
)
_FORGET_SNAPSHOTS = f"DELETE FROM {STATE_TABLE} WHERE {_SNAPSHOT_PREFIX}"  # noqa: S608


def _snapshot_keys(projection: str) -> tuple[str, str]:
    """The arguments of `_SNAPSHOT_PREFIX` for `projection`'s kept states."""
    prefix = f"{projection}{_SNAPSHOT_MARK}"
    return prefix, prefix


class ProjectionConflict(RuntimeError):
    """The recorded position moved under this writer: another projector runs."""


class ViewsUrlError(ValueError):
    """A views database URL this module cannot open."""


class ViewsReadOnly(RuntimeError):
    """The URL's role may read the store but not create or write its views (a PostgreSQL
    reader role such as `ledger_reader`, a SQLite file on a read-only file system or of
    another user), or may not read the views the owner built."""


class ViewsOfOlderCode(ViewsReadOnly):
    """Views opened to read as they stand were written by an older version of the ledger:
    only a writer's open (`create=True`) rebuilds them, from seq 1."""


# SQLite's primary result codes (the low byte of an extended code) that say the file, its
# folder or its WAL index cannot be written by this process.
_SQLITE_PRIMARY_CODE = 0xFF
_SQLITE_NOT_WRITABLE = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
)


@dataclass(frozen=True, slots=True)
class Position:
    last_seq: int
    last_hash: str
    recorded_at: str  # the ledger clock at last_seq ("" before any event)


@dataclass(frozen=True, slots=True)
class TableWrite:
    """Replace the rows of `table` whose scope column holds one of `scopes` (every row
    when `scopes` is None) by `rows`."""

    table: Table
    scopes: Sequence[str] | None
    rows: Sequence[Row]
    keep_existing: bool = False  # a row whose key is there already is left as it is


class _Cursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchall(self) -> list[Any]: ...


def _column_sql(table: Table) -> str:
    kinds = {"text": "TEXT", "decimal": "TEXT", "integer": "BIGINT"}
    columns = [f'"{c.name}" {kinds[c.kind]}' for c in table.columns]
    columns.append(f"PRIMARY KEY ({', '.join(_quoted(table.key))})")
    return ", ".join(columns)


def _sort_key(row: Row, positions: Sequence[int]) -> tuple[str, ...]:
    """Key cells (text, or integers never negative) as text that sorts like the values."""
    return tuple(
        cell if isinstance(cell, str) else f"{cell:020d}"
        for cell in (row[i] for i in positions)
        if cell is not None
    )


def _quoted(names: Sequence[str]) -> list[str]:
    """Column names in double quotes: `trigger` and `check` are SQL keywords."""
    return [f'"{name}"' for name in names]


def _may_create(connection: Any, schema: str) -> bool:
    """Whether the role may create the view tables: CREATE on the schema, or on the
    database while the schema does not exist yet."""
    row = connection.execute(
        "SELECT CASE WHEN to_regnamespace(%s) IS NULL "
        "THEN has_database_privilege(current_database(), 'CREATE') "
        "ELSE has_schema_privilege(%s, 'CREATE') END",
        (schema, schema),
    ).fetchone()
    return bool(row[0])


def _require_readable(connection: Any, where: str) -> None:
    """The views are there and this role may read them, or `ViewsReadOnly` says why not."""
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT')",
        (POSITION_TABLE, POSITION_TABLE),
    ).fetchone()
    if not row[0]:
        raise ViewsReadOnly(
            f"the views in {where} were never built, or this role may not read them: the "
            "owner role builds them (`ledger report VIEW`) and grants ledger_reader SELECT"
        )


def _grant_reading(connection: Any, tables: Sequence[Table]) -> None:
    """SELECT on every view table for the reader role, when the server has it: a reader
    compares them (`ledger audit replay`) but never writes them."""
    from psycopg import sql  # noqa: PLC0415

    from ledger.store_privileges import READER_ROLE  # noqa: PLC0415 (PostgreSQL only)

    if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,)).fetchone():
        for name in (*(table.sql_name for table in tables), POSITION_TABLE, STATE_TABLE):
            granted = connection.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT')", (READER_ROLE, name)
            ).fetchone()
            if not granted[0]:
                statement = sql.SQL("GRANT SELECT ON {} TO {}")
                connection.execute(
                    statement.format(sql.Identifier(name), sql.Identifier(READER_ROLE))
                )


class ViewDatabase:
    """The view tables of one database: created on open (unless opened to read what is
    there), written one batch at a time.

    `tables` are the ledger's views; a downstream consumer keeping tables of its own
    subclasses with its `tables` (examples/reporting_consumer.py) and gets the same
    transactions and position compare-and-set."""

    tables: tuple[Table, ...] = TABLES
    # Whether views stored next to the journal keep the accounts' history (HISTORY_TABLES,
    # projections/history.py); scratch views in memory do only when asked (`in_memory`).
    records_history = True

    def __init__(
        self,
        connection: Any,
        placeholder: str,
        description: str,
        *,
        create: bool = True,
        keeps_history: bool = True,
    ) -> None:
        self._connection = connection
        self._placeholder = placeholder
        self.description = description
        self.keeps_history = keeps_history and self.records_history
        if create:
            self._create()
        else:
            self._require_this_codes_tables()

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> ViewDatabase:
        """`sqlite:///path`, `sqlite:///:memory:` or `postgresql://…[?schema=name]`.

        `create=False` reads the views that are there and creates nothing; on PostgreSQL,
        a role that may not create them is `ViewsReadOnly` either way."""
        if url.startswith("sqlite:///"):
            return cls._open_sqlite(url.removeprefix("sqlite:///"), create)
        if url.startswith(("postgresql://", "postgres://")):
            return cls._open_postgres(url, create)
        raise ViewsUrlError(f"views URL must start with sqlite:/// or postgresql://: {url!r}")

    @classmethod
    def in_memory(cls, *, keeps_history: bool = False) -> ViewDatabase:
        """Scratch views in memory; with the accounts' history when `keeps_history` (the
        history of what an as_of reader catches up past the stored views, projections/tail.py)."""
        connection = sqlite3.connect(":memory:", isolation_level=None)
        return cls(connection, "?", "sqlite:///:memory:", keeps_history=keeps_history)

    @classmethod
    def _open_sqlite(cls, path_text: str, create: bool) -> ViewDatabase:
        if path_text in ("", ":memory:"):
            return cls.in_memory()
        path = Path(path_text).resolve()
        description = f"sqlite:///{path}"
        if not create:
            return cls._read_sqlite(path, description)
        if not path.parent.is_dir():
            # As for a store (ledger/store.py): a mistyped path is refused, not made into
            # new folders holding new, empty views.
            raise ViewsUrlError(
                f"the folder {path.parent} does not exist: make it, or correct the path"
            )
        connection = sqlite3.connect(path, timeout=sqlite_lock_timeout_s, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # readers never block the projector
            connection.execute("PRAGMA synchronous=FULL")  # a committed position survives a crash
            return cls(connection, "?", description)
        except sqlite3.OperationalError as error:
            connection.close()
            if error.sqlite_errorcode & _SQLITE_PRIMARY_CODE in _SQLITE_NOT_WRITABLE:
                raise ViewsReadOnly(f"{description} cannot be written here: {error}") from None
            raise

    @classmethod
    def _read_sqlite(cls, path: Path, description: str) -> ViewDatabase:
        """The views in the file at `path` as they stand, opened read-only."""
        if not path.is_file():
            raise ViewsReadOnly(f"{description} does not exist")
        connection = sqlite3.connect(sqlite_reader_uri(path), uri=True, isolation_level=None)
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (POSITION_TABLE,)
        ).fetchone()
        if found is None:
            connection.close()
            raise ViewsReadOnly(
                f"the views in {description} were never built: `ledger report VIEW` builds "
                "them where the store can be written"
            )
        return cls(connection, "?", description, create=False)

    @classmethod
    def _open_postgres(cls, url: str, create: bool) -> ViewDatabase:
        import psycopg  # noqa: PLC0415 (only the PostgreSQL mode needs the driver)
        from psycopg import sql  # noqa: PLC0415
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415

        try:
            location = parse_postgres_url(url)
        except StoreUrlError as error:
            raise ViewsUrlError(str(error)) from None
        connection = psycopg.connect(
            make_conninfo("", **location.connection_arguments()),
            autocommit=True,  # transactions are explicit: `with connection.transaction()`
            connect_timeout=postgres_connect_timeout_s,
        )
        try:
            where = f"schema {location.schema}"
            if create and not _may_create(connection, location.schema):
                raise ViewsReadOnly(f"this role may not create or write the views in {where}")
            schema = sql.Identifier(location.schema)
            if create:
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            connection.execute(sql.SQL("SET search_path TO {}").format(schema))
            if not create:
                _require_readable(connection, where)
            database = cls(connection, "%s", location.describe(), create=create)
            if create:
                _grant_reading(connection, database.kept_tables)
        except BaseException:
            connection.close()
            raise
        return database

    @property
    def kept_tables(self) -> tuple[Table, ...]:
        """The views, and the accounts' history where it is kept."""
        return (*self.tables, *(HISTORY_TABLES if self.keeps_history else ()))

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self._placeholder)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[_Cursor]:
        if self._placeholder == "?":
            cursor = self._connection.cursor()
            # IMMEDIATE takes the write lock at once: a second writer waits, then fails.
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        else:
            with self._connection.transaction(), self._connection.cursor() as cursor:
                yield cursor

    def _has_table(self, cursor: _Cursor, sql_name: str) -> bool:
        if self._placeholder == "?":
            cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (sql_name,)
            )
        else:  # the schema's, which is first on the search path
            cursor.execute("SELECT 1 WHERE to_regclass(%s) IS NOT NULL", (sql_name,))
        return bool(cursor.fetchall())

    def _older_code_tables(self, cursor: _Cursor) -> list[Table]:
        """The views (not the history) rewritten by scope whose rows older code wrote: a
        table of this code these views lack (a later release added it, or renamed it when
        its columns changed), or one whose older table holds rows (older code, or a
        process of it still running after this code rebuilt the views, wrote there instead).
        A table rewritten whole needs none of this: the next batch fills it."""
        return [
            table
            for table in self.tables
            if table.scope is not None
            and (
                not self._has_table(cursor, table.sql_name)
                or (table.replaces is not None and self._holds_rows(cursor, table.replaces))
            )
        ]

    def _holds_rows(self, cursor: _Cursor, sql_name: str) -> bool:
        if not self._has_table(cursor, sql_name):
            return False
        cursor.execute(f"SELECT 1 FROM {sql_name} LIMIT 1")  # noqa: S608
        return bool(cursor.fetchall())

    def _create(self) -> None:
        with self.transaction() as cursor:
            # Views that already stand at a position and whose rows older code wrote are
            # rebuilt from seq 1 (docs/operations.md "Upgrading").
            older = self._older_code_tables(cursor)
            rebuild = bool(older) and self._has_table(cursor, POSITION_TABLE)
            for table in self.kept_tables:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {table.sql_name} ({_column_sql(table)})"
                    # SQLite: the history is stored in its key's order, no second index.
                    + (
                        " WITHOUT ROWID"
                        if self._placeholder == "?" and table in HISTORY_TABLES
                        else ""
                    )
                )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (projection TEXT PRIMARY KEY, "
                "last_seq BIGINT NOT NULL, last_hash TEXT NOT NULL, recorded_at TEXT NOT NULL)"
            )
            binary = "BLOB" if self._placeholder == "?" else "BYTEA"
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (projection TEXT PRIMARY KEY, "
                f"last_seq BIGINT NOT NULL, state {binary} NOT NULL)"
            )
            if rebuild:
                self._reset(cursor, DEFAULT_PROJECTION)
            for table in older:
                # The older table goes: a process of older code still running fails to
                # write a batch there (rolled back, nothing half written) rather than
                # writing rows this code's table would not have.
                if table.replaces is not None and self._has_table(cursor, table.replaces):
                    cursor.execute(f"DROP TABLE {table.replaces}")

    def _require_this_codes_tables(self) -> None:
        """Views opened to read as they stand (`create=False`) have every table of this
        code, or `ViewsReadOnly` says who rebuilds them."""
        with self.transaction(write=False) as cursor:
            older = [table.view for table in self._older_code_tables(cursor)]
        if older:
            raise ViewsOfOlderCode(
                f"the views in {self.description} were written by an older version of the "
                f"ledger (its {', '.join(older)} view): the owner role's `ledger report VIEW` "
                "rebuilds them from the journal"
            )

    def position(self, projection: str = DEFAULT_PROJECTION) -> Position:
        with self.transaction(write=False) as cursor:
            cursor.execute(
                self._sql(
                    f"SELECT last_seq, last_hash, recorded_at FROM {POSITION_TABLE} "  # noqa: S608
                    "WHERE projection = ?"
                ),
                (projection,),
            )
            rows = cursor.fetchall()
        if not rows:
            return Position(0, "0" * 64, "")
        last_seq, last_hash, recorded_at = rows[0]
        return Position(int(last_seq), str(last_hash), str(recorded_at))

    def commit_batch(
        self,
        writes: Sequence[TableWrite],
        before: Position,
        after: Position,
        projection: str = DEFAULT_PROJECTION,
    ) -> None:
        """Write the batch's rows and move the position from `before` to `after`, at once."""
        with self.transaction() as cursor:
            self._move_position(cursor, before, after, projection)
            for write in writes:
                self._write(cursor, write)

    def _move_position(
        self, cursor: _Cursor, before: Position, after: Position, projection: str
    ) -> None:
        if before.last_seq == 0:
            cursor.execute(
                self._sql(f"SELECT last_seq FROM {POSITION_TABLE} WHERE projection = ?"),  # noqa: S608
                (projection,),
            )
            if cursor.fetchall():
                raise ProjectionConflict(f"projection {projection!r} was started by another writer")
            cursor.execute(
                self._sql(f"INSERT INTO {POSITION_TABLE} VALUES (?, ?, ?, ?)"),  # noqa: S608
                (projection, after.last_seq, after.last_hash, after.recorded_at),
            )
            return
        cursor.execute(
            self._sql(
                f"UPDATE {POSITION_TABLE} SET last_seq = ?, last_hash = ?, recorded_at = ? "  # noqa: S608
                "WHERE projection = ? AND last_seq = ?"
            ),
            (after.last_seq, after.last_hash, after.recorded_at, projection, before.last_seq),
        )
        if cursor.rowcount != 1:
            raise ProjectionConflict(
                f"projection {projection!r} is no longer at seq {before.last_seq}: "
                "another writer moved it"
            )

    def _write(self, cursor: _Cursor, write: TableWrite) -> None:
        table = write.table
        if write.scopes is None:
            cursor.execute(f"DELETE FROM {table.sql_name}")  # noqa: S608
        elif write.scopes:
            cursor.executemany(
                self._sql(f'DELETE FROM {table.sql_name} WHERE "{table.scope}" = ?'),  # noqa: S608
                [(scope,) for scope in write.scopes],
            )
        if write.rows:
            marks = ", ".join("?" for _ in table.columns)
            insert = f"INSERT INTO {table.sql_name} VALUES ({marks})"  # noqa: S608
            if write.keep_existing:
                insert += " ON CONFLICT DO NOTHING"
            cursor.executemany(self._sql(insert), list(write.rows))

    def reset(self, projection: str = DEFAULT_PROJECTION) -> None:
        """Empty every view and forget the position: the next batch starts at seq 1."""
        with self.transaction() as cursor:
            self._reset(cursor, projection)

    def _reset(self, cursor: _Cursor, projection: str) -> None:
        for table in self.kept_tables:
            cursor.execute(f"DELETE FROM {table.sql_name}")  # noqa: S608
        for kept in (POSITION_TABLE, STATE_TABLE):
            forget = f"DELETE FROM {kept} WHERE projection = ?"  # noqa: S608
            cursor.execute(self._sql(forget), (projection,))
        cursor.execute(self._sql(_FORGET_SNAPSHOTS), _snapshot_keys(projection))

    def save_state(self, last_seq: int, state: bytes, projection: str = DEFAULT_PROJECTION) -> None:
        """Keep the projection's encoded state at `last_seq`, replacing the previous one."""
        with self.transaction() as cursor:
            forget = f"DELETE FROM {STATE_TABLE} WHERE projection = ?"  # noqa: S608
            cursor.execute(self._sql(forget), (projection,))
            cursor.execute(
                self._sql(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)"),  # noqa: S608
                (projection, last_seq, state),
            )

    def saved_state(self, projection: str = DEFAULT_PROJECTION) -> tuple[int, bytes] | None:
        """The projection's last saved state and its seq; None when none was saved."""
        with self.transaction(write=False) as cursor:
            cursor.execute(
                self._sql(f"SELECT last_seq, state FROM {STATE_TABLE} WHERE projection = ?"),  # noqa: S608
                (projection,),
            )
            rows = cursor.fetchall()
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def save_snapshot(
        self, last_seq: int, state: bytes, projection: str = DEFAULT_PROJECTION
    ) -> None:
        """Keep the projection's encoded state at `last_seq` as well as the others kept
        (`snapshot_at_or_before`): a row of the state table under its own key."""
        self.save_state(last_seq, state, f"{projection}{_SNAPSHOT_MARK}{last_seq}")

    def snapshot_at_or_before(
        self, seq: int, projection: str = DEFAULT_PROJECTION
    ) -> tuple[int, bytes] | None:
        """The projection's latest state kept by `save_snapshot` at or before `seq`, and
        its seq; None when none was kept there."""
        with self.transaction(write=False) as cursor:
            cursor.execute(self._sql(_NEAREST_SNAPSHOT), (*_snapshot_keys(projection), seq))
            rows = cursor.fetchall()
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def history_start(self, projection: str = DEFAULT_PROJECTION) -> int | None:
        """The seq from which the accounts' history is complete; None when none is kept
        (scratch views, or views built before the history was)."""
        with self.transaction(write=False) as cursor:
            if not self._has_table(cursor, HISTORY_START.sql_name):
                return None
            cursor.execute(
                self._sql(f"SELECT first_seq FROM {HISTORY_START.sql_name} WHERE projection = ?"),  # noqa: S608
                (projection,),
            )
            rows = cursor.fetchall()
        return int(rows[0][0]) if rows else None

    def query(self, cursor: _Cursor, statement: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one read statement (`?` placeholders), in `cursor`'s transaction."""
        cursor.execute(self._sql(statement), params)
        return cursor.fetchall()

    def rows(self, table: Table) -> list[Row]:
        """Every row of `table`, ordered by its key in code point order (sorted here, not by
        the database, whose text collation may follow a locale)."""
        names = ", ".join(_quoted(table.column_names))
        with self.transaction(write=False) as cursor:
            cursor.execute(f"SELECT {names} FROM {table.sql_name}")  # noqa: S608
            rows: list[Row] = [tuple(row) for row in cursor.fetchall()]
        positions = [table.column_names.index(name) for name in table.key]
        rows.sort(key=lambda row: _sort_key(row, positions))
        return rows

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ViewDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
