"""Client statements as files: one self-contained HTML page per client (printable on A4),
and one CSV and one Parquet of every statement line of the batch."""

from __future__ import annotations

import html
from contextlib import suppress
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger.money import USD_SCALE, format_decimal, quantize
from ledger.statements import ClientStatement, Period, PolicyInForce
from projections.tables import Column, ColumnKind, Table

readable_places_max = 8  # more decimal places than this are shown to the cent in HTML
# A collateral holding's figures: its own columns in the HTML table and in the lines.
COLLATERAL_FIGURES = ("mark_price", "market_value", "haircut", "haircut_value")
COLLATERAL_COLUMNS = ("asset", "quantity", *COLLATERAL_FIGURES)
DECIMAL_COLUMNS = ("amount", "after", "opening", "closing", *COLLATERAL_FIGURES)
# A movement's fields that are line columns of the same name.
MOVEMENT_CELLS = ("seq", "recorded_at", "event_type", "detail", "amount", "after")
LINE_COLUMNS = (
    "period",
    "account_id",
    "section",
    "item",
    "seq",
    "recorded_at",
    "event_type",
    "detail",
    *DECIMAL_COLUMNS,
)


def _kind(name: str) -> ColumnKind:
    if name == "seq":
        return "integer"
    return "decimal" if name in DECIMAL_COLUMNS else "text"


# The batch's lines as a table, for the CSV and Parquet writers of `ledger report`.
STATEMENT_LINES = Table(
    view="statement-lines",
    sql_name="statement_lines",  # never a view table: written to files only
    columns=tuple(Column(name, _kind(name)) for name in LINE_COLUMNS),
    key=("account_id", "section", "item", "seq"),
    scope=None,
)
FIGURE_NAMES = (
    "equity",
    "market_value",
    "unrealized_pnl",
    "loan",
    "initial_requirement",
    "maintenance_requirement",
    "liquidation_requirement",
    "excess",
    "available",
    "margin_level",
    "ltv",
    "status",
)
DAILY_CLOSE_COLUMNS = (
    "business_date",
    "seq",
    "equity",
    "loan",
    "maintenance_requirement",
    "status",
    "policy",
)
# Why an open margin call was issued, by its trigger (docs/risk-model.md "Margin calls"):
# the sentence a client reads beside the call's amount.
CALL_REASONS: dict[str, str] = {
    "below_maintenance_requirement": "the equity fell below the maintenance requirement",
    "credit_limit_exceeded": "the margin loan exceeded the credit limit",
    "lending_value_exceeded": "the margin loan exceeded the lending value of the collateral",
}
POSITION_NAMES = (
    "market",
    "size",
    "entry_price",
    "mark_price",
    "unrealized_pnl",
    "notional",
    "liquidation_price",
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return format_decimal(value) if isinstance(value, Decimal) else str(value)


def _line(
    statement: ClientStatement, section: str, item: str | None, **cells: Any
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(LINE_COLUMNS)
    row.update(period=statement.period.label, account_id=statement.account_id, section=section)
    row["item"] = item
    for name, value in cells.items():
        row[name] = value if name == "seq" else _text(value)
    return row


def statement_lines(statement: ClientStatement) -> list[dict[str, Any]]:
    """Every line of one statement, in the sections of the HTML page."""
    lines = []
    for asset in sorted(set(statement.opening) | set(statement.closing)):
        opening, closing = statement.opening.get(asset), statement.closing.get(asset)
        lines.append(_line(statement, "balance", asset, opening=opening, closing=closing))
    for m in statement.movements:
        cells = {name: getattr(m, name) for name in MOVEMENT_CELLS}
        lines.append(_line(statement, "movement", m.item, **cells))
    for holding in statement.collateral:
        lines.append(_line(statement, "collateral", holding["asset"], **_collateral(holding)))
    for name in ("loan_principal", "loan_interest", "interest_accrued"):
        lines.append(_line(statement, "loan", name, amount=getattr(statement, name)))
    figures = statement.figures or {}
    for name in FIGURE_NAMES:
        value = figures.get(name)
        if name == "status":  # the one figure that is a word
            lines.append(_line(statement, "figure", name, detail=value))
        else:
            lines.append(_line(statement, "figure", name, amount=value))
    for position in figures.get("positions", []):
        lines.append(_position_line(statement, position))
    call = statement.margin_call
    if call is not None:
        lines.append(
            _line(
                statement,
                "margin_call",
                call["call_id"],
                amount=call["amount"],
                recorded_at=call["issued_at"],
                detail=f"deadline {call['deadline']}, trigger {call['trigger']}",
            )
        )
    for policy in statement.policies:
        lines.append(_policy_line(statement, policy))
    for close in statement.daily_closes:
        lines.append(
            _line(
                statement,
                "daily_close",
                close.business_date,
                seq=close.seq,
                amount=close.equity,
                after=close.loan,
                detail=close.status,
            )
        )
    return lines


def _policy_line(statement: ClientStatement, policy: PolicyInForce) -> dict[str, Any]:
    """A policy in force in the period: its version, the seq and time that adopted it, and
    from which business date it valued the day closes."""
    return _line(
        statement,
        "policy",
        policy.version,
        seq=policy.adopted_seq,
        recorded_at=policy.adopted_at or None,
        detail=_policy_sentence(policy),
    )


def _policy_sentence(policy: PolicyInForce) -> str:
    valued = (
        f"valued the day closes from {policy.from_date}"
        if policy.from_date
        else "replaced before any day close"
    )
    return f"sha256 {policy.digest}, {valued}"


def _collateral(holding: dict[str, Any]) -> dict[str, Any]:
    return {"closing": holding["quantity"], **{c: holding[c] for c in COLLATERAL_FIGURES}}


def _position_line(statement: ClientStatement, position: dict[str, Any]) -> dict[str, Any]:
    detail = (
        f"entry {position['entry_price']}, unrealized PnL {position['unrealized_pnl']}, "
        f"liquidation price {position['liquidation_price'] or 'none'}"
    )
    return _line(
        statement,
        "position",
        position["market"],
        amount=position["size"],
        mark_price=position["mark_price"],
        market_value=position["notional"],
        detail=detail,
    )


def batch_document(period: Period, batch: list[ClientStatement]) -> dict[str, Any]:
    """The batch's lines, shaped like a view document for `projections.render`."""
    return {
        "view": STATEMENT_LINES.view,
        "as_of_seq": period.closing_seq,
        "rows": [line for statement in batch for line in statement_lines(statement)],
    }


STYLE = """
body{font:12px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 2px}h2{font-size:14px;margin:18px 0 4px;border-bottom:1px solid #ccc}
.sub{color:#555;margin:0 0 10px}
table{border-collapse:collapse;width:100%;margin:0 0 6px}
th,td{border-bottom:1px solid #e4e4e4;padding:2px 6px;text-align:left;vertical-align:top;
overflow-wrap:break-word}
th{background:#f4f4f4;font-weight:600}th.n{text-align:right}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.long{overflow-wrap:anywhere}
.alert{color:#b03a2e;font-weight:600}.empty{color:#777}
@page{size:A4;margin:14mm 12mm}
@media print{body{margin:0;font-size:9pt}h2{break-after:avoid}tr{break-inside:avoid}
thead{display:table-header-group}a{color:inherit;text-decoration:none}}
"""


def _table(columns: tuple[str, ...], rows: list[tuple[Any, ...]], numeric: set[str]) -> str:
    """A table whose figures never break across lines: text cells wrap at spaces and after
    an underscore, a detail or a hash anywhere (an upstream id may be 128 characters); the
    headings are the column names with spaces, so they wrap too."""
    if not rows:
        return '<p class="empty">None.</p>'
    head = "".join(
        ('<th class="n">' if c in numeric else "<th>") + f"{html.escape(c.replace('_', ' '))}</th>"
        for c in columns
    )
    body = []
    for row in rows:
        cells = []
        for column, value in zip(columns, row, strict=True):
            cells.append(_cell(value, column in numeric, long_text=column in LONG_TEXT_COLUMNS))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


LONG_TEXT_COLUMNS = frozenset({"detail", "sha256"})  # text that may break anywhere


def _cell(value: Any, numeric: bool, *, long_text: bool = False) -> str:
    """A cell; a figure with more than 8 places (a USD product of a price and a quantity)
    is shown to the cent, its exact value in the tooltip and in the CSV and Parquet. A
    figure given as text (the margin figures, the positions) is read as the decimal it is."""
    if value is None:
        return "<td></td>"
    if numeric and isinstance(value, str):
        with suppress(InvalidOperation):  # a word among figures (the status) stays a word
            value = Decimal(value)
    exact = html.escape(_text(value) or "")
    if not numeric:
        klass = ' class="long"' if long_text else ""
        return f"<td{klass}>{exact.replace('_', '_<wbr>')}</td>"
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else 0
    if isinstance(exponent, int) and exponent < -readable_places_max:
        shown = format_decimal(quantize(value, USD_SCALE))
        return f'<td class="n" title="{exact}">{shown}</td>'
    return f'<td class="n">{exact}</td>'


def statement_html(statement: ClientStatement) -> str:
    """One client's statement as a self-contained page (no script, no external resource)."""
    period = statement.period
    title = f"{period.kind.capitalize()} statement {period.label}: {statement.account_id}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">Account {html.escape(statement.account_id)} '
        f"({html.escape(statement.investor_class)} investor). Journal seq "
        f"{period.opening_seq} (opening) to {period.closing_seq} (closing, the figures "
        f"<code>ledger query --as-of {period.closing_seq}</code> prints); "
        f"{html.escape(_policies_named(statement.policies))}. Figures in USD unless the line "
        "names an asset.</p>",
        "<h2>Balances</h2>",
        _table(
            ("asset", "opening", "closing"),
            [
                (a, statement.opening.get(a), statement.closing.get(a))
                for a in sorted(set(statement.opening) | set(statement.closing))
            ],
            {"opening", "closing"},
        ),
        "<h2>Movements</h2>",
        _table(
            ("seq", "time", "event", "item", "amount", "after", "detail"),
            [
                (m.seq, m.recorded_at, m.event_type, m.item, m.amount, m.after, m.detail)
                for m in statement.movements
            ],
            {"seq", "amount", "after"},
        ),
        "<h2>Collateral</h2>",
        _table(
            COLLATERAL_COLUMNS,
            [tuple(h[c] for c in COLLATERAL_COLUMNS) for h in statement.collateral],
            set(COLLATERAL_COLUMNS) - {"asset"},
        ),
        *_loan_and_margin(statement),
        "<h2>Risk policies in force</h2>",
        _table(
            ("version", "adopted_seq", "adopted_at", "valued_closes_from", "sha256"),
            [
                (p.version, p.adopted_seq, p.adopted_at, p.from_date, p.digest)
                for p in statement.policies
            ],
            {"adopted_seq"},
        ),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _policies_named(policies: tuple[PolicyInForce, ...]) -> str:
    """The policies of the page's opening sentence: each with the day it valued from when
    the period spans a change."""
    if len(policies) == 1:
        return f"policy {policies[0].version}"
    named = ", ".join(f"{p.version} from {p.from_date or f'seq {p.adopted_seq}'}" for p in policies)
    return f"policies {named} (each day closed under the policy in force at its close)"


def _loan_and_margin(statement: ClientStatement) -> list[str]:
    figures = statement.figures or {}
    call = statement.margin_call
    call_html = (
        '<p class="empty">No open margin call.</p>'
        if call is None
        else f'<p class="alert">Margin call {html.escape(call["call_id"])}: '
        f"{html.escape(call['amount'])} USD, issued {html.escape(call['issued_at'])}, "
        f"deadline {html.escape(call['deadline'])}, because "
        f"{CALL_REASONS[call['trigger']]} ({html.escape(call['trigger'])}).</p>"
    )
    parts = [
        "<h2>Margin loan</h2>",
        _table(
            ("principal", "accrued_interest", "interest_this_period"),
            [(statement.loan_principal, statement.loan_interest, statement.interest_accrued)],
            {"principal", "accrued_interest", "interest_this_period"},
        ),
        "<h2>Margin figures</h2>",
        # One figure a line: twelve columns of figures do not fit an A4 page's width.
        _table(
            ("figure", "value"),
            [(n.replace("_", " "), figures.get(n)) for n in FIGURE_NAMES],
            {"value"},
        )
        if figures
        else '<p class="empty">Not valued: an asset held has no mark yet.</p>',
        "<h2>Open margin calls</h2>",
        call_html,
        "<h2>Perpetual positions</h2>",
        _table(
            POSITION_NAMES,
            [tuple(p[n] for n in POSITION_NAMES) for p in figures.get("positions", [])],
            set(POSITION_NAMES) - {"market"},
        ),
    ]
    if statement.daily_closes and statement.period.kind == "monthly":
        parts += [
            "<h2>Daily closing figures</h2>",
            _table(
                DAILY_CLOSE_COLUMNS,
                [
                    (
                        c.business_date,
                        c.seq,
                        c.equity,
                        c.loan,
                        c.maintenance_requirement,
                        c.status,
                        c.policy_version,
                    )
                    for c in statement.daily_closes
                ],
                {"seq", "equity", "loan", "maintenance_requirement"},
            ),
        ]
    return parts
