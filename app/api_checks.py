"""`POST /accounts/{id}/checks`: the pre-trade check of `ledger/pretrade.py` over HTTP.

The body is one proposed inbox record (JSON, as it would be published to the inbox); the
answer is `ledger check`'s document (`CheckDocument`). The check is decided on a scratch
copy of the live book, brought up to the journal's end first (no read of the store when
nothing was committed since): nothing is booked and the store is only read. The figures
before a record are kept per account until the journal moves on (`pretrade.FiguresBefore`).
A verdict (accepted, refused with a reason code, duplicate) is a 200; a record type a check
does not take, or a record for another account, is a 400.

The route answers in its own middleware (`CheckRoute`), after the framework has routed the
request and before its handler machinery: the authorisation of `app/api_auth.py`, the body,
the check, the document encoded once. The framework's per-request work (a request object,
the guard's copy of the connection, the handler's arguments, the response object) cost
about as much CPU as the check itself, and a check is the one route callers wait on before
an order. What the middleware does not answer itself (a query string, an over-long account
id) goes on to the framework's handler, and its errors (401, 403, 400) are raised into the
framework's own handlers: the same status, headers, body and access-log line either way.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, post
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api_auth import ApiSecurity
from app.api_documents import CheckDocument, checked, error_responses
from ledger import pretrade
from ledger.limits import account_id_chars_max

CHECKS_PATH = "/accounts/{account_id:str}/checks"
AccountId = Annotated[
    str, Parameter(description="client account id", max_length=account_id_chars_max)
]
_encode = msgspec.json.Encoder().encode
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def _answer(live: Any, account_id: str, raw: bytes) -> CheckDocument:
    """The check of `raw` on the live book (`app.api.LiveViews`, which imports this module),
    caught up first; a request the check cannot answer is the framework's 400."""
    live.follow_journal()
    try:
        result = pretrade.check(
            live.book, live.policy, account_id, raw, live.figures_before, store=live.store
        )
    except pretrade.CheckError as error:
        raise ClientException(detail=str(error)) from error
    return checked(result.document(live.policy.version), CheckDocument)


class CheckRoute:
    """The check route's middleware: answers the check itself (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.handler = app  # the framework's handler, for what is not answered here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        account_id: str = scope["path_params"]["account_id"]
        if scope["query_string"] or len(account_id) > account_id_chars_max:
            # The framework's handler validates the path and query, and answers them.
            await self.handler(scope, receive, send)
            return
        app = Litestar.from_scope(scope)
        security: ApiSecurity = app.state.security
        security.admit(scope, "check", account_id, None, _authorization(scope))
        raw = await Request[Any, Any, Any](scope, receive, send).body()
        body = _encode(_answer(app.state.live, account_id, raw))
        length = (b"content-length", str(len(body)).encode("ascii"))
        await send(
            {
                "type": "http.response.start",
                "status": HTTP_200_OK,
                "headers": [_JSON_CONTENT_TYPE, length],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _authorization(scope: Scope) -> str | None:
    """The first Authorization header, as the framework's headers read it (latin-1)."""
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


@post(
    CHECKS_PATH,
    summary="Would the ledger accept this record? The account's figures before and after",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 403, 500),
    middleware=[CheckRoute],
)
async def account_check(request: Request[Any, Any, Any], account_id: AccountId) -> CheckDocument:
    return _answer(request.app.state.live, account_id, await request.body())


def route_handlers() -> list[HTTPRouteHandler]:
    """The routes this module adds to `ledger api`."""
    return [account_check]
