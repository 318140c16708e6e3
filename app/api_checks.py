"""`POST /accounts/{id}/checks`: the pre-trade check of `ledger/pretrade.py` over HTTP.

The body is one proposed inbox record (JSON, as it would be published to the inbox); the
answer is `ledger check`'s document (`CheckDocument`). The check is decided on a scratch
copy of the live book, brought up to the journal's end first (no read of the store when
nothing was committed since): nothing is booked and the store is only read. The figures
before a record are kept per account until the journal moves on (`pretrade.FiguresBefore`).
A verdict (accepted, refused with a reason code, duplicate) is a 200; a record type a check
does not take, or a record for another account, is a 400.

`ledger api` answers a check in front of the web framework (`CheckFront`): the
authorisation of `app/api_auth.py`, the body, the check, the document encoded once, the
same response headers and access-log line. The framework's work per request (its routing,
exception and send wrappers, a request object, the guard's copy of the connection, the
handler's arguments, the response object) cost about half as much CPU as the check
itself, and a check is the one route a caller waits on before an order. Everything else
goes to the framework: other routes, a query string, a token that does not open the route
(its 401 or 403), a body in several parts or over the size limit (its 413), a request
the check cannot answer (its 400) and a fault (its 500, logged): the same status,
headers, body and access-log line as the framework's own handler of the route
(`account_check`) gives.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, post
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import (
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from app.api_auth import ApiSecurity
from app.api_documents import CheckDocument, checked, error_responses
from ledger import pretrade
from ledger.limits import account_id_chars_max
from ledger.store import InterfaceError, OperationalError

CHECKS_PATH = "/accounts/{account_id:str}/checks"
AccountId = Annotated[
    str, Parameter(description="client account id", max_length=account_id_chars_max)
]
_ACCOUNTS_PREFIX = "/accounts/"
_CHECKS_SUFFIX = "/checks"
_encode = msgspec.json.Encoder().encode
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_AS_OF_REFUSED = (
    "a check over HTTP is decided at the journal's end and takes no as_of: "
    "`ledger check --as-of` decides one at a past position"
)


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


@post(
    CHECKS_PATH,
    summary="Would the ledger accept this record? The account's figures before and after",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 403, 500, 503),
)
async def account_check(request: Request[Any, Any, Any], account_id: AccountId) -> CheckDocument:
    if "as_of" in request.query_params:
        # The auditor's as_of passes the guard; answered at the journal's end all the same,
        # the check looked like one decided in the past.
        raise ClientException(detail=_AS_OF_REFUSED)
    await request.app.state.gate.admit()  # a store known to be down: 503 at once (app.api)
    return _answer(request.app.state.live, account_id, await request.body())


def route_handlers() -> list[HTTPRouteHandler]:
    """The routes this module adds to `ledger api`."""
    return [account_check]


class CheckAnswer(msgspec.Struct, frozen=True):
    """A check's 200: its headers (those the framework's route and hooks give) and body."""

    headers: list[tuple[bytes, bytes]]
    body: bytes


class CheckFront:
    """`ledger api`'s ASGI application: a check answered in front of `framework` (the
    module docstring says which), every other request passed on to it."""

    def __init__(self, framework: Litestar, security: ApiSecurity) -> None:
        self.framework = framework
        self.security = security
        body_bytes_max = framework.request_max_body_size
        if not isinstance(body_bytes_max, int):  # create_app sets it; never unbounded
            raise TypeError("the API must limit a request's body (request_max_body_size)")
        self._body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        account_id = self.takes(scope)
        if account_id is None:
            await self.framework(scope, receive, send)
            return
        message = await receive()
        if (
            message["type"] != "http.request"
            or message.get("more_body", False)
            # The framework's size limit (its 413) for a body too large in one part too.
            or len(message["body"]) > self._body_bytes_max
        ):
            await self.framework(scope, _replayed(message, receive), send)
            return
        answer = self.answer(scope, account_id, message["body"])
        if answer is None:
            await self.framework(scope, _replayed(message, receive), send)
            return
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": HTTP_200_OK,
            "headers": answer.headers,
        }
        await send(start)
        end: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": answer.body,
            "more_body": False,
        }
        await send(end)

    def takes(self, scope: Scope) -> str | None:
        """The account id of a request this front may answer: `POST /accounts/{id}/checks`
        without a query string; None for any other request, and for an id the route's
        parameter refuses (the framework's 400)."""
        if scope["type"] != ScopeType.HTTP or scope["method"] != "POST" or scope["query_string"]:
            return None
        path = scope["path"]
        if not (path.startswith(_ACCOUNTS_PREFIX) and path.endswith(_CHECKS_SUFFIX)):
            return None
        account_id = path[len(_ACCOUNTS_PREFIX) : -len(_CHECKS_SUFFIX)]
        if not account_id or "/" in account_id or len(account_id) > account_id_chars_max:
            return None
        return account_id

    def answer(self, scope: Scope, account_id: str, body: bytes) -> CheckAnswer | None:
        """The 200 of the check of `body` (its access-log line written), or None when the
        framework answers the request: a token that does not open the route (its 401 or
        403), a request the check cannot answer (its 400), a fault (its 500, logged)."""
        gate = self.framework.state.gate
        if gate.failed_at is not None or not self._admitted(scope, account_id):
            return None  # a store known to be down: the route's gate answers 503 at once
        try:
            document = _answer(self.framework.state.live, account_id, body)
        except (OperationalError, InterfaceError):
            gate.failed()  # the route answers 503 without waiting for the store again
            return None
        except Exception:  # not swallowed: the framework decides it again and answers,
            # its 400 for a request the check cannot answer, its 500 with the fault logged.
            return None
        encoded = _encode(document)
        length = (b"content-length", str(len(encoded)).encode("ascii"))
        headers = [_JSON_CONTENT_TYPE, length, *self.security.response_headers()]
        self.security.log_answer(scope, HTTP_200_OK, len(encoded))
        return CheckAnswer(headers, encoded)

    def _admitted(self, scope: Scope, account_id: str) -> bool:
        """Whether the request's token opens the route; if not, the framework's guard
        answers it (401 or 403)."""
        try:
            self.security.admit(scope, "check", account_id, None, _authorization(scope))
        except HTTPException:
            return False
        return True


def _authorization(scope: Scope) -> str | None:
    """The first Authorization header, as the framework's headers read it (latin-1)."""
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


def _replayed(first: ReceiveMessage, receive: Receive) -> Receive:
    """`receive` with the message already taken from it given back first."""
    pending = [first]

    async def replay() -> ReceiveMessage:
        return pending.pop() if pending else await receive()

    return replay
