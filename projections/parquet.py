"""A view as one typed Parquet file, for downstream analytics.

- integer columns: `int64`;
- decimal columns: `decimal128(precision, scale)` with the scale of the most decimal places
  any row has, so every figure keeps its exact digits; a column whose figures need more than
  38 digits stays a string (the file's metadata names it);
- timestamps (`*_at`, `*deadline`): `timestamp[us, UTC]`; `business_date`: `date32`;
- the daily statement's `balances` (`map<string, string>`, asset to balance) and
  `positions` (`list<struct<market, size, entry_price>>`) as nested values, their figures
  exact decimal strings;
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
POSITION_FIELDS = ("market", "size", "entry_price")


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


def _column(pa: Any, column: Column, values: list[Any]) -> tuple[Any, list[Any], str | None]:
    """(Arrow type, values converted, a note when a decimal column stays a string)."""
    if column.kind == "integer":
        return pa.int64(), values, None
    if column.kind == "decimal":
        precision, scale = _decimal_shape(values)
        if precision > decimal128_digits_max:
            return pa.string(), values, f"{column.name}: more than 38 digits, kept as text"
        converted = [None if v is None else Decimal(v) for v in values]
        return pa.decimal128(precision, scale), converted, None
    if _is_timestamp(column.name):
        moments = [
            None if not v else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values
        ]
        return pa.timestamp("us", tz="UTC"), moments, None
    if column.name == "business_date":
        return pa.date32(), [None if not v else date.fromisoformat(v) for v in values], None
    if column.name == "balances":
        mapped = [None if v is None else list(json.loads(v).items()) for v in values]
        return pa.map_(pa.string(), pa.string()), mapped, None
    if column.name == "positions":
        position = pa.struct([pa.field(name, pa.string()) for name in POSITION_FIELDS])
        return pa.list_(position), [None if v is None else json.loads(v) for v in values], None
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
