"""Tokens for API tests: one principal per role, known to an in-memory `ApiSecurity`.

A test client that reads everything: `TestClient(create_app(store, policy, api_security()))`
with `client.headers.update(AUDITOR)`.
"""

from __future__ import annotations

import io

from app.api_auth import ApiSecurity, Principal, token_digest

TOKENS_BY_ROLE = {
    "auditor": "lgr_test_auditor",
    "risk": "lgr_test_risk",
    "reporting": "lgr_test_reporting",
    "trading": "lgr_test_trading",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_token(account_id: str) -> str:
    return f"lgr_test_client_{account_id}"


AUDITOR = bearer(TOKENS_BY_ROLE["auditor"])


def api_security(
    client_accounts: tuple[str, ...] = (), access_log: io.StringIO | None = None
) -> ApiSecurity:
    """Tokens for the auditor, risk, reporting and trading roles, and one per client account."""
    principals = {
        token_digest(token): Principal(f"test-{role}", (role,))
        for role, token in TOKENS_BY_ROLE.items()
    }
    for account_id in client_accounts:
        role = f"client:{account_id}"
        principals[token_digest(client_token(account_id))] = Principal(account_id, (role,))
    return ApiSecurity(tokens=principals, access_log=access_log or io.StringIO())
