"""The `margin-calls` view says why each call was issued (docs/views.md `margin-calls`): a
call on the loan's limits has an amount on an account whose equity is above its
maintenance requirement, and the risk officer reads its trigger, the loan and the limit
there. Views built by older code, without those columns, are rebuilt from the journal."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest

from app.cli import main
from projections import resume
from projections.database import ViewDatabase, ViewsReadOnly
from projections.tables import MARGIN_CALLS
from tests.ledger_scenario import Scenario

OLDER_TABLE = "view_margin_calls"  # the table of older code: the columns up to liquidation_id
OLDER_COLUMNS = MARGIN_CALLS.columns[: MARGIN_CALLS.column_names.index("liquidation_id") + 1]


def two_calls(url: str) -> None:
    """Two calls, one of each kind, in the store at `url` (closed afterwards).

    C1 (credit limit 15,000) holds 1 BTC at 60,000 and 10,000 USD and buys 0.5 BTC at
    60,000 with a 30 fee: 30,030 USD, 20,030 beyond its cash, financed on its loan. Its
    equity 1.5 x 60,000 - 20,030 = 69,970 is above its maintenance requirement
    1.5 x 60,000 x 0.60 = 54,000 (liquidation 0.50: 45,000), but the loan is 5,030 above
    the credit limit: a call for 20,030 - 15,000 = 5,030.00, trigger credit_limit_exceeded.

    C2 holds 1 BTC, draws 15,000 and withdraws it; BTC marked at 36,000: equity
    36,000 - 15,000 = 21,000 below the maintenance requirement 36,000 x 0.60 = 21,600 and
    above the liquidation one, 18,000: a call for 21,600 - 21,000 = 600.00 on the equity.
    (C1 at 36,000: equity 54,000 - 20,030 = 33,970, maintenance 32,400: its limit call stays.)"""
    s = Scenario(url)
    s.spot_buy_beyond_cash(credit="15000")
    s.open("C2")
    s.deposit("C2", "BTC", "1")
    s.send("loan_draw_requested", account_id="C2", amount="15000")
    s.send("withdrawal_requested", account_id="C2", asset="USD", amount="15000")
    s.mark("BTC", "36000")
    s.store.close()


# The figures a risk officer checks, per account: why, how much, on what.
EXPECTED = {
    "C1": {
        "trigger": "credit_limit_exceeded",
        "amount": "5030.00",
        "loan_at_issue": "20030.00",
        "limit_amount": "15000.00",
        "equity_at_issue": "69970",
        "maintenance_requirement_at_issue": "54000",
        "liquidation_requirement_at_issue": "45000",
        "outcome": "open",
    },
    "C2": {
        "trigger": "below_maintenance_requirement",
        "amount": "600.00",
        "loan_at_issue": "15000.00",
        "limit_amount": "",
        "equity_at_issue": "21000",
        "maintenance_requirement_at_issue": "21600",
        "liquidation_requirement_at_issue": "18000",
        "outcome": "open",
    },
}
# Figures the view keeps at their recorded precision (21000.00000000): compared as numbers.
_FIGURES = (
    "equity_at_issue",
    "maintenance_requirement_at_issue",
    "liquidation_requirement_at_issue",
)


def calls_by_account(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """`ledger report margin-calls --format csv`, the rows by account, as checked above."""
    assert main(["--store", url, "report", "margin-calls", "--format", "csv"]) == 0
    found = {}
    for row in csv.DictReader(io.StringIO(capsys.readouterr().out)):
        shown = {name: row[name] for name in EXPECTED["C1"]}
        for name in _FIGURES:
            shown[name] = f"{Decimal(shown[name]).normalize():f}"
        found[row["account_id"]] = shown
    return found


def test_a_limit_call_names_its_trigger_loan_and_limit_where_an_equity_call_names_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    two_calls(url)
    assert calls_by_account(url, capsys) == EXPECTED


def _older_table(url: str, rows: list[tuple[object, ...]]) -> None:
    """The older table of calls at `url`, with the older columns, holding `rows`: as code
    older than the trigger columns creates and writes it."""
    kinds = {"text": "TEXT", "decimal": "TEXT", "integer": "BIGINT"}
    columns = ", ".join(f"{column.name} {kinds[column.kind]}" for column in OLDER_COLUMNS)
    mark = "%s" if url.startswith("postgresql") else "?"
    insert = f"INSERT INTO {OLDER_TABLE} VALUES ({', '.join(mark for _ in OLDER_COLUMNS)})"  # noqa: S608
    with ViewDatabase.open(url) as database, database.transaction() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {OLDER_TABLE} ({columns}, PRIMARY KEY (call_id))"
        )
        for row in rows:
            cursor.execute(insert, row)


def _make_older(url: str) -> list[tuple[object, ...]]:
    """Leave the views at `url` as code older than the trigger columns left them: their
    table of calls the older one, with the older columns and rows, the new one absent;
    returns those rows."""
    names = ", ".join(column.name for column in OLDER_COLUMNS)
    with ViewDatabase.open(url) as database, database.transaction() as cursor:
        kept = database.query(cursor, f"SELECT {names} FROM {MARGIN_CALLS.sql_name}", ())  # noqa: S608
        cursor.execute(f"DROP TABLE {MARGIN_CALLS.sql_name}")
    assert len(kept) == len(EXPECTED)
    _older_table(url, kept)
    return kept


def _has_older_table(url: str) -> bool:
    with ViewDatabase.open(url) as database, database.transaction(write=False) as cursor:
        return database._has_table(cursor, OLDER_TABLE)


def check_older_views_are_rebuilt(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Views built and their state saved by older code (another digest of the state's
    code), their table of calls the older one: read as they stand they are refused with
    the command that rebuilds them; the owner's next report rebuilds them from seq 1, with
    the trigger columns, equal to a rebuild (`audit replay`), and drops the older table.
    A process of the older code still running that writes a call there again (it creates
    the table again on its next open) has the views rebuilt again."""
    two_calls(url)
    with mock.patch.object(resume, "CODE_DIGEST", "0" * 64):
        calls_by_account(url, capsys)  # builds the views and keeps their state
    older_rows = _make_older(url)
    refused = r"written by an older version of the ledger \(its margin-calls view\)"
    with pytest.raises(ViewsReadOnly, match=refused):
        ViewDatabase.open(url, create=False)
    assert calls_by_account(url, capsys) == EXPECTED
    assert not _has_older_table(url)
    assert main(["--store", url, "audit", "replay"]) == 0
    assert "differ" not in capsys.readouterr().out

    _older_table(url, older_rows[:1])  # an older process wrote one call after the rebuild
    with pytest.raises(ViewsReadOnly, match=refused):
        ViewDatabase.open(url, create=False)
    assert calls_by_account(url, capsys) == EXPECTED
    assert not _has_older_table(url)
    _older_table(url, [])  # an older process opened the views and wrote no call: no rebuild
    with ViewDatabase.open(url, create=False) as database:
        assert len(database.rows(MARGIN_CALLS)) == len(EXPECTED)


def test_views_of_older_code_are_rebuilt_with_the_trigger_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_older_views_are_rebuilt(f"sqlite:///{tmp_path / 'ledger.db'}", capsys)
