"""A view as one typed Parquet file, for downstream analytics.

- integer columns: `int64`;
- decimal columns: `decimal128(precision, scale)` with the scale of the most decimal places
  any row has, so every figure keeps its exact digits; a column whose figures need more than
  38 digits stays a string (the file's metadata names it);
- timestamps (`*_at`, `*deadline`): `timestamp[us, UTC]`; `business_date`: `date32`;
- the daily statement's `balances` (`map<string, decimal128>`, asset to balance) and
  `positions` (`list<struct<market: string, size: decimal128, entry_price: decimal128>>`)
  as nested values, each figure a decimal at the scale of the most decimal places that
  figure has in the file (a balance of BTC and one of USD share one scale: 8 holds both);
- other text: `string`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from projections.tables import Column, Table

decimal128_digits_max = 38  # Parquet's DECIMAL in 16 bytes
POSITION_FIGURES = ("size", "entry_price")


class ParquetError(ValueError):
    """Parquet cannot be written (pyarrow is missing)."""


def _is_timestamp(name: str) -> bool:
    return name.endswith("_at") or name.endswith("deadline")


def _decimal_shape(values: list[Any]) -> tuple[int, int]:
    """(precision, scale) that hold every value exactly."""
    integer_digits, scale = 1, 0
    for text in values:
        if text is None:
            continue
        _, digits, exponent = Decimal(text).as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"{text!r} is not a finite decimal")
        places = max(0, -exponent)
        scale = max(scale, places)
        integer_digits = max(integer_digits, len(digits) - places)
    return integer_digits + scale, scale


def _figure_type(pa: Any, name: str, values: list[Any]) -> tuple[Any, str | None]:
    """decimal128 holding every value exactly, or string with a note past 38 digits."""
    precision, scale = _decimal_shape(values)
    if precision > decimal128_digits_max:
        return pa.string(), f"{name}: more than 38 digits, kept as text"
    return pa.decimal128(precision, scale), None


def _figure(text: str | None, kind: Any, pa: Any) -> Decimal | str | None:
    """One figure as its column holds it: a Decimal, or its text in a string column."""
    if text is None or kind == pa.string():
        return text
    return Decimal(text)


def _balances(pa: Any, values: list[Any]) -> tuple[Any, list[Any], str | None]:
    """`{"BTC": "1.5", ...}` per row as map<asset, figure>."""
    rows = [None if v is None else json.loads(v) for v in values]
    figures = [figure for row in rows if row for figure in row.values()]
    kind, note = _figure_type(pa, "balances", figures)
    mapped = [
        None if row is None else [(asset, _figure(text, kind, pa)) for asset, text in row.items()]
        for row in rows
    ]
    return pa.map_(pa.string(), kind), mapped, note


def _positions(pa: Any, values: list[Any]) -> tuple[Any, list[Any], str | None]:
    """`[{"market", "size", "entry_price"}, ...]` per row as list<struct<...>>."""
    rows = [None if v is None else json.loads(v) for v in values]
    held = [position for row in rows if row for position in row]
    fields, notes = [pa.field("market", pa.string())], []
    for name in POSITION_FIGURES:
        kind, note = _figure_type(pa, f"positions.{name}", [p[name] for p in held])
        fields.append(pa.field(name, kind))
        notes += [] if note is None else [note]
    kinds = {field.name: field.type for field in fields[1:]}

    def position(held: dict[str, str]) -> dict[str, Any]:
        figures = {name: _figure(held[name], kind, pa) for name, kind in kinds.items()}
        return {"market": held["market"], **figures}

    converted = [None if row is None else [position(p) for p in row] for row in rows]
    return pa.list_(pa.struct(fields)), converted, "; ".join(notes) or None


def _column(pa: Any, column: Column, values: list[Any]) -> tuple[Any, list[Any], str | None]:
    """(Arrow type, values converted, a note when a decimal column stays a string)."""
    if column.kind == "integer":
        return pa.int64(), values, None
    if column.kind == "decimal":
        kind, note = _figure_type(pa, column.name, values)
        return kind, [_figure(v, kind, pa) for v in values], note
    if _is_timestamp(column.name):
        moments = [
            None if not v else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values
        ]
        return pa.timestamp("us", tz="UTC"), moments, None
    if column.name == "business_date":
        return pa.date32(), [None if not v else date.fromisoformat(v) for v in values], None
    if column.name == "balances":
        return _balances(pa, values)
    if column.name == "positions":
        return _positions(pa, values)
    return pa.string(), values, None


def write_parquet(document: dict[str, Any], table: Table, out: Path | IO[bytes]) -> None:
    try:
        # Imported here: only Parquet needs it. pyarrow ships no type information.
        import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415
    except ModuleNotFoundError as missing:
        raise ParquetError("--format parquet needs pyarrow: pip install pyarrow") from missing
    fields, columns, notes = [], {}, []
    for column in table.columns:
        kind, values, note = _column(pa, column, [row[column.name] for row in document["rows"]])
        fields.append(pa.field(column.name, kind))
        columns[column.name] = values
        if note is not None:
            notes.append(note)
    metadata = {"view": table.view, "as_of_seq": str(document["as_of_seq"])}
    if notes:
        metadata["text_columns"] = "; ".join(notes)
    schema = pa.schema(fields, metadata=metadata)
    pq.write_table(pa.table(columns, schema=schema), out)
