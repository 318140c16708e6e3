"""Who may read what from `ledger api`: tokens, JWTs, roles, headers and the access log."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import TestClient

from app.api import create_app
from app.api_auth import (
    ApiSecurity,
    JwtKeys,
    JwtVerifier,
    RoleError,
    load_token_file,
    parse_role,
)
from app.cli import main
from app.commands import ingest_stream
from app.simulation import simulate
from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.policy import Policy, load_policy
from ledger.store import LedgerStore
from tests.api_security import TOKENS_BY_ROLE, api_security, bearer, client_token

ISSUER = "https://id.example-broker.hk"
AUDIENCE = "collateral-ledger-api"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Iterator[LedgerStore]:
    path = tmp_path_factory.mktemp("api_auth") / "ledger.db"
    with LedgerStore.open(f"sqlite:///{path}") as opened:
        stream = io.BytesIO(b"\n".join(simulate(5, 3, 1)))
        ingest_stream(LedgerApplication(opened, policy), stream, "test")
        yield opened


@pytest.fixture(scope="module")
def accounts(store: LedgerStore) -> tuple[str, str]:
    book = reporting.book_as_of(store, None)
    first, second, *_ = sorted(a.account_id for a in book.clients())
    return first, second


@pytest.fixture(scope="module")
def access_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def client(
    store: LedgerStore, policy: Policy, accounts: tuple[str, str], access_log: io.StringIO
) -> Iterator[TestClient[Litestar]]:
    security = api_security(client_accounts=accounts[:1], access_log=access_log)
    with TestClient(create_app(store, AdoptedPolicies.of(policy), security)) as test_client:
        yield test_client


def _status(client: TestClient[Litestar], token: str, path: str, as_of: str | None) -> int:
    params = {} if as_of is None else {"as_of": as_of}
    return client.get(path, headers=bearer(token), params=params).status_code


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("auditor", {"own", "other", "report", "metrics", "own_as_of", "report_as_of"}),
        ("risk", {"own", "other", "report", "metrics"}),
        ("reporting", {"report"}),
        ("trading", set()),
        ("client", {"own"}),
    ],
)
def test_each_role_reads_what_it_is_for_and_nothing_else(
    client: TestClient[Litestar],
    store: LedgerStore,
    accounts: tuple[str, str],
    role: str,
    allowed: set[str],
) -> None:
    own, other = accounts
    earlier = str(store.last_seq() - 1)
    token = client_token(own) if role == "client" else TOKENS_BY_ROLE[role]
    requests = {
        "own": (f"/accounts/{own}/balances", None),
        "other": (f"/accounts/{other}/margin", None),
        "report": ("/reports/margin-clients", None),
        "metrics": ("/metrics", None),
        "own_as_of": (f"/accounts/{own}/balances", earlier),
        "report_as_of": ("/reports/margin-clients", earlier),
    }
    statuses = {name: _status(client, token, *request) for name, request in requests.items()}
    assert statuses == {name: 200 if name in allowed else 403 for name in requests}


def test_a_refusal_is_a_403_with_a_json_body_naming_the_principal(
    client: TestClient[Litestar], accounts: tuple[str, str]
) -> None:
    own, other = accounts
    response = client.get(f"/accounts/{other}/margin", headers=bearer(client_token(own)))
    assert response.status_code == 403
    assert response.json() == {
        "status_code": 403,
        "detail": f"account {other} is not open to {own} (roles: client:{own})",
    }
    past = client.get(
        "/reports/liquidations", headers=bearer(TOKENS_BY_ROLE["risk"]), params={"as_of": "3"}
    )
    assert past.json()["detail"] == "reading the past (as_of) is for the auditor role"


def test_a_blank_account_id_is_a_400_for_every_role_once_the_token_is_valid(
    client: TestClient[Litestar], accounts: tuple[str, str]
) -> None:
    """A client's token read `account   is not open to C...`, where the risk role's read
    the 400 that says the id is blank; without a token it stays a 401."""
    said = "the account id is blank (spaces only): name an account, such as C-1 or platform:house"
    for token in (client_token(accounts[0]), TOKENS_BY_ROLE["risk"], TOKENS_BY_ROLE["trading"]):
        for method, path in (("GET", "/accounts/%20/margin"), ("POST", "/accounts/%20/checks")):
            response = client.request(method, path, headers=bearer(token), content=b"{}")
            assert (response.status_code, response.json()["detail"]) == (400, said), token
    assert client.get("/accounts/%20/margin").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer lgr_not_a_token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
def test_without_a_valid_token_every_figure_is_a_401(
    client: TestClient[Litestar], accounts: tuple[str, str], headers: dict[str, str]
) -> None:
    for path in (f"/accounts/{accounts[0]}/balances", "/reports/client-assets", "/metrics"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["status_code"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_health_and_the_contract_need_no_token_and_show_no_store_url(
    client: TestClient[Litestar], store: LedgerStore
) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert set(health.json()) == {"status", "journal_seq", "last_hash", "policy_version"}
    assert "sqlite" not in health.text
    assert client.get("/openapi.json").status_code == 200


def test_every_response_is_no_store(
    client: TestClient[Litestar], accounts: tuple[str, str]
) -> None:
    auditor = bearer(TOKENS_BY_ROLE["auditor"])
    responses = [
        client.get(f"/accounts/{accounts[0]}/margin", headers=auditor),  # 200
        client.get("/reports/margin-clients"),  # 401
        client.get("/metrics", headers=bearer(TOKENS_BY_ROLE["reporting"])),  # 403
        client.get("/reports/nothing", headers=auditor),  # 404
        client.get("/no/such/path"),  # 401: no route, and no token either
        client.get("/no/such/path", headers=auditor),  # 404 before any route
    ]
    assert [r.status_code for r in responses] == [200, 401, 403, 404, 401, 404]
    assert {r.headers["cache-control"] for r in responses} == {"no-store"}
    assert not any("x-ledger-insecure" in r.headers for r in responses)


def test_the_access_log_has_one_json_line_per_request_and_never_the_token(
    client: TestClient[Litestar], access_log: io.StringIO, accounts: tuple[str, str]
) -> None:
    token = client_token(accounts[0])
    start = len(access_log.getvalue())
    path = f"/accounts/{accounts[0]}/balances"
    ok = client.get(path, headers=bearer(token))
    refused = client.get("/reports/margin-calls", headers=bearer(token), params={"as_of": "2"})
    lines = access_log.getvalue()[start:].splitlines()
    assert [json.loads(line) | {"time": "t"} for line in lines] == [
        {
            "time": "t",
            "principal": accounts[0],
            "role": f"client:{accounts[0]}",
            "method": "GET",
            "path": path,
            "as_of": None,
            "status": 200,
            "bytes": len(ok.content),
        },
        {
            "time": "t",
            "principal": accounts[0],
            "role": None,
            "method": "GET",
            "path": "/reports/margin-calls",
            "as_of": "2",
            "status": 403,
            "bytes": len(refused.content),
        },
    ]
    assert datetime.datetime.fromisoformat(json.loads(lines[0])["time"]).tzinfo is not None
    assert token not in access_log.getvalue()


def test_insecure_no_auth_reads_everything_and_says_so_on_every_response(
    store: LedgerStore, policy: Policy, accounts: tuple[str, str]
) -> None:
    security = ApiSecurity(insecure_no_auth=True, access_log=io.StringIO())
    with TestClient(create_app(store, AdoptedPolicies.of(policy), security)) as client:
        responses = [
            client.get(f"/accounts/{accounts[1]}/margin", params={"as_of": str(store.last_seq())}),
            client.get("/health"),
            client.get("/no/such/path"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 404]
    assert all("no authentication" in r.headers["x-ledger-insecure"] for r in responses)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwt(key: Any, algorithm: str = "RS256", kid: str | None = None, **claims: Any) -> str:
    now = datetime.datetime.now(datetime.UTC)
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "risk-officer@broker",
        "exp": now + datetime.timedelta(minutes=5),
        "roles": ["risk"],
    } | claims
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def _public_pem(signing_key: rsa.RSAPrivateKey) -> bytes:
    return signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def jwt_client(
    store: LedgerStore, policy: Policy, signing_key: rsa.RSAPrivateKey, tmp_path_factory: Any
) -> Iterator[TestClient[Litestar]]:
    pem = tmp_path_factory.mktemp("jwt") / "issuer.pem"
    pem.write_bytes(_public_pem(signing_key))
    verifier = JwtVerifier(JwtKeys.from_pem(pem), ISSUER, AUDIENCE)
    security = ApiSecurity(jwt_verifier=verifier, access_log=io.StringIO())
    with TestClient(create_app(store, AdoptedPolicies.of(policy), security)) as client:
        yield client


def test_a_jwt_from_the_issuer_carries_its_roles(
    jwt_client: TestClient[Litestar], signing_key: rsa.RSAPrivateKey
) -> None:
    token = _jwt(signing_key)
    assert jwt_client.get("/reports/margin-clients", headers=bearer(token)).status_code == 200
    client_only = _jwt(signing_key, roles=["client:C1"])
    assert jwt_client.get("/reports/margin-clients", headers=bearer(client_only)).status_code == 403


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "another-api"}, "Audience"),
        ({"iss": "https://elsewhere"}, "issuer"),
        ({"exp": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}, "expired"),
        ({"roles": ["superuser"]}, "is not a role"),
        ({"roles": "risk"}, "roles claim"),
    ],
)
def test_a_jwt_with_the_wrong_audience_issuer_expiry_or_roles_is_a_401(
    jwt_client: TestClient[Litestar],
    signing_key: rsa.RSAPrivateKey,
    claims: dict[str, Any],
    words: str,
) -> None:
    response = jwt_client.get(
        "/reports/margin-clients", headers=bearer(_jwt(signing_key, **claims))
    )
    assert response.status_code == 401
    assert words in response.json()["detail"]


def test_a_jwt_signed_by_another_key_or_with_the_public_key_as_a_secret_is_a_401(
    jwt_client: TestClient[Litestar], signing_key: rsa.RSAPrivateKey
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert jwt_client.get("/metrics", headers=bearer(_jwt(stranger))).status_code == 401
    # The old algorithm-confusion attack: HMAC keyed with the published public key.
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 4102444800, "roles": ["auditor"]}
    signing_input = b".".join(
        _base64url(json.dumps(part).encode()) for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    mac = hmac.new(_public_pem(signing_key), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + _base64url(mac)).decode()
    response = jwt_client.get("/metrics", headers=bearer(forged))
    assert response.status_code == 401
    assert "alg value is not allowed" in response.json()["detail"]


def _base64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def test_a_jwks_file_picks_the_key_by_kid(
    store: LedgerStore, policy: Policy, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk | {"kid": "2026-11"}]}))
    verifier = JwtVerifier(JwtKeys.from_jwks(tmp_path / "jwks.json"), ISSUER, AUDIENCE)
    security = ApiSecurity(jwt_verifier=verifier, access_log=io.StringIO())
    with TestClient(create_app(store, AdoptedPolicies.of(policy), security)) as client:
        good = _jwt(signing_key, kid="2026-11")
        unknown_kid = _jwt(signing_key, kid="2025-01")
        assert client.get("/metrics", headers=bearer(good)).status_code == 200
        assert client.get("/metrics", headers=bearer(unknown_kid)).status_code == 401


def test_ledger_api_refuses_to_start_without_authentication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LEDGER_API_TOKENS_FILE", "LEDGER_API_JWT_PUBLIC_KEY", "LEDGER_API_JWT_JWKS"):
        monkeypatch.delenv(name, raising=False)
    store = f"sqlite:///{tmp_path}/ledger.db"
    assert main(["--store", store, "api"]) == 2
    assert "ledger api needs an authentication setting" in capsys.readouterr().err
    exposed = ["--store", store, "api", "--insecure-no-auth", "--host", "0.0.0.0"]  # noqa: S104
    assert main(exposed) == 2
    assert "binds 127.0.0.1 only" in capsys.readouterr().err
    half_tls = ["--store", store, "api", "--insecure-no-auth", "--tls-cert", str(tmp_path)]
    assert main(half_tls) == 2
    assert "TLS needs both" in capsys.readouterr().err


def test_ledger_api_token_keeps_only_the_hash(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    store: LedgerStore,
    policy: Policy,
) -> None:
    tokens_file = tmp_path / "tokens.jsonl"
    command = ["api-token", "--tokens-file", str(tokens_file), "--principal", "finance"]
    assert main([*command, "--role", "reporting", "--role", "client:C7"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("lgr_")
    assert token not in tokens_file.read_text()
    assert tokens_file.stat().st_mode & 0o777 == 0o600
    security = ApiSecurity(tokens=load_token_file(tokens_file), access_log=io.StringIO())
    with TestClient(create_app(store, AdoptedPolicies.of(policy), security)) as client:
        assert client.get("/reports/margin-calls", headers=bearer(token)).status_code == 200
        assert client.get("/metrics", headers=bearer(token)).status_code == 403
    assert main([*command, "--role", "root"]) == 2
    assert "'root' is not a role" in capsys.readouterr().err


def test_the_openapi_document_asks_for_a_bearer_token_except_on_health(
    client: TestClient[Litestar],
) -> None:
    document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearer": []}]
    operations = {
        (path, method): operation.get("security")
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert operations.pop(("/health", "get")) == [{}]
    assert operations
    assert all(security is None for security in operations.values())


@pytest.mark.parametrize(
    ("method", "path", "known"),
    [
        ("GET", "/nope", 404),
        ("GET", "/", 404),
        ("GET", "/accounts/C-1", 404),
        ("GET", "/accounts/C-1/margin/extra", 404),
        ("GET", "/openapi.yaml", 404),
        ("POST", "/metrics", 405),
        ("PUT", "/reports/margin-clients", 405),
        ("DELETE", "/accounts/C-1/balances", 405),
    ],
)
def test_a_path_or_method_no_route_takes_is_a_401_before_it_is_a_404(
    client: TestClient[Litestar], access_log: io.StringIO, method: str, path: str, known: int
) -> None:
    anonymous = client.request(method, path)
    assert anonymous.status_code == 401
    assert anonymous.json()["status_code"] == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = client.request(method, path, headers={"Authorization": "Bearer lgr_forged"})
    assert forged.status_code == 401
    # Only a caller with a valid token learns that the path or the method does not exist.
    risk = client.request(method, path, headers=bearer(TOKENS_BY_ROLE["risk"]))
    assert (risk.status_code, risk.json()["status_code"]) == (known, known)
    assert json.loads(access_log.getvalue().splitlines()[-1])["principal"] == "test-risk"


def test_health_and_the_contract_answer_a_wrong_method_without_a_token(
    client: TestClient[Litestar],
) -> None:
    assert client.delete("/health").status_code == 405
    assert client.post("/openapi.json").status_code == 405
    assert client.get("/openapi.json").status_code == 200


def test_ledger_api_token_adds_to_a_tokens_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record file given by mistake for the tokens file was appended to, breaking both."""
    record = tmp_path / "withdrawal.json"
    record.write_bytes(b'{"type":"withdrawal_requested",\n  "account_id":"C1"}\n')
    before = record.read_bytes()
    command = ["api-token", "--tokens-file", str(record), "--principal", "ops", "--role", "risk"]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no token shown: none was stored
    assert f"{record} line 1: " in captured.err
    assert f"{record} is not a tokens file, nothing was added" in captured.err
    assert record.read_bytes() == before
    # A tokens file edited by hand without a last newline still gets its own line.
    tokens_file = tmp_path / "tokens.jsonl"
    assert (
        main(["api-token", "--tokens-file", str(tokens_file), "--principal", "a", "--role", "risk"])
        == 0
    )
    tokens_file.write_bytes(tokens_file.read_bytes().rstrip(b"\n"))
    assert (
        main(["api-token", "--tokens-file", str(tokens_file), "--principal", "b", "--role", "risk"])
        == 0
    )
    assert [p.name for p in load_token_file(tokens_file).values()] == ["a", "b"]


@pytest.mark.parametrize(
    ("principal", "says"),
    [("", "'' is empty"), ("  ", "'  ' is empty"), ("ops\x1b[2J", "unprintable character U+001B")],
)
def test_a_principal_the_access_log_could_not_show_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], principal: str, says: str
) -> None:
    """An empty principal was taken: the access log then named nobody."""
    tokens_file = tmp_path / "tokens.jsonl"
    command = ["api-token", "--tokens-file", str(tokens_file), "--principal", principal]
    assert main([*command, "--role", "risk"]) == 2
    assert says in capsys.readouterr().err
    assert not tokens_file.exists()


@pytest.mark.parametrize("role", ["client:", "client: ", "client:   ", "client:C\x1b[2J", "god"])
def test_a_role_naming_no_possible_account_is_refused(role: str) -> None:
    """`ledger api-token --role 'client: '` added a token for account ' ', which the inbox
    never opens."""
    with pytest.raises(RoleError, match="is not a role"):
        parse_role(role)
    assert parse_role("client:C-1") == "client:C-1"
