"""`POST /accounts/{id}/checks` and `ledger check`: the same verdict as `ledger.pretrade.check`
on the store's book, and nothing written to the store."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app.api import served_app
from app.api_checks import CheckFront
from app.cli import main
from app.commands import ingest_stream
from app.simulation import simulate
from ledger import pretrade, reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.policy import Policy, load_policy
from ledger.store import LedgerStore
from tests.api_security import TOKENS_BY_ROLE, api_security, bearer, client_token

simulated_accounts = 6
simulated_days = 1


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    path = tmp_path_factory.mktemp("checks") / "ledger.db"
    inbox = b"\n".join(simulate(5, simulated_accounts, simulated_days))
    with LedgerStore.open(f"sqlite:///{path}") as store:
        ingest_stream(LedgerApplication(store, policy), io.BytesIO(inbox), "test")
    return path


@pytest.fixture(scope="module")
def store(store_path: Path) -> Iterator[LedgerStore]:
    with LedgerStore.open(f"sqlite:///{store_path}") as opened:
        yield opened


@pytest.fixture(scope="module")
def client(store: LedgerStore, policy: Policy) -> Iterator[TestClient[CheckFront]]:
    security = api_security(client_accounts=(_holder(store),))
    with TestClient(served_app(store, AdoptedPolicies.of(policy), security)) as test_client:
        test_client.headers.update(bearer(TOKENS_BY_ROLE["trading"]))
        yield test_client


def _holder(store: LedgerStore) -> str:
    """A client holding USD without an open margin call (no withdrawal is approved during
    one), the account every check below is about."""
    book = reporting.book_as_of(store, None)
    return sorted(
        a.account_id for a in book.clients() if a.balance("USD") > 0 and a.margin_call is None
    )[0]


def withdrawal(account_id: str, amount: str) -> bytes:
    return json.dumps(
        {
            "type": "withdrawal_requested",
            "event_id": "proposed-withdrawal",
            "occurred_at": "2026-11-30T00:00:00Z",
            "account_id": account_id,
            "asset": "USD",
            "amount": amount,
        }
    ).encode()


def test_the_endpoint_answers_what_the_check_decides_and_books_nothing(
    client: TestClient[CheckFront], store: LedgerStore, policy: Policy
) -> None:
    account_id = _holder(store)
    seq, rejects = store.last_seq(), store.reject_count()
    for amount in ("0.01", "999999999"):
        raw = withdrawal(account_id, amount)
        response = client.post(f"/accounts/{account_id}/checks", content=raw)
        assert response.status_code == 200, response.text
        book = reporting.book_as_of(store, None)
        expected = pretrade.check(book, policy, account_id, raw, store=store)
        assert response.json() == expected.document(policy.version)
        assert response.json()["journal_seq"] == seq
    assert (store.last_seq(), store.reject_count()) == (seq, rejects)
    refused = client.post(
        f"/accounts/{account_id}/checks", content=withdrawal(account_id, "999999999")
    )
    assert refused.json()["reason_code"] == "insufficient_balance"


def test_a_check_as_of_a_past_position_is_a_400_not_the_present_answer(
    client: TestClient[CheckFront], store: LedgerStore
) -> None:
    """The auditor's as_of passed the guard and the check was answered at the journal's end,
    as though decided at that seq."""
    account_id = _holder(store)
    response = client.post(
        f"/accounts/{account_id}/checks",
        params={"as_of": "1"},
        content=withdrawal(account_id, "0.01"),
        headers=bearer(TOKENS_BY_ROLE["auditor"]),
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "a check over HTTP is decided at the journal's end and takes no as_of: "
        "`ledger check --as-of` decides one at a past position"
    )


def test_the_answer_is_typed_in_the_openapi_document(client: TestClient[CheckFront]) -> None:
    schema = client.get("/openapi.json").json()
    route = schema["paths"]["/accounts/{account_id}/checks"]["post"]
    answer = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/CheckDocument"}
    document = schema["components"]["schemas"]["CheckDocument"]
    assert document["properties"]["outcome"]["enum"] == ["accepted", "refused", "duplicate"]
    assert set(document["required"]) >= {"journal_seq", "outcome", "before", "after"}


def test_the_endpoint_refuses_a_request_it_cannot_answer_with_a_400(
    client: TestClient[CheckFront], store: LedgerStore
) -> None:
    account_id = _holder(store)
    response = client.post("/accounts/SOMEONE-ELSE/checks", content=withdrawal(account_id, "1"))
    assert response.status_code == 400
    assert "check it under its own account" in response.json()["detail"]


@pytest.mark.parametrize(
    ("role", "status"), [("trading", 200), ("risk", 200), ("reporting", 403), ("client", 403)]
)
def test_checks_are_for_the_trading_and_risk_roles(
    client: TestClient[CheckFront], store: LedgerStore, role: str, status: int
) -> None:
    account_id = _holder(store)
    token = client_token(account_id) if role == "client" else TOKENS_BY_ROLE[role]
    response = client.post(
        f"/accounts/{account_id}/checks",
        content=withdrawal(account_id, "0.01"),
        headers=bearer(token),
    )
    assert response.status_code == status
    reads = client.get(f"/accounts/{account_id}/margin", headers=bearer(TOKENS_BY_ROLE["trading"]))
    assert reads.status_code == 403


def test_ledger_check_prints_the_verdict_and_exits_1_on_a_refusal(
    store_path: Path, store: LedgerStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id = _holder(store)
    record = tmp_path / "record.json"
    url = f"sqlite:///{store_path}"
    record.write_bytes(withdrawal(account_id, "0.01"))
    assert main(["--store", url, "check", account_id, str(record), "--format", "json"]) == 0
    accepted = json.loads(capsys.readouterr().out)
    assert (accepted["outcome"], accepted["would_record"]) == ("accepted", ["withdrawal_approved"])
    assert main(["--store", url, "check", account_id, str(record)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    # The table shows the figures as `ledger query` does, two cells apart, never run together:
    # money at the cent, ratios as percentages.
    after = accepted["after"]
    equity = Decimal(after["equity"]).quantize(Decimal("0.01"))
    assert rows["equity"][1] == f"{equity:,f}"
    level = after["margin_level"]
    shown = "-" if level is None else f"{(Decimal(level) * 100).quantize(Decimal('0.01')):,f}%"
    assert rows["margin_level"][1] == shown
    assert rows["status"][1] == after["status"]
    record.write_bytes(withdrawal(account_id, "999999999"))
    assert main(["--store", url, "check", account_id, str(record)]) == 1
    table = capsys.readouterr().out
    assert "verdict       refused insufficient_balance" in table


def test_a_check_is_decided_on_what_another_writer_committed_since(
    tmp_path: Path, store_path: Path, policy: Policy
) -> None:
    """The API reads the journal only when the store says something was committed: a
    deposit another connection commits (as `ledger run` would) is in the next answer."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    (tmp_path / "ledger.db").write_bytes(store_path.read_bytes())
    with LedgerStore.open(url) as store, LedgerStore.open(url) as writer:
        account_id = _holder(store)
        security = api_security(client_accounts=(account_id,))
        raw = withdrawal(account_id, "0.01")
        with TestClient(served_app(store, AdoptedPolicies.of(policy), security)) as client:
            client.headers.update(bearer(TOKENS_BY_ROLE["risk"]))
            first = client.post(f"/accounts/{account_id}/checks", content=raw).json()
            assert client.post(f"/accounts/{account_id}/checks", content=raw).json() == first
            deposit = {
                "type": "deposit",
                "event_id": "test-deposit-after-start",
                "occurred_at": "2026-11-30T00:00:00Z",
                "account_id": account_id,
                "asset": "USD",
                "amount": "1000.00",
            }
            stream = io.BytesIO(json.dumps(deposit).encode())
            ingest_stream(LedgerApplication(writer, policy), stream, "test")
            seq = writer.last_seq()
            assert seq > first["journal_seq"]
            second = client.post(f"/accounts/{account_id}/checks", content=raw).json()
            book = reporting.book_as_of(writer, None)
            expected = pretrade.check(book, policy, account_id, raw, store=writer)
            assert second == expected.document(policy.version)
            assert second["journal_seq"] == seq
            equity_gain = Decimal(second["before"]["equity"]) - Decimal(first["before"]["equity"])
            assert equity_gain == Decimal("1000.00")
            assert client.get("/health").json()["journal_seq"] == seq
            metrics = client.get("/metrics").text.splitlines()
            assert f"ledger_journal_seq {seq}" in metrics
            counts = [line for line in metrics if line.startswith("ledger_journal_events_total")]
            assert sum(int(line.rsplit(" ", 1)[1]) for line in counts) == seq  # each once


def test_the_route_answers_as_the_framework_handler_would(
    store: LedgerStore, policy: Policy
) -> None:
    """The route's middleware answers a check itself (app/api_checks.py); a query string sends
    the same request on to the framework's handler. Both give the same status, headers,
    body and access-log line, for a verdict and for a 400, a 401 and a 403."""
    account_id = _holder(store)
    log = io.StringIO()
    security = api_security(access_log=log)
    cases = [
        (TOKENS_BY_ROLE["trading"], account_id, withdrawal(account_id, "0.01")),
        (TOKENS_BY_ROLE["risk"], account_id, withdrawal(account_id, "999999999")),
        (TOKENS_BY_ROLE["trading"], account_id, b'{"type": "perp_trade"'),
        (TOKENS_BY_ROLE["trading"], "SOMEONE-ELSE", withdrawal(account_id, "1")),
        ("lgr_not_a_token", account_id, withdrawal(account_id, "1")),
        (TOKENS_BY_ROLE["reporting"], account_id, withdrawal(account_id, "1")),
    ]
    with TestClient(served_app(store, AdoptedPolicies.of(policy), security)) as client:
        for token, path_account, raw in cases:
            answers = []
            for query in ("", "?via=handler"):
                response = client.post(
                    f"/accounts/{path_account}/checks{query}", content=raw, headers=bearer(token)
                )
                headers = {k: v for k, v in response.headers.items() if k != "date"}
                answers.append((response.status_code, headers, response.content))
            assert answers[0] == answers[1]
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len(lines) == 2 * len(cases)
    for fast, handled in zip(lines[::2], lines[1::2], strict=True):
        del fast["time"], handled["time"]
        assert fast == handled
    assert [line["status"] for line in lines[::2]] == [200, 200, 200, 400, 401, 403]


def test_a_booked_event_id_is_a_duplicate_or_a_conflict_on_a_sqlite_file(
    tmp_path: Path, store_path: Path, policy: Policy
) -> None:
    """On a SQLite file the check asks the store about the event id on its own read
    connection: what a writer booked since is seen, with its digest."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    (tmp_path / "ledger.db").write_bytes(store_path.read_bytes())
    with LedgerStore.open(url, read_only=True) as store, LedgerStore.open(url) as writer:
        account_id = _holder(store)
        booked = withdrawal(account_id, "0.01")
        assert store.commit_marker() is not None  # the read connection is the one used
        before = reporting.book_as_of(store, None)
        assert pretrade.check(before, policy, account_id, booked, store=store).outcome == "accepted"
        ingest_stream(LedgerApplication(writer, policy), io.BytesIO(booked), "test")
        book = reporting.book_as_of(store, None)
        again = pretrade.check(book, policy, account_id, booked, store=store)
        assert (again.outcome, again.refusal) == ("duplicate", None)
        other = pretrade.check(
            book, policy, account_id, withdrawal(account_id, "0.02"), store=store
        )
        assert other.refusal is not None
        assert (other.outcome, other.refusal.reason_code) == ("refused", "event_id_conflict")
        # At the seq before the booking, the event id was not yet seen.
        earlier = pretrade.check(before, policy, account_id, booked, store=store)
        assert earlier.outcome == "accepted"


def test_a_body_over_the_limit_in_one_part_is_a_413_as_from_the_framework(
    client: TestClient[CheckFront], store: LedgerStore
) -> None:
    """The front answered a 70,000-byte body that arrived in one part (`ledger api` over
    HTTPS, tried with curl) as a check, past the 64 KiB that docs/security.md promises is
    refused 413 before it is read."""
    account_id = _holder(store)
    too_large = client.post(f"/accounts/{account_id}/checks", content=b" " * (4 * 16_384 + 1))
    assert too_large.status_code == 413
    assert too_large.json() == {"status_code": 413, "detail": "Request Entity Too Large"}
