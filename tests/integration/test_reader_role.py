"""Every read command works as `ledger_reader`, the PostgreSQL role with SELECT only: the
owner builds the store once, the reader reads it and writes nothing into it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql

from app.api import create_app
from app.api_as_of import AsOfSource
from app.cli import main
from app.simulation import simulate
from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_process import running_api
from tests.api_security import AUDITOR, api_security
from tests.integration.test_store_privileges import role_url

pytestmark = pytest.mark.integration

FIRST_DATE = "2026-11-02"  # the simulation's first business day


@pytest.fixture(scope="module")
def reader_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store ingested by `ledger_owner`; the URL of the same schema as `ledger_reader`."""
    schema = f"reader_{uuid.uuid4().hex[:12]}"
    inbox = tmp_path_factory.mktemp("reader") / "inbox.jsonl"
    inbox.write_bytes(b"\n".join(simulate(7, 6, 2)) + b"\n")
    owner = role_url(postgres_url, "ledger_owner", schema)
    assert main(["--store", owner, "ingest", str(inbox)]) in (0, 1)  # 1: some refused
    # The owner builds the views (and grants the reader SELECT on them): replay compares them.
    assert main(["--store", owner, "report", "margin-clients"]) == 0
    return role_url(postgres_url, "ledger_reader", schema)


def _account(reader_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--store", reader_url, "report", "margin-clients", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows
    return str(rows[0]["account_id"])


def test_report_as_the_reader_builds_its_views_without_writing(
    reader_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    account = _account(reader_url, capsys)
    assert main(["--store", reader_url, "query", "margin", account, "--format", "json"]) == 0
    equity = json.loads(capsys.readouterr().out)["equity"]
    assert main(["--store", reader_url, "report", "margin-clients", "--format", "json"]) == 0
    rows = {r["account_id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows[account]["equity"] == equity
    assert main(["--store", reader_url, "report", "margin-calls", "--as-of", "50"]) == 0
    assert "margin-calls as of seq 50" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["query", "balances", "{account}"],
        ["query", "margin", "{account}", "--as-of", "2026-11-03T12:00:00Z"],
        ["rejects", "--format", "csv"],
        ["journal", "export", "--out", "{tmp}/journal.jsonl"],
        ["audit", "verify"],
        ["audit", "replay"],
        ["audit", "explain", "1"],
        ["check", "{account}", "{tmp}/record.json"],
        ["stress", "--shock", "BTC=-30%"],
        ["statements", "daily", "--date", FIRST_DATE, "--out", "{tmp}/statements"],
    ],
)
def test_every_read_command_works_as_the_reader(
    reader_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    account = _account(reader_url, capsys)
    record = {
        "type": "withdrawal_requested",
        "event_id": "reader-check-1",
        "occurred_at": "2026-11-03T23:00:00Z",
        "account_id": account,
        "asset": "USD",
        "amount": "1.00",
    }
    (tmp_path / "record.json").write_text(json.dumps(record), encoding="utf-8")
    arguments = [part.format(account=account, tmp=tmp_path) for part in command]
    status = main(["--store", reader_url, *arguments])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "permission denied" not in captured.err


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "{tmp}/inbox.jsonl"],
        ["store", "init"],
        ["store", "snapshot"],
        ["inbox", "skip", "file:{digest}:1", "--reason", "ticket 7"],
    ],
)
def test_a_writing_command_is_refused_the_readers_credentials_in_one_line(
    reader_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A setting to fix, like a role that may not use the schema: exit status 2 at the
    open, before a record is decided, and nothing is written."""
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_bytes(b"\n".join(simulate(9, 2, 1)) + b"\n")
    with LedgerStore.open(reader_url, read_only=True) as store:
        before = store.last_seq()
    arguments = [part.format(tmp=tmp_path, digest="0" * 64) for part in command]
    status = main(["--store", reader_url, *arguments])
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.count("\n") == 1
    assert "this role may read the store but not write it" in error
    # Every writing command is named (`store snapshot` was left out of the list).
    assert "(ingest, run, inbox skip, store init, store snapshot)" in error
    with LedgerStore.open(reader_url, read_only=True) as store:
        assert store.last_seq() == before


def test_a_reader_replaying_views_never_built_is_told_in_one_line(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = f"reader_{uuid.uuid4().hex[:12]}"
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_bytes(b"\n".join(simulate(8, 2, 1)) + b"\n")
    owner = role_url(postgres_url, "ledger_owner", schema)
    assert main(["--store", owner, "ingest", str(inbox)]) in (0, 1)
    capsys.readouterr()
    reader = role_url(postgres_url, "ledger_reader", schema)
    assert main(["--store", reader, "audit", "replay"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"the views in schema {schema} were never built" in error
    assert "Traceback" not in error


def test_the_api_serves_as_the_reader(reader_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    account = _account(reader_url, capsys)
    policy = load_policy(None)
    with LedgerStore.open(reader_url, read_only=True) as store:
        app = create_app(
            store, AdoptedPolicies.of(policy), api_security(), AsOfSource(reader_url, None)
        )
        with TestClient(app) as client:
            client.headers.update(AUDITOR)
            margin = client.get(f"/accounts/{account}/margin")
            assert margin.status_code == 200, margin.text
            assert margin.json()["as_of_seq"] == store.last_seq()
            assert client.get("/reports/margin-calls").status_code == 200
            past = client.get(
                f"/accounts/{account}/balances", params={"as_of": "2026-11-03T12:00:00Z"}
            )
            assert past.status_code == 200, past.text
            assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("command", [["report", "balances"], ["query", "margin", "C000001"]])
def test_a_login_role_without_the_readers_rights_is_refused_in_one_line(
    postgres_url: str, reader_url: str, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A role that may use the schema (the `public` schema lets every role) but was granted
    nothing read 'the store ... cannot be used: permission denied for table stored_events',
    exit status 1, as if the store were broken: a setting to fix, status 2 at the open."""
    stranger = f"stranger_{uuid.uuid4().hex[:8]}"
    schema = reader_url.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stranger)))
        admin.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(stranger)
            )
        )
    status = main(["--store", role_url(postgres_url, stranger, schema), *command])
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.count("\n") == 1
    assert "this role may not read the store: give it ledger_reader's rights" in error


@pytest.mark.parametrize(("role", "warned"), [("ledger_owner", True), ("ledger_reader", False)])
def test_ledger_api_says_when_its_role_may_write_the_journal(
    postgres_url: str, reader_url: str, tmp_path: Path, role: str, warned: bool
) -> None:
    """Served as the owner, the API said nothing: whoever took over its process could
    write the store. It serves all the same, with one warning line."""
    schema = reader_url.rsplit("schema=", 1)[1]
    url = role_url(postgres_url, role, schema)
    with running_api(url, tmp_path / "api.log") as api:
        assert httpx.get(f"{api.base}/health", timeout=10).status_code == 200
    said = (tmp_path / "api.log").read_text()
    warning = f"ledger api: warning: the store's role ({url}) may write the journal"
    assert (warning in said) is warned, said
