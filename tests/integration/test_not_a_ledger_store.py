"""A PostgreSQL URL that names no ledger store is refused in one line with a documented exit
status, against the real server: a schema holding another application's tables, an empty
or missing schema, and roles that do not exist or may not use the store. Nothing is created
where a reader looks, and a writer never adds the ledger's tables next to foreign ones."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import REPOSITORY

pytestmark = pytest.mark.integration

READ_COMMANDS = [
    ("query", "margin", "C1"),
    ("report", "balances"),
    ("audit", "verify"),
    ("journal", "export"),
    ("rejects",),
]
connect_refusal_s_max = 8.0  # well under the pool's 10 s: the server's answer, at once


def _ledger(store: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", store, *args],
        capture_output=True, text=True, cwd=cwd, check=False, timeout=120,
    )  # fmt: skip


def _one_line(done: subprocess.CompletedProcess[str], status: int, says: str) -> None:
    assert done.returncode == status, done.stderr
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _as(postgres_url: str, role: str, schema: str) -> str:
    return f"{postgres_url.replace('//postgres@', f'//{role}@', 1)}?schema={schema}"


def _execute(postgres_url: str, statement: sql.Composed) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(statement)


def _tables(postgres_url: str, schema: str) -> list[str]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v') ORDER BY 1",
            (schema,),
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def foreign_schema(postgres_url: str) -> str:
    """A schema holding another application's table and view, and no ledger."""
    schema = f"foreign_{uuid.uuid4().hex[:12]}"
    name = sql.Identifier(schema)
    _execute(postgres_url, sql.SQL("CREATE SCHEMA {}").format(name))
    _execute(postgres_url, sql.SQL("CREATE TABLE {}.customers (id int)").format(name))
    _execute(postgres_url, sql.SQL("CREATE VIEW {}.customer_count AS SELECT 1 AS n").format(name))
    return schema


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox.jsonl"
    path.write_text(
        '{"event_id":"o1","type":"account_opened","occurred_at":"2026-11-24T00:00:00Z",'
        '"account_id":"C1","investor_class":"professional","credit_limit":"1000"}\n'
    )
    return path


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_on_a_schema_of_foreign_tables_says_it_holds_no_ledger(
    command: tuple[str, ...], postgres_url: str, foreign_schema: str, tmp_path: Path
) -> None:
    done = _ledger(f"{postgres_url}?schema={foreign_schema}", *command, cwd=tmp_path)
    _one_line(done, 2, f"schema={foreign_schema} holds no ledger (it has no journal table)")
    assert _tables(postgres_url, foreign_schema) == ["customer_count", "customers"]


def test_a_writer_never_adds_the_ledger_next_to_foreign_tables(
    postgres_url: str, foreign_schema: str, inbox: Path, tmp_path: Path
) -> None:
    done = _ledger(f"{postgres_url}?schema={foreign_schema}", "ingest", str(inbox), cwd=tmp_path)
    _one_line(done, 2, "holds other tables (customer_count, customers) and no ledger")
    assert _tables(postgres_url, foreign_schema) == ["customer_count", "customers"]


@pytest.mark.parametrize("exists", [True, False], ids=["empty_schema", "missing_schema"])
def test_read_commands_and_the_api_refuse_an_empty_or_missing_schema_and_create_nothing(
    exists: bool, postgres_url: str, tmp_path: Path
) -> None:
    schema = f"empty_{uuid.uuid4().hex[:12]}"
    if exists:
        _execute(postgres_url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    store = f"{postgres_url}?schema={schema}"
    for command in [*READ_COMMANDS, ("api", "--insecure-no-auth", "--port", "0")]:
        _one_line(_ledger(store, *command, cwd=tmp_path), 2, "holds no ledger")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    assert found == (1 if exists else 0,)
    assert _tables(postgres_url, schema) == []


@pytest.mark.parametrize("command", [READ_COMMANDS[0], ("ingest", "INBOX")])
def test_a_role_the_server_does_not_know_is_named_at_once(
    command: tuple[str, ...], postgres_url: str, inbox: Path, tmp_path: Path
) -> None:
    """A refused open, as a role without rights on the schema is: exit status 2 (it was 1,
    as if the server were down; the README's exit table gives 2 to a refused open), and
    a password in the URL is never shown."""
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    store = _as(postgres_url, role, "public").replace(f"//{role}@", f"//{role}:s3cret@", 1)
    arguments = [str(inbox) if part == "INBOX" else part for part in command]
    started_s = time.monotonic()
    done = _ledger(store, *arguments, cwd=tmp_path)
    _one_line(done, 2, f'role "{role}" does not exist')
    assert "s3cret" not in done.stderr
    assert time.monotonic() - started_s < connect_refusal_s_max


def test_a_database_the_server_does_not_have_is_named_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    missing = f"nodb_{uuid.uuid4().hex[:8]}"
    store = f"{postgres_url.rsplit('/', 1)[0]}/{missing}"
    done = _ledger(store, *READ_COMMANDS[0], cwd=tmp_path)
    _one_line(done, 2, f'database "{missing}" does not exist')


@pytest.mark.parametrize("command", [("ingest", "INBOX"), ("query", "margin", "C1")])
def test_a_role_without_rights_on_the_schema_is_refused_in_one_line(
    command: tuple[str, ...], postgres_url: str, inbox: Path, tmp_path: Path
) -> None:
    schema = f"owned_{uuid.uuid4().hex[:12]}"
    owner_store = f"{postgres_url}?schema={schema}"
    assert _ledger(owner_store, "ingest", str(inbox), cwd=tmp_path).returncode == 0
    stranger = f"stranger_{uuid.uuid4().hex[:8]}"
    _execute(postgres_url, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stranger)))
    arguments = [str(inbox) if part == "INBOX" else part for part in command]
    done = _ledger(_as(postgres_url, stranger, schema), *arguments, cwd=tmp_path)
    _one_line(done, 2, f"permission denied for schema {schema}: this role may not use the store")


def test_the_writer_role_on_a_schema_the_owner_never_opened_is_told_to_ask_the_owner(
    postgres_url: str, inbox: Path, tmp_path: Path
) -> None:
    schema = f"unopened_{uuid.uuid4().hex[:12]}"
    _execute(postgres_url, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    writer = _as(postgres_url, "ledger_writer", schema)
    _one_line(_ledger(writer, "ingest", str(inbox), cwd=tmp_path), 2, "this role may not use")
    done = subprocess.run(
        [sys.executable, "-m", "app", "--store", writer, "run", "--health-port", "0"],
        capture_output=True, text=True, cwd=REPOSITORY, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr  # at once: not 60 retries of an outage
    assert "this role may not use the store" in done.stderr.strip().splitlines()[-1]
