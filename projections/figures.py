"""Figures as people read them in a table: amounts at their asset's scale with thousands
separators, ratios as percentages with two decimals, prices at the cent.

Only tables for people use this (`ledger query`, `ledger report`, the HTML report); JSON,
CSV and Parquet keep the exact decimal strings, and `--wide` shows them in a table too.
The policy has no price tick: prices show at the reporting currency's scale (the cent).
A displayed figure is rounded half-even from the exact one, never used for a decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from ledger.money import DECIMAL_CONTEXT, REPORTING_ASSET, quantize

ScaleOf = Callable[[str], int]  # an asset code's decimal places (the risk policy's)

PERCENT_PLACES = 2
RATIO_COLUMNS = frozenset(
    {
        "margin_level",
        "ltv",
        "share",
        "top5_share",
        "largest_client_share",
        "utilisation",
        "rate",
    }
)
# Figures in units of the row's asset (or the base asset of its market).
QUANTITY_COLUMNS = frozenset(
    {
        "balance",
        "quantity",
        "size",
        "size_reduced",
        "long_open_interest",
        "short_open_interest",
        "open_interest_difference",
        "client_long",
        "client_short",
        "platform_long",
        "platform_short",
        "client_balances",
        "client_negative_balances",
        "platform_balances",
        "custody_in",
        "custody_out",
        "custody_net",
        "custody_account_balance",
        "difference",
    }
)
# Figures that are neither money nor units: shown as they are.
PLAIN_COLUMNS = frozenset({"call_age_hours"})


def unit_of(row: Mapping[str, object]) -> str | None:
    """The asset a row's quantities are counted in: its asset, instrument or market's base."""
    for field in ("asset", "instrument", "market"):
        code = row.get(field)
        if isinstance(code, str) and code:
            return code.removesuffix("-PERP")
    return None


def readable(column: str, text: str, row: Mapping[str, object], scale_of: ScaleOf) -> str:
    """`text` (an exact decimal string) as a table shows the figure of `column`: a ratio as
    a percentage, a quantity at its asset's scale, any other figure (money, prices) at the
    reporting currency's."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if column in PLAIN_COLUMNS:
        return text
    if column in RATIO_COLUMNS:
        with_percent = value.scaleb(2, context=DECIMAL_CONTEXT)
        return f"{quantize(with_percent, PERCENT_PLACES):,f}%"
    scale: int | None = scale_of(REPORTING_ASSET)
    if column in QUANTITY_COLUMNS:
        unit = unit_of(row)
        scale = None if unit is None else _scale_or_none(scale_of, unit)
    if scale is None:
        return f"{value:,f}"
    return f"{quantize(value, scale):,f}"


def _scale_or_none(scale_of: ScaleOf, code: str) -> int | None:
    try:
        return scale_of(code)
    except KeyError:
        return None


def is_right_aligned(kind: str) -> bool:
    """Figures and counts line up on the right; text on the left."""
    return kind in ("decimal", "integer")
