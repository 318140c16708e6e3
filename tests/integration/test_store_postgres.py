"""The shared store suite on a real PostgreSQL server, one fresh schema per test."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import Tracking

from ledger.store import LedgerStore
from tests.store_suite import *  # noqa: F403  # the shared suite's tests run here
from tests.store_suite import INBOX, journal_entries, last_hash, reject_records

pytestmark = pytest.mark.integration


@pytest.fixture
def store_url(pg_schema_url: str) -> str:
    return pg_schema_url


def schema_exists(postgres_url: str, schema: str) -> bool:
    import psycopg  # noqa: PLC0415 (as in conftest: only integration runs need the driver)

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    return found is not None


def test_a_missing_schema_is_created(postgres_url: str) -> None:
    assert not schema_exists(postgres_url, "created_by_open")
    with LedgerStore.open(f"{postgres_url}?schema=created_by_open") as store:
        assert store.last_seq() == 0
        assert store.describe().endswith("?schema=created_by_open")
    assert schema_exists(postgres_url, "created_by_open")
    with LedgerStore.open(f"{postgres_url}?schema=created_by_open") as again:
        assert again.read_journal() == []


def test_schemas_are_separate_stores(postgres_url: str) -> None:
    with (
        LedgerStore.open(f"{postgres_url}?schema=separate_a") as first,
        LedgerStore.open(f"{postgres_url}?schema=separate_b") as second,
    ):
        first.append(journal_entries(1, 2, "0" * 64), [], Tracking(INBOX, 0))
        assert (first.last_seq(), second.last_seq()) == (2, 0)
        assert second.max_tracking_id(INBOX) is None


def test_the_rows_are_numbered_in_the_order_they_were_appended(pg_schema_url: str) -> None:
    """The journal table's notification ids (its sequence, in row order) follow the appends
    and, within one, the journal's seq and then the rejects' numbers, as the INSERT that the
    COPY replaced numbered them."""
    import psycopg  # noqa: PLC0415 (as in conftest: only integration runs need the driver)

    first = journal_entries(1, 3, "0" * 64)
    with LedgerStore.open(pg_schema_url) as store:
        store.append(first, reject_records(1, 2), Tracking(INBOX, 0))
        store.append(journal_entries(4, 2, last_hash(first)), [], Tracking(INBOX, 1))
        store.append([], reject_records(3, 1), Tracking(INBOX, 2))
    url, schema = pg_schema_url.split("?schema=")
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            f"SELECT topic, originator_version FROM {schema}.stored_events "  # noqa: S608
            "ORDER BY notification_id"
        ).fetchall()
    journal = [("deposit_credited", seq) for seq in range(1, 6)]
    rejects = [("reject", number) for number in range(1, 4)]
    assert rows == [*journal[:3], *rejects[:2], *journal[3:], rejects[2]]
