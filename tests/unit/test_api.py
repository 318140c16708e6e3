"""`ledger api` through Litestar's TestClient, over a store built from a simulated stream."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import openapi_spec_validator
import openapi_spec_validator.validation.exceptions
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.api import REPORT_VIEWS, LiveViews, create_app
from app.api_documents import ErrorDocument
from app.commands import ingest_stream
from app.simulation import simulate
from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.policy import Policy, load_policy
from ledger.store import LedgerStore
from projections import resume, views
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner
from tests.api_security import AUDITOR, api_security

simulated_accounts = 8
simulated_days = 1
JSON_ERROR_KEYS = {"status_code", "detail"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Iterator[LedgerStore]:
    path = tmp_path_factory.mktemp("api") / "ledger.db"
    inbox = b"\n".join(simulate(11, simulated_accounts, simulated_days))
    with LedgerStore.open(f"sqlite:///{path}") as opened:
        ingest_stream(LedgerApplication(opened, policy), io.BytesIO(inbox), "test")
        yield opened


@pytest.fixture(scope="module")
def client(store: LedgerStore, policy: Policy) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(store, AdoptedPolicies.of(policy), api_security())) as test_client:
        test_client.headers.update(AUDITOR)
        yield test_client


@pytest.fixture(scope="module")
def client_id(store: LedgerStore) -> str:
    book = reporting.book_as_of(store, None)
    return sorted(a.account_id for a in book.clients())[0]


def test_health_gives_the_journal_position(
    client: TestClient[Litestar], store: LedgerStore
) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["journal_seq"] == store.last_seq() > 0


def test_margin_is_what_ledger_query_margin_prints(
    client: TestClient[Litestar], store: LedgerStore, policy: Policy, client_id: str
) -> None:
    response = client.get(f"/accounts/{client_id}/margin")
    assert response.status_code == 200
    book = reporting.book_as_of(store, None)
    assert response.json() == reporting.margin_view(book, policy, client_id)


def test_balances_as_of_a_seq_and_a_time(
    client: TestClient[Litestar], store: LedgerStore, policy: Policy, client_id: str
) -> None:
    seq = store.last_seq() // 2
    response = client.get(f"/accounts/{client_id}/balances", params={"as_of": str(seq)})
    assert response.status_code == 200
    expected = reporting.balances_view(reporting.book_as_of(store, str(seq)), policy, client_id)
    assert response.json() == expected
    assert response.json()["as_of_seq"] == seq
    noon = client.get(f"/accounts/{client_id}/balances", params={"as_of": "2026-11-02T12:00:00Z"})
    assert noon.status_code == 200
    assert 0 < noon.json()["as_of_seq"] < store.last_seq()


@pytest.mark.parametrize(
    ("as_of", "words"),
    [
        ("yesterday", "neither a journal seq nor a timestamp"),
        ("2026-11-02T12:00:00", "needs a UTC offset"),
        ("999999999", "beyond the journal"),
        ("", "neither a journal seq nor a timestamp"),
    ],
)
def test_a_bad_as_of_is_a_400_with_a_json_error(
    client: TestClient[Litestar], client_id: str, as_of: str, words: str
) -> None:
    for path in (f"/accounts/{client_id}/margin", "/reports/margin-clients"):
        response = client.get(path, params={"as_of": as_of})
        assert response.status_code == 400, response.text
        assert set(response.json()) >= JSON_ERROR_KEYS
        assert words in response.json()["detail"]


@pytest.mark.parametrize("query", [{"asof": "5"}, {"AS_OF": "5"}, {"as_of": "5", "format": "csv"}])
def test_an_unknown_query_parameter_is_a_400_not_the_present(
    client: TestClient[Litestar], client_id: str, query: dict[str, str]
) -> None:
    """`?asof=5` (a typo of as_of) was answered with the journal's end, as if read at 5."""
    for path in (f"/accounts/{client_id}/margin", "/reports/margin-clients"):
        response = client.get(path, params=query)
        assert response.status_code == 400, response.text
        unknown = sorted(set(query) - {"as_of"})[0]
        assert response.json()["detail"] == (
            f"unknown query parameter {unknown!r}: the API takes only as_of"
        )


@pytest.mark.parametrize("account_id", ["C999999", "platform:nothing"])
def test_an_unknown_account_is_a_404(client: TestClient[Litestar], account_id: str) -> None:
    for what in ("margin", "balances"):
        response = client.get(f"/accounts/{account_id}/{what}")
        assert response.status_code == 404
        assert "is not in the ledger" in response.json()["detail"]


@pytest.mark.parametrize("as_of", [None, "1"])
def test_a_blank_account_id_is_a_400_that_says_so_as_the_cli_does(
    client: TestClient[Litestar], client_id: str, as_of: str | None
) -> None:
    """`/accounts/%20/margin` was a 404 'account   is not in the ledger'; a check under a
    blank id was decided as for an account named ' '."""
    params = {} if as_of is None else {"as_of": as_of}
    said = "the account id is blank (spaces only): name an account, such as C-1 or platform:house"
    for what in ("margin", "balances"):
        response = client.get(f"/accounts/%20/{what}", params=params)
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == said
    record = (
        '{"type":"withdrawal_requested","event_id":"w-1","occurred_at":"2026-11-05T00:00:00Z",'
        f'"account_id":"{client_id}","asset":"USD","amount":"5.00"}}'
    )
    if as_of is None:  # a check takes no as_of
        response = client.post("/accounts/%20%20/checks", content=record)
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == said


@pytest.mark.parametrize(
    ("as_of", "says"),
    [
        ("1", "is not in the ledger at seq 1: opened after it, or never"),
        ("2020-01-01T00:00:00Z", "is not in the ledger at seq 0, before its first record"),
    ],
)
def test_an_account_not_opened_yet_at_as_of_is_a_404_that_says_so(
    client: TestClient[Litestar], client_id: str, as_of: str, says: str
) -> None:
    """It said 'is not in the ledger', as for an account the ledger never had."""
    response = client.get(f"/accounts/{client_id}/margin", params={"as_of": as_of})
    assert response.status_code == 404
    assert response.json()["detail"] == f"account {client_id} {says}"


@pytest.mark.parametrize("account_id", ["platform:house", "platform:insurance"])
def test_a_platform_account_before_the_first_record_is_a_404_as_a_client_is(
    client: TestClient[Litestar], account_id: str
) -> None:
    """It answered 200 with empty balances as of seq 0, where a client is a 404."""
    for as_of in ("0", "2020-01-01T00:00:00Z"):
        response = client.get(f"/accounts/{account_id}/balances", params={"as_of": as_of})
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == (
            f"account {account_id} is not in the ledger at seq 0, before its first record"
        )
    response = client.get(f"/accounts/{account_id}/balances", params={"as_of": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["as_of_seq"] == 1


@pytest.mark.parametrize("account_id", ["platform:house", "platform:insurance", "external:custody"])
def test_platform_accounts_answer_as_ledger_query_does(
    client: TestClient[Litestar], store: LedgerStore, policy: Policy, account_id: str
) -> None:
    """Changed: platform accounts were a 404; the API now serves what the CLI prints."""
    response = client.get(f"/accounts/{account_id}/balances")
    assert response.status_code == 200
    book = reporting.book_as_of(store, None)
    assert response.json() == reporting.balances_view(book, policy, account_id)


def test_an_unknown_view_is_a_404_naming_the_views(client: TestClient[Litestar]) -> None:
    response = client.get("/reports/margin-customers")
    assert response.status_code == 404
    assert "margin-clients" in response.json()["detail"]


@pytest.mark.parametrize("view", REPORT_VIEWS)
def test_every_view_answers_now_and_as_of(
    client: TestClient[Litestar], store: LedgerStore, view: str
) -> None:
    now = client.get(f"/reports/{view}")
    assert now.status_code == 200
    assert now.json()["view"] == view
    assert now.json()["as_of_seq"] == store.last_seq()
    assert isinstance(now.json()["rows"], list)
    earlier = client.get(f"/reports/{view}", params={"as_of": "100"})
    assert earlier.status_code == 200
    assert earlier.json()["as_of_seq"] == 100


def test_metrics_count_the_journal_and_the_rejects(
    client: TestClient[Litestar], store: LedgerStore
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers.get_list("content-type") == ["text/plain; version=0.0.4; charset=utf-8"]
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = int(value)
    assert samples["ledger_journal_seq"] == store.last_seq()
    events = sum(v for k, v in samples.items() if k.startswith("ledger_journal_events_total{"))
    assert events == store.last_seq()
    reasons = Counter(msgspec.json.decode(r)["reason_code"] for r in store.read_rejects())
    assert reasons, "the simulated day has no reject: the per-reason counters go unchecked"
    for reason, count in reasons.items():
        assert samples[f'ledger_rejects_total{{reason="{reason}"}}'] == count
    alerts = sum(
        1
        for entry in store.iter_journal()
        if entry.type == "mark_price_applied"
        and msgspec.json.decode(entry.record).get("alert", False)
    )
    assert samples["ledger_mark_alerts_total"] == alerts


def test_openapi_lists_every_path(client: TestClient[Litestar]) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) >= {
        "/accounts/{account_id}/margin",
        "/accounts/{account_id}/balances",
        "/reports/{view}",
        "/health",
        "/metrics",
    }
    parameters = {p["name"] for p in paths["/reports/{view}"]["get"]["parameters"]}
    assert parameters == {"view", "as_of"}


def test_the_cli_registers_the_api_command(tmp_path: Path) -> None:
    from app.cli import build_parser  # noqa: PLC0415

    arguments = build_parser().parse_args(
        ["--store", f"sqlite:///{tmp_path}/x.db", "api", "--insecure-no-auth"]
    )
    assert (arguments.host, arguments.port) == ("127.0.0.1", 8000)


def _error_statuses(document: dict[str, Any], path: str, method: str) -> set[int]:
    """The error statuses an operation documents, each checked to be an ErrorDocument."""
    responses = document["paths"][path][method]["responses"]
    errors = {int(code): answer for code, answer in responses.items() if int(code) >= 400}
    for answer in errors.values():
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorDocument"}
        assert answer["description"]
    return set(errors)


def test_every_route_documents_its_errors_as_one_error_document(
    client: TestClient[Litestar],
) -> None:
    document = client.get("/openapi.json").json()
    error_schema = document["components"]["schemas"]["ErrorDocument"]
    assert set(error_schema["required"]) == {"status_code", "detail"}
    assert set(error_schema["properties"]) == {"status_code", "detail", "extra"}
    account = {400, 401, 403, 404, 409, 500, 503}
    assert _error_statuses(document, "/accounts/{account_id}/margin", "get") == account
    assert _error_statuses(document, "/accounts/{account_id}/balances", "get") == account
    report = {400, 401, 403, 404, 500, 503}
    assert _error_statuses(document, "/reports/{view}", "get") == report
    # 503 everywhere the store is read: a store that cannot be reached (a database restart).
    assert _error_statuses(document, "/metrics", "get") == {401, 403, 500, 503}
    assert _error_statuses(document, "/health", "get") == {500, 503}
    assert _error_statuses(document, "/accounts/{account_id}/checks", "post") == {
        400,
        401,
        403,
        500,
        503,
    }


@pytest.mark.parametrize(
    ("path", "status", "problem_keys"),
    [
        ("/accounts/nobody/margin", 404, None),
        ("/accounts/nobody/balances?as_of=yesterday", 400, None),
        ("/reports/margin-calls?as_of=%C2%B2", 400, None),  # a superscript two: it was a 500
        ("/reports/" + "x" * 65, 400, ["view"]),
        ("/reports/margin-calls?as_of=" + "9" * 65, 400, ["as_of"]),
        ("/nowhere", 404, None),
    ],
)
def test_every_error_body_is_an_error_document(
    client: TestClient[Litestar], path: str, status: int, problem_keys: list[str] | None
) -> None:
    response = client.get(path)
    assert response.status_code == status
    error = msgspec.json.decode(response.content, type=ErrorDocument, strict=True)
    # Nothing beside the document's fields: decoding and encoding again gives the same body.
    assert msgspec.json.decode(msgspec.json.encode(error)) == response.json()
    assert error.status_code == status
    assert error.detail
    keys = None if error.extra is None else [problem.key for problem in error.extra]
    assert keys == problem_keys


def test_the_live_views_start_from_the_views_stored_next_to_the_journal(
    store: LedgerStore, policy: Policy, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    half = store.last_seq() // 2
    with LedgerStore.open(url) as copy:
        copy.append(list(store.iter_journal())[:half], [], None)
        with ViewDatabase.open(url) as stored:
            runner = ProjectionRunner(stored, AdoptedPolicies.of(policy))
            runner.follow(copy)
            resume.save(stored, runner.state, runner.name)
        copy.append(list(store.iter_journal(half)), [], None)
        fresh = LiveViews(copy, AdoptedPolicies.of(policy), None)  # a store in memory: from seq 1
        started = LiveViews(copy, AdoptedPolicies.of(policy), url)
        assert (fresh.runner.last_seq, started.runner.last_seq) == (0, half)
        for live in (fresh, started):
            live.refresh()
        assert views.snapshot(started.database) == views.snapshot(fresh.database)
        # A later bust reverses a trade from the book's register of trades.
        assert started.book.trades == fresh.book.trades
        fresh.close()
        started.close()


def test_a_fault_is_a_500_error_document_that_hides_the_fault(
    client: TestClient[Litestar],
    client_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object) -> dict[str, Any]:
        raise RuntimeError("a bug with a secret in it")

    monkeypatch.setattr(reporting, "margin_view", broken)
    response = client.get(f"/accounts/{client_id}/margin")
    assert response.status_code == 500
    error = msgspec.json.decode(response.content, type=ErrorDocument, strict=True)
    assert error == ErrorDocument(status_code=500, detail="Internal Server Error")
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}
    # The operator gets the fault: one error record, with its traceback.
    (record,) = [r for r in caplog.records if r.name == "app.api"]
    assert record.getMessage() == f"api_fault method=GET path=/accounts/{client_id}/margin"
    assert record.exc_info is not None
    assert "a bug with a secret in it" in str(record.exc_info[1])


def test_the_committed_openapi_document_is_valid_openapi() -> None:
    """What a downstream team feeds its client generator must pass a validator, the error
    responses' references included."""
    document = msgspec.json.decode((DOCS / "openapi.json").read_bytes())
    assert document["openapi"].startswith("3.1")
    openapi_spec_validator.validate(document)
    broken = {**document, "paths": {"/health": {"get": {"responses": {"200": {"$ref": 7}}}}}}
    with pytest.raises(openapi_spec_validator.validation.exceptions.OpenAPIValidationError):
        openapi_spec_validator.validate(broken)


def test_a_check_body_larger_than_four_inbox_records_is_a_413_before_it_is_read(
    client: TestClient[Litestar], client_id: str
) -> None:
    """The framework's default let a body of up to 10 MB be read, held and decided."""
    too_large = client.post(f"/accounts/{client_id}/checks", content=b" " * (4 * 16_384 + 1))
    assert too_large.status_code == 413
    record = b'{"type": "deposit", ' + b" " * 20_000 + b"}"  # over 16 KiB: the inbox's refusal
    answered = client.post(f"/accounts/{client_id}/checks", content=record)
    assert answered.status_code == 200
    assert answered.json()["reason_code"] == "record_too_large"
