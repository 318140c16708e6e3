"""Parquet's decimal columns have one type in every file (docs/downstream.md "Parquet").

A downstream table that appends each day's file failed on the second day: the decimal
columns were sized per file (`decimal128(7, 2)` one day, `decimal128(8, 2)` the next), so
two files of one view had different schemas. Every figure is now `decimal128(38, 18)`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no type information
import pytest

from projections.parquet import ParquetError, write_parquet
from projections.tables import TABLES_BY_VIEW

FIGURE = pa.decimal128(38, 18)


def _call(call_id: str, amount: str, equity: str) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "account_id": "C1",
        "issued_seq": 7,
        "issued_at": "2026-11-02T10:00:00Z",
        "amount": amount,
        "deadline": "2026-11-03T10:00:00Z",
        "equity_at_issue": equity,
        "maintenance_requirement_at_issue": "100",
        "liquidation_requirement_at_issue": "80",
        "outcome": None,
        "closed_seq": None,
        "closed_at": None,
        "liquidation_id": None,
        "trigger": "below_maintenance_requirement",
        "loan_at_issue": "0",
        "limit_amount": None,
    }


def _write(path: Path, view: str, rows: list[dict[str, Any]]) -> Any:
    write_parquet({"as_of_seq": 9, "rows": rows}, TABLES_BY_VIEW[view], path)
    return pq.read_table(path)


def test_two_days_of_one_view_have_one_schema_and_append(tmp_path: Path) -> None:
    # Day 1: a 7-digit amount with 2 places; day 2: an 8-digit one and a 20-place equity.
    day1 = _write(tmp_path / "d1.parquet", "margin-calls", [_call("a", "2112.49", "97.5")])
    day2 = _write(
        tmp_path / "d2.parquet",
        "margin-calls",
        [_call("b", "123456.78", "-203307.71154225000139534656")],
    )
    assert day1.schema.field("amount").type == FIGURE
    assert day1.schema.field("equity_at_issue").type == FIGURE
    assert day1.schema == day2.schema
    both = pa.concat_tables([day1, day2])
    assert both.column("amount").to_pylist() == [Decimal("2112.49"), Decimal("123456.78")]
    # 20 places rounded half-even to 18: ...0001395346|56 -> ...0001395347.
    assert both.column("equity_at_issue").to_pylist() == [
        Decimal("97.5"),
        Decimal("-203307.711542250001395347"),
    ]


def _statement(balances: dict[str, str], positions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "business_date": "2026-11-02",
        "account_id": "C1",
        "closed_seq": 5,
        "closed_at": "2026-11-03T00:00:00Z",
        "investor_class": "professional",
        "balances": json.dumps(balances),
        "positions": json.dumps(positions),
        **dict.fromkeys(
            [
                "market_value",
                "unrealized_pnl",
                "loan_principal",
                "loan_interest",
                "loan",
                "interest_accrued",
                "equity",
                "initial_requirement",
                "maintenance_requirement",
                "margin_level",
            ],
            "1.5",
        ),
        "status": "healthy",
        "call_id": None,
    }


def test_statement_nested_figures_have_the_fixed_type_whatever_the_assets(
    tmp_path: Path,
) -> None:
    usd_only = _write(tmp_path / "a.parquet", "daily-statement", [_statement({"USD": "10"}, [])])
    with_btc = _write(
        tmp_path / "b.parquet",
        "daily-statement",
        [
            _statement(
                {"BTC": "0.12345678", "USD": "10.25"},
                [{"market": "BTC-PERP", "size": "-2.5", "entry_price": "69821.423418481283"}],
            )
        ],
    )
    assert usd_only.schema == with_btc.schema
    assert with_btc.schema.field("balances").type.item_type == FIGURE
    position = with_btc.schema.field("positions").type.value_type
    assert position.field("size").type == FIGURE
    assert position.field("entry_price").type == FIGURE
    assert with_btc.column("positions").to_pylist() == [
        [
            {
                "market": "BTC-PERP",
                "size": Decimal("-2.5"),
                "entry_price": Decimal("69821.423418481283"),
            }
        ]
    ]


def test_a_figure_of_21_integer_digits_is_refused_in_one_sentence(tmp_path: Path) -> None:
    too_large = "100000000000000000000"  # 10^20: 21 integer digits
    with pytest.raises(ParquetError, match=r"^amount 100000000000000000000 has more integer"):
        _write(tmp_path / "x.parquet", "margin-calls", [_call("a", too_large, "1")])
    largest = "99999999999999999999.999999999999999999"  # 20 digits and 18 places fit
    read = _write(tmp_path / "y.parquet", "margin-calls", [_call("a", largest, "1")])
    assert read.column("amount").to_pylist() == [Decimal(largest)]


def _snippet(heading: str) -> str:
    """The Python block under `heading` in docs/downstream.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "downstream.md").read_text("utf-8")
    after = text.split(heading, 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_a_snapshot_file_names_its_seq_and_time_and_appended_days_stay_apart(
    tmp_path: Path,
) -> None:
    """A view's file is the view as of one journal position, but its rows do not say which:
    two days of margin-clients appended read as one client twice, and the file's metadata
    held the seq alone. It names the time too, and docs/downstream.md's recipe (run here)
    stamps each file's rows with both before appending."""
    table = TABLES_BY_VIEW["lending-limits"]
    row = dict.fromkeys(table.column_names)
    row.update(item="firm_total_loans", amount="11899082.69", limit_amount="250000000")
    days = [(20607, "2026-11-03T00:00:00Z"), (44126, "2026-11-04T00:00:00Z")]
    paths = []
    for seq, recorded_at in days:
        path = tmp_path / f"lending-limits-{seq}.parquet"
        document = {"as_of_seq": seq, "as_of_recorded_at": recorded_at, "rows": [row]}
        write_parquet(document, table, path)
        paths.append(path)
    metadata = pq.read_schema(paths[1]).metadata
    assert metadata[b"as_of_seq"] == b"44126"
    assert metadata[b"as_of_recorded_at"] == b"2026-11-04T00:00:00Z"
    scope: dict[str, Any] = {}
    exec(_snippet("### Appending a view's files"), scope)  # noqa: S102  # the docs' own lines
    both = pa.concat_tables([scope["stamped"](path) for path in paths])
    assert both.column("as_of_seq").to_pylist() == [20607, 44126]
    assert [t.isoformat() for t in both.column("as_of_recorded_at").to_pylist()] == [
        "2026-11-03T00:00:00+00:00",
        "2026-11-04T00:00:00+00:00",
    ]
    assert both.column("amount").to_pylist() == [Decimal("11899082.69")] * 2
