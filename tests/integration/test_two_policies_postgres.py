"""A journal under two policies on PostgreSQL (tests/two_policies.py): the writer role keeps
each adopted policy's document with its `policy_adopted`, the reader role reads them, and
every view and read is the one the SQLite store gives, byte for byte."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.cli import main
from ledger.adopted_policies import adopted_policies
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections import views
from tests import two_policies
from tests.integration.test_store_privileges import role_url
from tests.unit.test_api_policy_adopted import UNDER_B, serve_through_an_older_writers_adoption
from tests.unit.test_two_policies import GOLDEN

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reader_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Day one decided by the owner's first open under A, day two by `ledger_writer`
    restarted with B; the URL of the schema as `ledger_reader`."""
    schema = f"policies_{uuid.uuid4().hex[:12]}"
    folder = tmp_path_factory.mktemp("two-policies-pg")
    a, b = two_policies.write_policies(folder)
    two_policies.ingest(role_url(postgres_url, "ledger_owner", schema), a, two_policies.DAY_ONE)
    two_policies.ingest(role_url(postgres_url, "ledger_writer", schema), b, two_policies.DAY_TWO)
    return role_url(postgres_url, "ledger_reader", schema)


def test_the_reader_reads_the_kept_documents_and_every_view(reader_url: str) -> None:
    with LedgerStore.open(reader_url, read_only=True) as store:
        kept = store.adopted_policies()
        policies = adopted_policies(store)
        with views.views_at(store, policies, two_policies.LAST_SEQ) as database:
            text = two_policies.every_view_text(database)
    assert [seq for seq, _ in kept] == [1, 9]
    assert [policy.version for policy in policies.by_digest.values()] == ["2026-11-25.1", "hk-2"]
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_reads_as_the_reader_value_each_seq_with_its_policy(
    reader_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for as_of, level in (("8", "1.66660583"), ("13", "1.42608619")):
        query = ["--store", reader_url, "query", "margin", "C1", "--as-of", as_of]
        assert main([*query, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["margin_level"] == level
    out = tmp_path / "statements"
    statements = ["statements", "daily", "--date", "2026-11-02", "--out", str(out)]
    assert main(["--store", reader_url, *statements]) == 0
    page = (out / "statement-2026-11-02-C1.html").read_text(encoding="utf-8")
    assert "policy 2026-11-25.1." in page
    assert main(["--store", reader_url, "report", "margin-clients", "--format", "csv"]) == 0
    assert "1.42608619" in capsys.readouterr().out


def test_a_writer_upgraded_under_the_journals_policy_keeps_its_document(
    postgres_url: str, tmp_path: Path
) -> None:
    """On a store of older code (no document kept) the writer role's start, under the
    journal's policy, finds the seq that adopted it and keeps its document there."""
    schema = f"policies_{uuid.uuid4().hex[:12]}"
    owner = role_url(postgres_url, "ledger_owner", schema)
    a, b = two_policies.two_policy_store(owner, tmp_path)
    events = sql.Identifier(schema, "stored_events")
    with psycopg.connect(postgres_url) as admin, admin.transaction():
        # The journal table is append-only (a trigger): older code wrote no such rows.
        admin.execute(sql.SQL("ALTER TABLE {0} DISABLE TRIGGER USER").format(events))
        admin.execute(sql.SQL("DELETE FROM {0} WHERE topic = 'policy_document'").format(events))
        admin.execute(sql.SQL("ALTER TABLE {0} ENABLE TRIGGER USER").format(events))
    with LedgerStore.open(role_url(postgres_url, "ledger_writer", schema)) as store:
        assert store.adopted_policies() == []
        LedgerApplication(store, load_policy(b))
        assert store.adopted_policies() == [(9, b.read_bytes())]
    assert a.is_file()


def test_the_api_serving_while_an_older_writer_adopts_a_policy(
    postgres_url: str, tmp_path: Path
) -> None:
    """The API as `ledger_reader` answers 503 past a policy adopted by a writer that keeps
    no document (tests/unit/test_api_policy_adopted.py), and values the journal with it
    once `ledger_writer`'s start of this version keeps it."""
    schema = f"policies_{uuid.uuid4().hex[:12]}"
    owner = role_url(postgres_url, "ledger_owner", schema)
    events = sql.Identifier(schema, "stored_events")

    def drop_kept_document() -> None:
        with psycopg.connect(postgres_url) as admin, admin.transaction():
            admin.execute(sql.SQL("ALTER TABLE {0} DISABLE TRIGGER USER").format(events))
            admin.execute(sql.SQL("DELETE FROM {0} WHERE topic = 'policy_document'").format(events))
            admin.execute(sql.SQL("ALTER TABLE {0} ENABLE TRIGGER USER").format(events))

    reader = role_url(postgres_url, "ledger_reader", schema)
    with serve_through_an_older_writers_adoption(
        owner, tmp_path, drop_kept_document, processes=True, reader_url=reader
    ) as client:
        with LedgerStore.open(role_url(postgres_url, "ledger_writer", schema)) as writer:
            LedgerApplication(writer, load_policy(tmp_path / "b.toml"))
        assert client.get("/accounts/C1/margin").json()["margin_level"] == UNDER_B
        answer = client.get("/accounts/C1/margin", params={"as_of": "13"})
        assert answer.json()["margin_level"] == UNDER_B
        assert client.get("/health").json()["policy_version"] == "hk-2"
