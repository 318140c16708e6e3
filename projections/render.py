"""A view as a table, JSON, CSV or Parquet. Decimal figures stay strings in every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import IO, Any

from ledger.identifiers import printable
from projections.tables import Table

FORMATS = ("table", "json", "csv", "parquet")
table_cell_chars_max = 40  # wider cells are cut in the `table` format (never in the others)


class RenderError(ValueError):
    """A format that cannot be written where asked (Parquet to a terminal, no pyarrow)."""


def render_text(document: dict[str, Any], table: Table, form: str) -> str:
    if form == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if form == "csv":
        return _csv(document, table)
    return _table(document, table)


def _csv(document: dict[str, Any], table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in document["rows"]:
        writer.writerow(
            "" if row[c] is None else printable(str(row[c])) for c in table.column_names
        )
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    cell = printable(str(value))
    if len(cell) > table_cell_chars_max:
        return cell[: table_cell_chars_max - 1] + "…"
    return cell


def text_table(
    names: list[str], cells: list[list[str]], right_aligned: frozenset[str] = frozenset()
) -> list[str]:
    """A header row and one line per row, columns two spaces apart; figures right-aligned.
    Unprintable characters are escaped: a cell may hold text from the inbox."""
    cells = [[printable(value) for value in row] for row in cells]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(names)]

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(widths[i]) if names[i] in right_aligned else value.ljust(widths[i])
            for i, value in enumerate(values)
        ).rstrip()

    return [line(names), *(line(row) for row in cells)]


def _table(document: dict[str, Any], table: Table) -> str:
    names = table.column_names
    cells = [[_cell(row[name]) for name in names] for row in document["rows"]]
    lines = [
        f"{table.view} as of seq {document['as_of_seq']}"
        + (f" ({document['as_of_recorded_at']})" if document["as_of_recorded_at"] else ""),
        *text_table(list(names), cells),
    ]
    if not cells:
        lines.append("(no rows)")
    return "\n".join(lines) + "\n"


def write_parquet(document: dict[str, Any], table: Table, out: Path | IO[bytes]) -> None:
    """One Parquet file: text and decimal columns as strings, integer columns as int64."""
    try:
        # Imported here: only Parquet needs it. pyarrow ships no type information.
        import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415
    except ModuleNotFoundError as missing:
        raise RenderError("--format parquet needs pyarrow: pip install pyarrow") from missing
    fields = [
        pa.field(c.name, pa.int64() if c.kind == "integer" else pa.string()) for c in table.columns
    ]
    schema = pa.schema(
        fields,
        metadata={
            "view": table.view,
            "as_of_seq": str(document["as_of_seq"]),
            "decimals": "decimal figures are strings, as written by the ledger",
        },
    )
    columns = {c.name: [row[c.name] for row in document["rows"]] for c in table.columns}
    pq.write_table(pa.table(columns, schema=schema), out)
