"""The documents `ledger api` answers with, as msgspec Structs: Litestar writes their JSON
Schema into the OpenAPI document (docs/openapi.json), and converting each answer into its
Struct checks it against that schema. Decimal figures are strings with their exact digits.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

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


class MarginDocument(msgspec.Struct, frozen=True, kw_only=True):
    """An account's figures from the risk model (docs/risk-model.md), as `ledger query
    margin` prints them."""

    account_id: str
    as_of_seq: int
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


def checked(document: dict[str, Any], shape: type[Shape]) -> Shape:
    """`document` as its Struct: a field missing or of the wrong type is a bug, not a 4xx."""
    return msgspec.convert(document, shape, strict=True)
