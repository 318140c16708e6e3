"""`ledger api` while its PostgreSQL database cannot serve it: a 503 with the API's JSON
error body and a Retry-After, the same on /health for the probes, and the figures again
once the database serves; never a 500 with a traceback in the log."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql

from app.api import create_app, served_app, store_unreachable_hold_s
from app.api_as_of import store_reach_timeout_s
from app.commands import ingest_stream
from app.simulation import simulate
from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_process import running_api
from tests.api_security import AUDITOR, TOKENS_BY_ROLE, api_security, bearer

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


def _ledger_database(postgres_url: str) -> str:
    """The URL of a new database of its own holding a small ledger."""
    database = f"outage_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    with LedgerStore.open(url) as writer:
        inbox = b"\n".join(simulate(5, 2, 1))
        ingest_stream(LedgerApplication(writer, load_policy(None)), io.BytesIO(inbox), "test")
    return url


def test_the_api_answers_503_while_the_database_cannot_serve_it(postgres_url: str) -> None:
    url = _ledger_database(postgres_url)
    database = url.rsplit("/", 1)[1]
    policy = load_policy(None)
    with (
        LedgerStore.open(url, read_only=True) as store,
        TestClient(
            create_app(store, AdoptedPolicies.of(policy), api_security(access_log=io.StringIO()))
        ) as client,
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
        # The failed read is remembered that long: the store is not tried before.
        time.sleep(store_unreachable_hold_s)
        assert client.get("/health").status_code == 200


@contextmanager
def _database_down(server_url: str, database: str) -> Iterator[None]:
    """The database refuses every connection and its sessions are ended, as when its server
    is down, until the block ends (the server back up)."""
    name = sql.Identifier(database)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        try:
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))


# Seconds a 503 may take while the server is down, generous for a loaded 2-core machine:
# the API's reads give up after 1 s (they waited about 80 s before), and a request that
# finds the store known to be down is answered at once.
_OUTAGE_ANSWER_MAX_S = 15.0
_BACK_UP_MAX_S = 60.0  # seconds for the connection pool to reconnect to a server back up


def _timed_get(client: TestClient[Any], path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


def test_the_api_answers_503_at_once_while_the_database_is_down(postgres_url: str) -> None:
    """A server that is down: the first request waits for one failed read, the others
    are not held behind it, and the figures come back once the server is up again."""
    url = _ledger_database(postgres_url)
    database = url.rsplit("/", 1)[1]
    policy = load_policy(None)
    with (
        LedgerStore.open(url, read_only=True, reach_timeout_s=store_reach_timeout_s) as store,
        TestClient(
            create_app(store, AdoptedPolicies.of(policy), api_security(access_log=io.StringIO()))
        ) as client,
    ):
        client.headers.update(AUDITOR)
        figures = client.get("/reports/margin-calls").json()
        with _database_down(postgres_url, database), ThreadPoolExecutor(2) as callers:
            first = callers.submit(_timed_get, client, "/reports/margin-calls")
            time.sleep(0.1)  # the first request is waiting for the store
            second = callers.submit(_timed_get, client, "/health")
            for call in (first, second):
                status, waited_s = call.result(timeout=_OUTAGE_ANSWER_MAX_S * 2)
                assert status == 503
                assert waited_s < _OUTAGE_ANSWER_MAX_S, waited_s
            # Known to be down: answered without waiting for the store.
            assert _timed_get(client, "/metrics")[0] == 503
        deadline = time.monotonic() + _BACK_UP_MAX_S
        while (back := client.get("/reports/margin-calls")).status_code == 503:
            assert time.monotonic() < deadline, "the API did not reach the store again"
            time.sleep(0.5)
        assert back.status_code == 200
        assert back.json() == figures
        assert figures["rows"], figures


_STOP_MAX_S = 10.0  # seconds `ledger api` may take to stop on SIGTERM, generous for 2 cores


def test_ledger_api_stops_at_once_on_sigterm_while_the_database_is_down(
    postgres_url: str, tmp_path: Path
) -> None:
    """`ledger api` as deployed (its own process, the store it opens itself): a 503 within
    the bound while the server is down, and SIGTERM ends it promptly."""
    url = _ledger_database(postgres_url)
    database = url.rsplit("/", 1)[1]
    with running_api(url, tmp_path / "api.log") as api, _database_down(postgres_url, database):
        started = time.monotonic()
        assert httpx.get(f"{api.base}/health", timeout=_OUTAGE_ANSWER_MAX_S).status_code == 503
        assert time.monotonic() - started < _OUTAGE_ANSWER_MAX_S
        stopping = time.monotonic()
        api.process.terminate()
        api.process.wait(timeout=_STOP_MAX_S)
        assert time.monotonic() - stopping < _STOP_MAX_S


def test_a_pre_trade_check_answers_503_at_once_while_the_database_is_down(
    postgres_url: str,
) -> None:
    """The check route, answered in front of the framework when the store serves: while
    the server is down a check gets the same 503 as every read, and the next checks are
    not held for the store again; once the server is back, the check is answered."""
    url = _ledger_database(postgres_url)
    database = url.rsplit("/", 1)[1]
    policy = load_policy(None)
    with LedgerStore.open(url, read_only=True, reach_timeout_s=store_reach_timeout_s) as store:
        book = reporting.book_as_of(store, None)
        holder = sorted(
            a.account_id for a in book.clients() if a.balance("USD") > 0 and a.margin_call is None
        )[0]
        record = json.dumps(
            {
                "type": "withdrawal_requested",
                "event_id": "proposed-withdrawal",
                "occurred_at": "2026-11-30T00:00:00Z",
                "account_id": holder,
                "asset": "USD",
                "amount": "1",
            }
        )
        security = api_security(access_log=io.StringIO())
        app = served_app(store, AdoptedPolicies.of(policy), security)
        with TestClient(app) as client:
            client.headers.update(bearer(TOKENS_BY_ROLE["trading"]))
            gate = app.framework.state.gate
            path = f"/accounts/{holder}/checks"
            assert client.post(path, content=record).status_code == 200
            with _database_down(postgres_url, database):
                failures = []
                for _ in range(3):
                    started = time.monotonic()
                    answer = client.post(path, content=record)
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["detail"] == "the store cannot be reached: retry shortly"
                    assert time.monotonic() - started < _OUTAGE_ANSWER_MAX_S
                    failures.append(gate.failed_at)
                # One failed read, remembered: the next checks (within the time it is
                # remembered) did not try the store, which would have failed anew.
                assert failures[0] is not None
                assert failures == [failures[0]] * 3
            deadline = time.monotonic() + _BACK_UP_MAX_S
            while (back := client.post(path, content=record)).status_code == 503:
                assert time.monotonic() < deadline, "the API did not reach the store again"
                time.sleep(0.5)
            assert back.status_code == 200, back.text
            assert back.json()["account_id"] == holder
