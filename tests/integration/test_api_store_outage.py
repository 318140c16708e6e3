"""`ledger api` while its PostgreSQL database cannot serve it: a 503 with the API's JSON
error body and a Retry-After, the same on /health for the probes, and the figures again
once the database serves; never a 500 with a traceback in the log."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql

from app.api import create_app
from app.commands import ingest_stream
from app.simulation import simulate
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_security import AUDITOR, api_security

pytestmark = pytest.mark.integration


@contextmanager
def _journal_locked(server_url: str, database: str) -> Iterator[None]:
    """The server refuses the API's reads for a while, as during a restart or a migration:
    the journal table locked by another session, and the API's sessions (ended, so that
    they reconnect) giving up on a lock after 100 ms; a server that is down makes the
    connection pool wait about 80 s before the same error, too long for a test."""
    name = sql.Identifier(database)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} SET lock_timeout = '100ms'").format(name))
    with psycopg.connect(server_url.rsplit("/", 1)[0] + f"/{database}") as holder:
        holder.execute("LOCK TABLE stored_events IN ACCESS EXCLUSIVE MODE")
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s",
                (database, holder.info.backend_pid),
            )
        yield
        holder.rollback()


def test_the_api_answers_503_while_the_database_cannot_serve_it(postgres_url: str) -> None:
    database = f"outage_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    policy = load_policy(None)
    with LedgerStore.open(url) as writer:
        inbox = b"\n".join(simulate(5, 2, 1))
        ingest_stream(LedgerApplication(writer, policy), io.BytesIO(inbox), "test")
    with (
        LedgerStore.open(url, read_only=True) as store,
        TestClient(create_app(store, policy, api_security(access_log=io.StringIO()))) as client,
    ):
        client.headers.update(AUDITOR)
        assert client.get("/health").status_code == 200
        with _journal_locked(postgres_url, database):
            for path in ("/health", "/metrics", "/reports/margin-calls"):
                answer = client.get(path)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.json() == {
                    "status_code": 503,
                    "detail": "the store cannot be reached: retry shortly",
                }
                assert answer.headers["Retry-After"] == "5"
        assert client.get("/health").status_code == 200
