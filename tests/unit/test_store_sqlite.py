"""The shared store suite on SQLite, and what opening a store URL accepts."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from eventsourcing.persistence import Tracking

from app.commands import ingest_stream
from app.simulation import simulate
from ledger.application import LedgerApplication
from ledger.invariants import InvariantViolation
from ledger.journal import GENESIS_HASH
from ledger.policy import load_policy
from ledger.store import (
    INPUTS_SEEN_TABLE,
    JOURNAL_STREAM_ID,
    LedgerStore,
    StoreUrlError,
    open_factory,
)
from ledger.store_url import parse_postgres_url
from tests.store_suite import *  # noqa: F403  # the shared suite's tests run here
from tests.store_suite import INBOX, decided_entries, input_digest, journal_entries, last_hash


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_the_suite_is_collected_here() -> None:
    assert "test_a_large_batch_in_one_append" in globals()


def test_a_store_written_before_the_inputs_seen_table_is_filled_from_its_journal(
    store_url: str, tmp_path: Path
) -> None:
    with LedgerStore.open(store_url) as store:
        store.append(decided_entries(1, 4_000, GENESIS_HASH), [], Tracking(INBOX, 0))
    with sqlite3.connect(tmp_path / "ledger.db") as connection:  # as older code left it
        connection.execute(f"DROP TABLE {INPUTS_SEEN_TABLE}")
    with LedgerStore.open(store_url) as store:  # a writer's open makes the table, empty
        assert store.inputs_seen(["in-1"], 4_000) == {}
        assert store.catch_up_inputs_seen() == 4_000
        ids = [f"in-{n}" for n in range(2_001)]
        assert store.inputs_seen(ids, 4_000) == {
            f"in-{n}": input_digest(n) for n in range(1, 2_001)
        }  # in-0's first event would be at seq 0: not in this journal
        assert store.catch_up_inputs_seen() == 0  # the last record is the last input's


# The inputs-seen table as the code before its layout by seq wrote it.
_EARLIER_INPUTS_SEEN = (
    f"CREATE TABLE {INPUTS_SEEN_TABLE} (event_id TEXT PRIMARY KEY, "
    "input_digest TEXT NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID",
    f"CREATE INDEX {INPUTS_SEEN_TABLE}_seq ON {INPUTS_SEEN_TABLE} (seq)",
)


def _inputs_seen_layout(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? ORDER BY name",
            (INPUTS_SEEN_TABLE,),
        )
        return [(str(kind), str(sql)) for kind, sql in rows]


def _inputs_seen_rows(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as connection:
        query = f"SELECT seq, event_id, input_digest FROM {INPUTS_SEEN_TABLE} ORDER BY seq"  # noqa: S608
        return [
            (int(seq), str(event), str(digest)) for seq, event, digest in connection.execute(query)
        ]


def test_a_store_with_the_inputs_seen_keyed_by_event_id_is_moved_to_the_layout_by_seq(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"
    first = decided_entries(1, 4_000, GENESIS_HASH)  # in-1 .. in-2000 at seqs 2, 4 .. 4,000
    with LedgerStore.open(store_url) as store:
        store.append(first, [], Tracking(INBOX, 0))
    layout, rows = _inputs_seen_layout(path), _inputs_seen_rows(path)
    assert rows == [(2 * n, f"in-{n}", input_digest(n)) for n in range(1, 2_001)]
    with sqlite3.connect(path) as connection:  # as the code before the layout by seq left it
        connection.execute(f"DROP TABLE {INPUTS_SEEN_TABLE}")
        for statement in _EARLIER_INPUTS_SEEN:
            connection.execute(statement)
        connection.executemany(
            f"INSERT INTO {INPUTS_SEEN_TABLE} (event_id, input_digest, seq) VALUES (?, ?, ?)",  # noqa: S608
            [(event, digest, seq) for seq, event, digest in rows],
        )
    ids = [f"in-{n}" for n in range(2_002)]
    with LedgerStore.open(store_url, read_only=True) as reader:  # a reader reads it as it is
        assert reader.inputs_seen(ids, 3_000) == {
            f"in-{n}": input_digest(n) for n in range(1, 1_501)
        }
    assert _inputs_seen_layout(path) != layout
    with LedgerStore.open(store_url) as store:  # a writer's open moves the rows
        assert _inputs_seen_layout(path) == layout
        assert _inputs_seen_rows(path) == rows
        assert store.inputs_seen(ids, 3_000) == {
            f"in-{n}": input_digest(n) for n in range(1, 1_501)
        }
        assert store.catch_up_inputs_seen() == 0
        store.append(decided_entries(4_001, 2, last_hash(first)), [], Tracking(INBOX, 1))
        assert store.inputs_seen(["in-2000", "in-2001"], 4_002) == {
            "in-2000": input_digest(2_000),
            "in-2001": input_digest(2_001),
        }
    with LedgerStore.open(store_url) as store:  # moved once: the next open finds it so
        assert _inputs_seen_layout(path) == layout
        assert len(_inputs_seen_rows(path)) == 2_001


def test_a_journal_with_a_seq_missing_is_refused_where_it_is_read(
    store_url: str, tmp_path: Path
) -> None:
    with LedgerStore.open(store_url) as store:
        store.append(journal_entries(1, 6, GENESIS_HASH), [], Tracking(INBOX, 0))
    with sqlite3.connect(tmp_path / "ledger.db") as connection:  # a row lost under the ledger
        connection.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 4",
            (JOURNAL_STREAM_ID.hex,),
        )
    with LedgerStore.open(store_url, read_only=True) as store:
        assert [entry.seq for entry in store.read_journal(limit=3)] == [1, 2, 3]
        with pytest.raises(InvariantViolation, match=r"journal gap: seqs 5\.\.6 read where 4\.\.5"):
            store.read_journal(after_seq=3)
        with pytest.raises(InvariantViolation, match=r"journal gap: seqs 1\.\.6 read where 1\.\.5"):
            store.read_journal()


def test_a_memory_store_is_private_to_its_instance() -> None:
    with (
        LedgerStore.open("sqlite:///:memory:") as first,
        LedgerStore.open("sqlite:///:memory:") as second,
    ):
        first.append(journal_entries(1, 2, GENESIS_HASH), [], Tracking(INBOX, 0))
        assert first.last_seq() == 2
        assert second.last_seq() == 0
        assert first.describe() == "sqlite:///:memory:"


def test_a_relative_path_is_created_under_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state" / "with space?#").mkdir(parents=True)  # a store's folder must exist
    with LedgerStore.open("sqlite:///state/with space?#/ledger.db") as store:
        store.append(journal_entries(1, 1, GENESIS_HASH), [], None)
        assert store.describe() == f"sqlite:///{tmp_path}/state/with space?#/ledger.db"
    assert (tmp_path / "state" / "with space?#" / "ledger.db").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@host/db",
        "sqlite://relative.db",
        "sqlite:///",
        "postgresql://host/db",
        "postgresql://user@host",
        "postgresql://user@host/db/extra",
        "postgresql://user@host:notaport/db",
        "postgresql://user@host/db?sslmode=disable",
        "postgresql://user@host/db?schema=a&schema=b",
        "postgresql://user@host/db?schema=drop table",
    ],
)
def test_urls_refused(url: str) -> None:
    with pytest.raises(StoreUrlError):
        open_factory(url)


def test_postgres_url_parts_and_their_description() -> None:
    location = parse_postgres_url("postgresql://led%40ger:s3cr%2Ft@DB.example:6543/book?schema=q1")
    assert (location.user, location.password, location.host) == ("led@ger", "s3cr/t", "db.example")
    assert (location.port, location.dbname, location.schema) == (6543, "book", "q1")
    assert "s3cr" not in location.describe()
    assert location.describe() == "postgresql://led@ger@db.example:6543/book?schema=q1"
    defaults = parse_postgres_url("postgres://postgres@127.0.0.1/ledger")
    assert (defaults.password, defaults.port, defaults.schema) == ("", 5432, "public")


def test_a_postgres_url_asking_for_tls_says_where_tls_is_set() -> None:
    """`?sslmode=verify-full` was refused without a word on how to reach the server over TLS."""
    with pytest.raises(StoreUrlError, match=r"libpq's environment \(PGSSLMODE, PGSSLROOTCERT"):
        parse_postgres_url("postgresql://ledger_reader@db.example/ledger?sslmode=verify-full")


def test_a_new_store_file_is_the_owners_alone(tmp_path: Path) -> None:
    """Every client's figures were readable by every local user: the store file, its WAL
    and its shared memory file were made 0644 under the usual umask."""
    path = tmp_path / "ledger.db"
    previous = os.umask(0o022)
    try:
        with LedgerStore.open(f"sqlite:///{path}") as store:
            app = LedgerApplication(store, load_policy(None))
            ingest_stream(app, io.BytesIO(b"\n".join(simulate(3, 2, 1))), "test")
            kept = [path, path.with_name("ledger.db-wal"), path.with_name("ledger.db-shm")]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in kept if p.exists()}
    finally:
        os.umask(previous)
    assert modes["ledger.db"] == 0o600
    assert set(modes.values()) == {0o600}, modes
