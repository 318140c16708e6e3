"""The documents `ledger api` answers with, as msgspec Structs: Litestar writes their JSON
Schema into the OpenAPI document (docs/openapi.json), and converting each answer into its
Struct checks it against that schema. Decimal figures are strings with their exact digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from ledger.journal_events import MarginCallTrigger

Shape = TypeVar("Shape", bound=msgspec.Struct)

Figure = str  # an exact decimal, as a string
Cell = str | int | None


class PositionDocument(msgspec.Struct, frozen=True, kw_only=True):
    market: str
    size: Figure
    entry_price: Figure
    mark_price: Figure | None
    unrealized_pnl: Figure
    notional: Figure
    initial_margin: Figure
    maintenance_margin: Figure
    liquidation_price: Figure | None  # null where no positive price satisfies it


class MarginCallDocument(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    issued_at: str
    amount: Figure
    trigger: Annotated[
        MarginCallTrigger,
        msgspec.Meta(
            description="why the call was issued: the equity below the maintenance "
            "requirement, or the loan past its credit limit or lending value (the status may "
            "then read healthy)"
        ),
    ]


class FiguresDocument(msgspec.Struct, frozen=True, kw_only=True):
    """An account's figures from the risk model (docs/risk-model.md): `MarginDocument`'s
    without the account and seq, which a check names once for its before and after."""

    equity: Figure
    market_value: Figure
    loan: Figure
    unrealized_pnl: Figure
    initial_requirement: Figure
    maintenance_requirement: Figure
    liquidation_requirement: Figure
    excess: Figure
    available: Figure
    margin_level: Figure | None  # null when the maintenance requirement is 0
    ltv: Figure | None  # null without eligible collateral
    status: str  # healthy, margin_call or liquidating
    margin_call: MarginCallDocument | None
    positions: list[PositionDocument]


class MarginDocument(FiguresDocument, frozen=True, kw_only=True):
    """An account's figures from the risk model (docs/risk-model.md), as `ledger query
    margin` prints them."""

    account_id: str
    as_of_seq: int


class CheckDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A pre-trade check's answer (docs/risk-tools.md): would the ledger accept the record,
    computed on the book at `journal_seq`, and the account's figures before and after."""

    account_id: str
    journal_seq: Annotated[
        int, msgspec.Meta(description="the last journal seq of the book the check was decided on")
    ]
    policy_version: str
    record_type: Annotated[
        str | None, msgspec.Meta(description="null when the record could not be decoded")
    ]
    event_id: str | None
    outcome: Literal["accepted", "refused", "duplicate"]
    accepted: bool
    reason_code: Annotated[
        str | None, msgspec.Meta(description="the ledger's reason code when refused")
    ]
    detail: Annotated[str | None, msgspec.Meta(description="what to do, when refused")]
    would_record: Annotated[
        list[str], msgspec.Meta(description="the journal event types the ledger would record")
    ]
    before: Annotated[
        FiguresDocument | None,
        msgspec.Meta(description="null for an account that cannot be valued (a mark missing)"),
    ]
    after: Annotated[
        FiguresDocument | None,
        msgspec.Meta(description="null unless the ledger would book the record"),
    ]


class BalanceDocument(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    balance: Figure
    mark_price: Figure | None
    market_value: Figure | None


class BalancesDocument(msgspec.Struct, frozen=True, kw_only=True):
    """Each asset's balance, mark and market value, as `ledger query balances` prints them."""

    account_id: str
    as_of_seq: int
    balances: list[BalanceDocument]


class ViewDocument(msgspec.Struct, frozen=True, kw_only=True):
    """One view of docs/views.md, as `ledger report VIEW --format json` prints it."""

    view: str
    as_of_seq: int
    as_of_recorded_at: str | None
    columns: list[str]
    rows: list[dict[str, Cell]]


class HealthDocument(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    journal_seq: int
    last_hash: str
    policy_version: str


class ProblemDocument(msgspec.Struct, frozen=True, kw_only=True):
    """One parameter a 400 refused: what is wrong, which parameter, and where it was."""

    message: Annotated[str, msgspec.Meta(description="what is wrong with the parameter")]
    key: Annotated[
        str | None, msgspec.Meta(description="the parameter's name: as_of, view, account_id")
    ] = None
    source: Annotated[
        str | None, msgspec.Meta(description="where it was: path, query, header or body")
    ] = None


class ErrorDocument(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every 4xx and 5xx answer of the API: the HTTP status again and a sentence a person
    can act on; a 400 that names the parameters it refused lists them in `extra`."""

    status_code: Annotated[int, msgspec.Meta(description="the HTTP status, as in the response")]
    detail: Annotated[str, msgspec.Meta(description="what went wrong, a sentence to act on")]
    extra: Annotated[
        list[ProblemDocument] | None,
        msgspec.Meta(description="the parameters a 400 refused, one each; absent otherwise"),
    ] = None


# What each error status means on this API: the description of each route's documented error.
ERROR_MEANINGS: Mapping[int, str] = {
    400: "a parameter or body the API cannot take (a bad as_of, a value too long, a record "
    "a check does not take)",
    401: "no valid bearer token (every path but /health and /openapi.json)",
    403: "the token's roles do not open this path, this account or the past (as_of)",
    404: "no such account or view",
    409: "the account cannot be valued yet: an asset it holds has no mark",
    500: "a fault in the ledger, not in the request",
    503: "the store cannot be reached (a database restart), too many as_of reads are in "
    "flight, or the journal adopted a policy whose document the API lacks (the detail names "
    "it): retry after the Retry-After header's seconds",
}


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """The OpenAPI responses of a route's errors: each an `ErrorDocument`."""
    return {
        code: ResponseSpec(
            data_container=ErrorDocument,
            description=ERROR_MEANINGS[code],
            generate_examples=False,
        )
        for code in status_codes
    }


def checked(document: dict[str, Any], shape: type[Shape]) -> Shape:
    """`document` as its Struct: a field missing or of the wrong type is a bug, not a 4xx."""
    return msgspec.convert(document, shape, strict=True)
