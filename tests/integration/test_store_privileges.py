"""PostgreSQL least privilege: the owner creates, the writer appends, the reader reads, and
nobody, the owner included, rewrites the journal (deploy/local/postgres makes the roles)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from ledger.store import LedgerStore, PersistenceError, StoreNotPermitted, StoreUrlError, Tracking
from ledger.store_privileges import (
    DEPOSITS_TABLE,
    JOURNAL_TABLE,
    LOCK_FUNCTION,
    STORE_LAYOUT,
    TRACKING_TABLE,
    TRADES_TABLE,
)
from tests.store_suite import INBOX, journal_entries, reject_records

pytestmark = pytest.mark.integration


def role_url(postgres_url: str, role: str, schema: str) -> str:
    return f"{postgres_url.replace('//postgres@', f'//{role}@', 1)}?schema={schema}"


@pytest.fixture
def schema() -> str:
    return f"roles_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def owned_store(postgres_url: str, schema: str) -> Iterator[LedgerStore]:
    """A store created by `ledger_owner`, holding seq 1..3 from inbox offset 0, which
    booked trade T1 at seq 2 and deposit D1 at seq 3."""
    with LedgerStore.open(role_url(postgres_url, "ledger_owner", schema)) as store:
        entries = journal_entries(1, 3, "0" * 64)
        store.append(entries, [], Tracking(INBOX, 0), [("T1", 2, b"t")], [("D1", 3)])
        yield store


def execute(postgres_url: str, role: str, schema: str, statement: str, *args: Any) -> None:
    """Run one statement as `role` on the schema's tables."""
    url = postgres_url.replace("//postgres@", f"//{role}@", 1)
    names = {
        "journal": sql.Identifier(schema, JOURNAL_TABLE),
        "tracking": sql.Identifier(schema, TRACKING_TABLE),
        "trades": sql.Identifier(schema, TRADES_TABLE),
        "deposits": sql.Identifier(schema, DEPOSITS_TABLE),
    }
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(**names), args or None)


REWRITES = [
    "UPDATE {journal} SET state = state || ' '::bytea WHERE originator_version = 2",
    "DELETE FROM {journal} WHERE originator_version = 3",
    "TRUNCATE {journal}",
    "UPDATE {trades} SET trade = 'forged'::bytea WHERE trade_id = 'T1'",
    "DELETE FROM {trades}",
    "TRUNCATE {trades}",
    "UPDATE {deposits} SET seq = 1 WHERE reference = 'D1'",
    "DELETE FROM {deposits}",
    "TRUNCATE {deposits}",
]


@pytest.mark.usefixtures("owned_store")
@pytest.mark.parametrize("statement", REWRITES)
def test_the_writer_cannot_rewrite_a_journal_row(
    postgres_url: str, schema: str, statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        execute(postgres_url, "ledger_writer", schema, statement)


@pytest.mark.usefixtures("owned_store")
@pytest.mark.parametrize("statement", REWRITES)
def test_even_the_owner_is_refused_by_the_trigger(
    postgres_url: str, schema: str, statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        execute(postgres_url, "ledger_owner", schema, statement)


@pytest.mark.usefixtures("owned_store")
@pytest.mark.parametrize("role", ["ledger_owner", "ledger_writer"])
def test_a_tracking_position_only_moves_forward(postgres_url: str, schema: str, role: str) -> None:
    # The writer keeps UPDATE on the tracking table (docs/security.md says why): only forward.
    for statement in (
        "UPDATE {tracking} SET notification_id = 0 WHERE application_name = %s",
        "UPDATE {tracking} SET application_name = 'forged:0' WHERE application_name = %s",
        "DELETE FROM {tracking} WHERE application_name = %s",
    ):
        # The writer's DELETE stops at its rights already, the owner's at the trigger.
        refused = "only moves forward|permission denied"
        with pytest.raises(errors.InsufficientPrivilege, match=refused):
            execute(postgres_url, role, schema, statement, INBOX)
    with pytest.raises(errors.InsufficientPrivilege):
        execute(postgres_url, role, schema, "TRUNCATE {tracking}")


@pytest.mark.usefixtures("owned_store")
def test_the_writer_may_update_the_position_column_alone(postgres_url: str, schema: str) -> None:
    rename = "UPDATE {tracking} SET application_name = 'forged:0' WHERE application_name = %s"
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        execute(postgres_url, "ledger_writer", schema, rename, INBOX)
    forward = "UPDATE {tracking} SET notification_id = 5 WHERE application_name = %s"
    execute(postgres_url, "ledger_writer", schema, forward, INBOX)
    with LedgerStore.open(
        role_url(postgres_url, "ledger_reader", schema), read_only=True
    ) as reader:
        assert reader.max_tracking_id(INBOX) == 5


def test_the_writer_appends_and_the_reader_reads(
    postgres_url: str, schema: str, owned_store: LedgerStore
) -> None:
    with LedgerStore.open(role_url(postgres_url, "ledger_writer", schema)) as writer:
        writer.append(journal_entries(4, 2, "1" * 64), reject_records(1, 1), Tracking(INBOX, 1))
        assert (writer.last_seq(), writer.max_tracking_id(INBOX)) == (5, 1)
        writer.record_originals([("T2", 4, b"u")], [("D2", 5)])  # what a writer's start records
    with LedgerStore.open(
        role_url(postgres_url, "ledger_reader", schema), read_only=True
    ) as reader:
        assert [entry.seq for entry in reader.read_journal()] == [1, 2, 3, 4, 5]
        assert reader.max_tracking_id(INBOX) == 1
        assert reader.trades_booked(["T1", "T2"], 5) == {"T1": b"t", "T2": b"u"}
        assert reader.deposits_booked(["D1", "D2"], 5) == {"D1": 3, "D2": 5}
    assert owned_store.last_seq() == 5


@pytest.mark.usefixtures("owned_store")
@pytest.mark.parametrize(
    "statement",
    [
        *REWRITES,
        "INSERT INTO {journal} (originator_id, originator_version, topic, state) "
        "VALUES (gen_random_uuid(), 1, 'forged', ''::bytea)",
        "INSERT INTO {tracking} VALUES ('forged:0', 99)",
        "INSERT INTO {trades} VALUES ('T9', 1, 'forged'::bytea)",
        "INSERT INTO {deposits} VALUES ('D9', 1)",
        "UPDATE {tracking} SET notification_id = 99",
    ],
)
def test_the_reader_cannot_write_anything(postgres_url: str, schema: str, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        execute(postgres_url, "ledger_reader", schema, statement)


@pytest.mark.usefixtures("owned_store")
def test_the_reader_store_cannot_append(postgres_url: str, schema: str) -> None:
    with LedgerStore.open(
        role_url(postgres_url, "ledger_reader", schema), read_only=True
    ) as reader:
        with pytest.raises(PersistenceError, match="permission denied"):
            reader.append(journal_entries(4, 1, "0" * 64), [], Tracking(INBOX, 7))
        assert reader.last_seq() == 3


@pytest.mark.usefixtures("owned_store")
def test_the_readers_credentials_are_refused_a_writing_open(postgres_url: str, schema: str) -> None:
    """Refused at the open, as a setting to fix (exit status 2), rather than at the first
    append after a batch was decided (exit status 1, as if the store were down)."""
    with pytest.raises(StoreNotPermitted, match="this role may read the store but not write it"):
        LedgerStore.open(role_url(postgres_url, "ledger_reader", schema))


def test_only_the_owner_creates_a_store(postgres_url: str, schema: str) -> None:
    for role in ("ledger_writer", "ledger_reader"):
        with pytest.raises(StoreUrlError, match="open the store once with its owner role"):
            LedgerStore.open(role_url(postgres_url, role, schema))


def test_other_roles_are_refused_a_store_prepared_for_other_code_until_the_owner_opens_it(
    owned_store: LedgerStore, postgres_url: str, schema: str
) -> None:
    """An upgrade: the owner prepared the store for an older layout (its mark says so)."""
    older = "ledger store layout 4; roles: ledger_owner, ledger_reader, ledger_writer"
    lock = sql.Identifier(schema, LOCK_FUNCTION)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("COMMENT ON FUNCTION {}() IS {}").format(lock, sql.Literal(older))
        )
    for role in ("ledger_writer", "ledger_reader", "ledger_owner"):
        # Every role's read-only open too (the read commands, the API), the owner's included:
        # only its writing open updates the store.
        for read_only in (False, True) if role != "ledger_owner" else (True,):
            with pytest.raises(
                StoreUrlError,
                match=f"schema {schema} is prepared as ledger store layout 4, this code needs "
                f"{STORE_LAYOUT}: open the store once with its owner role to update it",
            ):
                LedgerStore.open(role_url(postgres_url, role, schema), read_only=read_only)
    with LedgerStore.open(role_url(postgres_url, "ledger_owner", schema)):
        pass
    with LedgerStore.open(role_url(postgres_url, "ledger_writer", schema)) as writer:
        assert writer.last_seq() == 3
