"""`POST /accounts/{id}/checks`: the pre-trade check of `ledger/pretrade.py` over HTTP.

The body is one proposed inbox record (JSON, as it would be published to the inbox); the
answer is `ledger check`'s document (`CheckDocument`). The check is decided on a scratch
copy of the live book, brought up to the journal's end first (one read of the store when
nothing is new): nothing is booked and the store is only read. The figures before a record
are kept per account until the journal moves on (`pretrade.FiguresBefore`).
A verdict (accepted, refused with a reason code, duplicate) is a 200; a record type a check
does not take, or a record for another account, is a 400.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from app.api_documents import CheckDocument, checked, error_responses
from ledger import pretrade
from ledger.limits import account_id_chars_max

CHECKS_PATH = "/accounts/{account_id:str}/checks"
AccountId = Annotated[
    str, Parameter(description="client account id", max_length=account_id_chars_max)
]


@post(
    CHECKS_PATH,
    summary="Would the ledger accept this record? The account's figures before and after",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 401, 403, 500),
)
async def account_check(request: Request[Any, Any, Any], account_id: AccountId) -> CheckDocument:
    live = request.app.state.live  # app.api.LiveViews (app.api imports this module)
    raw = await request.body()
    live.follow_journal()
    try:
        result = pretrade.check(
            live.book, live.policy, account_id, raw, live.figures_before, store=live.store
        )
    except pretrade.CheckError as error:
        raise ClientException(detail=str(error)) from error
    return checked(result.document(live.policy.version), CheckDocument)


def route_handlers() -> list[HTTPRouteHandler]:
    """The routes this module adds to `ledger api`."""
    return [account_check]
