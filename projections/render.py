"""A view as a table, JSON, CSV or Parquet. Decimal figures stay strings in every format."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ledger.identifiers import printable, spreadsheet_cell
from projections.figures import ScaleOf, is_right_aligned, readable
from projections.tables import Column, Table

FORMATS = ("table", "json", "csv", "parquet")
table_cell_chars_max = 40  # wider text cells are cut in a readable table (never with --wide)


def render_text(
    document: dict[str, Any], table: Table, form: str, scale_of: ScaleOf | None = None
) -> str:
    """JSON and CSV keep every figure's exact digits; a table shows them readable
    (projections/figures.py) given the assets' scales, or exact and uncut without them
    (`--wide`)."""
    if form == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if form == "csv":
        return _csv(document, table)
    return _table(document, table, scale_of)


def _csv(document: dict[str, Any], table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in document["rows"]:
        writer.writerow(
            "" if row[c] is None else spreadsheet_cell(str(row[c])) for c in table.column_names
        )
    return out.getvalue()


def _cell(column: Column, row: dict[str, Any], scale_of: ScaleOf | None) -> str:
    value = row[column.name]
    if value is None:
        return ""
    cell = printable(str(value))
    if scale_of is None:
        return cell
    if column.kind == "decimal":
        return readable(column.name, cell, row, scale_of)
    if column.kind == "integer":
        return f"{value:,}" if isinstance(value, int) else cell
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


def _table(document: dict[str, Any], table: Table, scale_of: ScaleOf | None) -> str:
    names = table.column_names
    cells = [[_cell(column, row, scale_of) for column in table.columns] for row in document["rows"]]
    right = frozenset(c.name for c in table.columns if is_right_aligned(c.kind))
    lines = [
        f"{table.view} as of seq {document['as_of_seq']}"
        + (f" ({document['as_of_recorded_at']})" if document["as_of_recorded_at"] else ""),
        *text_table(list(names), cells, right),
    ]
    if not cells:
        lines.append("(no rows)")
    return "\n".join(lines) + "\n"


# -- `ledger query` documents (an account's margin figures, its balances) -----------------

# The fields of a query document that are text, not figures.
QUERY_TEXT_FIELDS = frozenset({"account_id", "status", "market", "asset", "call_id", "issued_at"})


def _query_cell(name: str, value: object, row: dict[str, Any], scale_of: ScaleOf | None) -> str:
    if value is None:
        return ""
    cell = printable(str(value))
    if isinstance(value, int):
        return f"{value:,}" if scale_of is not None else cell
    if scale_of is None or name in QUERY_TEXT_FIELDS:
        return cell
    return readable(name, cell, row, scale_of)


def query_table(document: dict[str, Any], scale_of: ScaleOf | None) -> str:
    """Scalars as `name  value` lines (figures right-aligned), lists of rows as tables,
    figures readable given the assets' scales (exact without them)."""
    scalars = {n: v for n, v in document.items() if not isinstance(v, list | dict)}
    cells = {n: _query_cell(n, v, document, scale_of) for n, v in scalars.items()}
    width = max((len(c) for c in cells.values()), default=0)
    lines = [
        f"{name:<26}{cell if name in QUERY_TEXT_FIELDS else cell.rjust(width)}".rstrip()
        for name, cell in cells.items()
    ]
    for name, value in document.items():
        if isinstance(value, dict):
            shown = (f"{k}={_query_cell(k, v, value, scale_of)}" for k, v in value.items())
            lines.append(f"{name}: " + ", ".join(shown))
        elif isinstance(value, list):
            lines.append(f"{name}:")
            lines.extend(f"  {line}" for line in _query_rows(value, scale_of))
    return "\n".join(lines) + "\n"


def _query_rows(rows: list[dict[str, Any]], scale_of: ScaleOf | None) -> list[str]:
    if not rows:
        return ["(none)"]
    names = list(rows[0])
    cells = [[_query_cell(n, row.get(n), row, scale_of) for n in names] for row in rows]
    return text_table(names, cells, frozenset(n for n in names if n not in QUERY_TEXT_FIELDS))


def query_csv(document: dict[str, Any]) -> tuple[str, str | None]:
    """CSV of a query document, and a note for what it leaves out: the balances document's
    rows; the margin document's scalar figures as one row, its positions named in the note
    (`ledger report positions --format csv` lists them)."""
    if "balances" in document:
        rows, note = document["balances"], None
    else:
        rows = [_scalar_figures(document)]
        count = len(document["positions"])
        note = (
            None
            if count == 0
            else f"{count} positions are not in this CSV of figures: "
            f"`ledger report positions --format csv` lists them"
        )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: "" if v is None else spreadsheet_cell(str(v)) for k, v in r.items()} for r in rows
    )
    return out.getvalue(), note


def _scalar_figures(document: dict[str, Any]) -> dict[str, Any]:
    figures = {k: v for k, v in document.items() if not isinstance(v, list | dict)}
    call = document.get("margin_call")
    if isinstance(call, dict):
        figures.update({f"margin_call_{k}": v for k, v in call.items()})
    return figures
