"""Tables for people show figures as people read them; JSON, CSV and `--wide` keep the exact
digits. Amounts at their asset's scale with thousands separators, right-aligned; ratios as
percentages with two decimals; prices at the cent."""

from __future__ import annotations

import pytest

from ledger.policy import load_policy
from projections.figures import readable
from projections.render import query_csv, query_table, render_text
from projections.tables import TABLES_BY_VIEW

POLICY = load_policy(None)


def scale_of(code: str) -> int:
    return POLICY.asset(code).scale


@pytest.mark.parametrize(
    ("column", "text", "row", "shown"),
    [
        ("equity", "269767.88488742953751630150", {}, "269,767.88"),
        ("equity", "-1234.005", {}, "-1,234.00"),  # half-even at the cent
        ("mark_price", "56438.4849", {"market": "BTC-PERP"}, "56,438.48"),
        ("margin_level", "2.2271", {}, "222.71%"),
        ("ltv", "0.289745", {}, "28.97%"),
        ("balance", "1.102570281", {"asset": "BTC"}, "1.10257028"),
        ("balance", "223715.8", {"asset": "USD"}, "223,715.80"),
        ("size", "-9.886885501", {"market": "BTC-PERP"}, "-9.88688550"),
        ("quantity", "1200", {"instrument": "SEHK:0700"}, "1,200"),
        ("call_age_hours", "3.5", {}, "3.5"),
    ],
)
def test_a_figure_as_a_table_shows_it(
    column: str, text: str, row: dict[str, object], shown: str
) -> None:
    assert readable(column, text, row, scale_of) == shown


MARGIN = {
    "account_id": "C-1",
    "as_of_seq": 12345,
    "equity": "1234567.891",
    "margin_level": "1.5",
    "status": "healthy",
    "margin_call": None,
    "positions": [
        {
            "market": "BTC-PERP",
            "size": "0.5",
            "entry_price": "60000.123456",
            "liquidation_price": None,
        }
    ],
}


def test_the_query_table_is_readable_and_right_aligned() -> None:
    lines = query_table(MARGIN, scale_of).splitlines()
    assert lines[:5] == [
        "account_id                C-1",
        "as_of_seq                       12,345",
        "equity                    1,234,567.89",
        "margin_level                   150.00%",
        "status                    healthy",
    ]
    assert lines[7:] == [
        "  market          size  entry_price  liquidation_price",
        "  BTC-PERP  0.50000000    60,000.12",
    ]


def test_wide_and_json_keep_the_exact_digits() -> None:
    wide = query_table(MARGIN, None)
    assert "1234567.891" in wide
    assert "60000.123456" in wide


def test_the_margin_csv_says_its_positions_are_elsewhere() -> None:
    text, note = query_csv(MARGIN)
    assert text.splitlines()[1].startswith("C-1,12345,1234567.891,1.5,healthy")
    assert note == (
        "1 positions are not in this CSV of figures: "
        "`ledger report positions --format csv` lists them"
    )


def test_a_report_table_right_aligns_figures_at_their_scale() -> None:
    table = TABLES_BY_VIEW["balances"]
    document = {
        "view": "balances",
        "as_of_seq": 7,
        "as_of_recorded_at": None,
        "columns": list(table.column_names),
        "rows": [
            {
                "account_id": "C-1",
                "asset": "BTC",
                "balance": "2.5",
                "mark_price": "60000",
                "market_value": "150000",
            },
            {
                "account_id": "C-1",
                "asset": "USD",
                "balance": "-12.3",
                "mark_price": "1",
                "market_value": "-12.3",
            },
        ],
    }
    assert render_text(document, table, "table", scale_of).splitlines()[1:] == [
        "account_id  asset     balance  mark_price  market_value",
        "C-1         BTC    2.50000000   60,000.00    150,000.00",
        "C-1         USD        -12.30        1.00        -12.30",
    ]
    assert "BTC        2.5       60000        150000" in render_text(document, table, "table")


def test_ledger_checks_positions_read_as_ledger_query_shows_them() -> None:
    """The check's table showed its figures at the cent but its positions' entry and mark
    with every digit (`entry 69277.342298456001, mark 56438.48`)."""
    from app.risk_commands import _check_table  # noqa: PLC0415 (the table alone, no store)

    position = {
        "market": "BTC-PERP",
        "size": "3.25195507",
        "entry_price": "69277.342298456001",
        "mark_price": "56438.4849",
        "liquidation_price": "41234.567",
    }
    document = {
        "outcome": "accepted",
        "reason_code": None,
        "account_id": "C1",
        "record_type": "withdrawal_requested",
        "event_id": "w-1",
        "journal_seq": 7,
        "would_record": ["withdrawal_approved"],
        "before": {"positions": [position]},
        "after": {"positions": [{**position, "liquidation_price": None}]},
    }
    lines = _check_table(document, scale_of).splitlines()
    assert lines[-2:] == [
        "before BTC-PERP: size 3.25195507, entry 69,277.34, mark 56,438.48, "
        "liquidation price 41,234.57",
        "after BTC-PERP: size 3.25195507, entry 69,277.34, mark 56,438.48, liquidation price -",
    ]
