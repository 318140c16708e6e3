"""The shared store suite on a real PostgreSQL server, one fresh schema per test."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import Tracking

from ledger.store import LedgerStore
from tests.store_suite import *  # noqa: F403  # the shared suite's tests run here
from tests.store_suite import INBOX, journal_entries

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
