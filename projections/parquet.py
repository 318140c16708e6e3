"""A view as one typed Parquet file, for downstream analytics.

- integer columns: `int64`;
- decimal columns: `decimal128(38, 18)`, the same in every file of every view and day, so
  that a downstream table appending files never meets a new schema (docs/downstream.md):
  every booked amount and ratio fits exactly (at most 8 places); an intermediate figure of
  the risk model with more places (an unrounded product, a volume-weighted entry price) is
  rounded half-even to 18; a figure of 21 integer digits or more cannot be written;
- timestamps (`*_at`, `*deadline`): `timestamp[us, UTC]`; `business_date`: `date32`;
- the daily statement's `balances` (`map<string, decimal128>`, asset to balance) and
  `positions` (`list<struct<market: string, size: decimal128, entry_price: decimal128>>`)
  as nested values, each figure a `decimal128(38, 18)` as above;
- other text: `string`;
- the file's metadata: `view`, `as_of_seq` and `as_of_recorded_at`, the journal position its
  rows stand at (docs/downstream.md "Appending a view's files").
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from ledger.money import quantize
from projections.tables import Column, Table

decimal128_digits_max = 38  # Parquet's DECIMAL in 16 bytes
# Every decimal figure's places in every file: more than any asset's scale (8) or ratio's
# (8), and 20 integer digits left, beyond any amount the inbox accepts (below 10^18).
decimal_places_fixed = 18
_LIMIT = Decimal(10) ** (decimal128_digits_max - decimal_places_fixed)
POSITION_FIGURES = ("size", "entry_price")


class ParquetError(ValueError):
    """Parquet cannot be written: pyarrow is missing, or a figure is too large for it."""


def _is_timestamp(name: str) -> bool:
    return name.endswith("_at") or name.endswith("deadline")


def _decimal_type(pa: Any) -> Any:
    """The one decimal type of every figure, whatever the file holds."""
    return pa.decimal128(decimal128_digits_max, decimal_places_fixed)


def _figure(name: str, text: str | None) -> Decimal | None:
    """One figure at the fixed scale (rounded half-even past it), or ParquetError when its
    integer digits do not fit."""
    if text is None:
        return None
    exact = Decimal(text)
    figure = exact if exact.copy_abs() >= _LIMIT else quantize(exact, decimal_places_fixed)
    if figure.copy_abs() >= _LIMIT:  # copy_abs: `abs` rounds to 28 digits
        raise ParquetError(
            f"{name} {text} has more integer digits than Parquet's decimal128"
            f"({decimal128_digits_max}, {decimal_places_fixed}) holds: use --format json or csv"
        )
    return figure


def _balances(pa: Any, values: list[Any]) -> tuple[Any, list[Any]]:
    """`{"BTC": "1.5", ...}` per row as map<asset, figure>."""
    rows = [None if v is None else json.loads(v) for v in values]
    mapped = [
        None if row is None else [(asset, _figure("balances", text)) for asset, text in row.items()]
        for row in rows
    ]
    return pa.map_(pa.string(), _decimal_type(pa)), mapped


def _positions(pa: Any, values: list[Any]) -> tuple[Any, list[Any]]:
    """`[{"market", "size", "entry_price"}, ...]` per row as list<struct<...>>."""
    rows = [None if v is None else json.loads(v) for v in values]
    fields = [pa.field("market", pa.string())]
    fields += [pa.field(name, _decimal_type(pa)) for name in POSITION_FIGURES]

    def position(held: dict[str, str]) -> dict[str, Any]:
        figures = {name: _figure(f"positions.{name}", held[name]) for name in POSITION_FIGURES}
        return {"market": held["market"], **figures}

    converted = [None if row is None else [position(p) for p in row] for row in rows]
    return pa.list_(pa.struct(fields)), converted


def _column(pa: Any, column: Column, values: list[Any]) -> tuple[Any, list[Any]]:
    """(Arrow type, values converted)."""
    if column.kind == "integer":
        return pa.int64(), values
    if column.kind == "decimal":
        return _decimal_type(pa), [_figure(column.name, v) for v in values]
    if _is_timestamp(column.name):
        moments = [
            None if not v else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values
        ]
        return pa.timestamp("us", tz="UTC"), moments
    if column.name == "business_date":
        return pa.date32(), [None if not v else date.fromisoformat(v) for v in values]
    if column.name == "balances":
        return _balances(pa, values)
    if column.name == "positions":
        return _positions(pa, values)
    return pa.string(), values


def write_parquet(document: dict[str, Any], table: Table, out: Path | IO[bytes]) -> None:
    try:
        # Imported here: only Parquet needs it. pyarrow ships no type information.
        import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415
    except ModuleNotFoundError as missing:
        raise ParquetError("--format parquet needs pyarrow: pip install pyarrow") from missing
    fields, columns = [], {}
    for column in table.columns:
        kind, values = _column(pa, column, [row[column.name] for row in document["rows"]])
        fields.append(pa.field(column.name, kind))
        columns[column.name] = values
    # The rows are the view as of one journal position, which no column says: the file does.
    metadata = {"view": table.view, "as_of_seq": str(document["as_of_seq"])}
    if document.get("as_of_recorded_at"):
        metadata["as_of_recorded_at"] = document["as_of_recorded_at"]
    schema = pa.schema(fields, metadata=metadata)
    pq.write_table(pa.table(columns, schema=schema), out)
