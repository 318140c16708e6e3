"""The views projected into PostgreSQL (the store's own schema) equal the SQLite views."""

from __future__ import annotations

import pytest

from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections import views
from projections.database import ProjectionConflict, ViewDatabase
from projections.runner import ProjectionRunner
from projections.tail import HistoryTail
from tests.unit.test_projections import compare_history_with_replay, ingest_simulation

pytestmark = pytest.mark.integration


def test_postgres_views_equal_sqlite_views(pg_schema_url: str) -> None:
    policy = load_policy(None)
    ingest_simulation(pg_schema_url, policy, seed=1, accounts=4, days=2)
    with LedgerStore.open(pg_schema_url) as store:
        with ViewDatabase.open(pg_schema_url) as postgres:
            ProjectionRunner(postgres, AdoptedPolicies.of(policy)).follow(store, until_seq=1_000)
            stale = ProjectionRunner(
                postgres, AdoptedPolicies.of(policy)
            )  # a second writer, at seq 1000
            ProjectionRunner(postgres, AdoptedPolicies.of(policy)).follow(store, batch_events=1_500)
            assert postgres.position().last_seq == store.last_seq()
            in_postgres = views.snapshot(postgres)
            with pytest.raises(ProjectionConflict, match="no longer at seq 1000"):
                stale.follow(store)
            assert views.snapshot(postgres) == in_postgres
        with ViewDatabase.open("sqlite:///:memory:") as sqlite:
            ProjectionRunner(sqlite, AdoptedPolicies.of(policy)).follow(store)
            in_sqlite = views.snapshot(sqlite)
    assert in_postgres == in_sqlite
    assert b'"perps-exposure":[["BTC-PERP"' in in_postgres


def test_postgres_history_answers_as_the_replay_does(pg_schema_url: str) -> None:
    """The accounts' history kept in PostgreSQL (the API's as_of account reads)."""
    policy = load_policy(None)
    ingest_simulation(pg_schema_url, policy, seed=1, accounts=4, days=2)
    with LedgerStore.open(pg_schema_url) as store, ViewDatabase.open(pg_schema_url) as postgres:
        ProjectionRunner(postgres, AdoptedPolicies.of(policy)).follow(store, batch_events=1_500)
        assert postgres.history_start() == 0
        seqs = set(range(1, store.last_seq() + 1, 53)) | {store.last_seq()}
        assert compare_history_with_replay(store, postgres, policy, seqs) > 100


def test_a_tail_on_a_postgres_store_answers_as_the_replay_does(pg_schema_url: str) -> None:
    """An as_of worker's history of the journal's latest events, every account's, read
    from a PostgreSQL store and kept in memory."""
    policy = load_policy(None)
    ingest_simulation(pg_schema_url, policy, seed=1, accounts=4, days=2)
    with LedgerStore.open(pg_schema_url) as store:
        half, last = store.last_seq() // 2, store.last_seq()
        tail = HistoryTail.begin(store, half)
        assert tail is not None
        assert tail.start == half
        tail.follow(store, last)
        seqs = set(range(half, last + 1, 29)) | {last}
        compared = compare_history_with_replay(store, tail.database, policy, seqs, platform=True)
        assert compared > 100
        tail.close()


def test_a_report_as_of_before_postgres_views_starts_from_a_kept_state(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projection's states kept in PostgreSQL at past positions (`report --as-of`)."""
    policy = load_policy(None)
    ingest_simulation(pg_schema_url, policy, seed=1, accounts=4, days=2)
    monkeypatch.setattr(views, "projection_state_interval_events", 400)
    with LedgerStore.open(pg_schema_url) as store:
        views.live_views(store, pg_schema_url, AdoptedPolicies.of(policy)).close()
        with ViewDatabase.open(pg_schema_url) as postgres:
            assert postgres.snapshot_at_or_before(399) is None
            found = postgres.snapshot_at_or_before(1_234)
            assert found is not None
            assert found[0] == 1_200
        for seq in (400, 1_234, store.last_seq() - 1):
            with (
                views.views_at(
                    store, AdoptedPolicies.of(policy), seq, stored_url=pg_schema_url
                ) as from_kept,
                views.views_at(store, AdoptedPolicies.of(policy), seq) as from_seq_1,
            ):
                assert views.snapshot(from_kept) == views.snapshot(from_seq_1), seq
