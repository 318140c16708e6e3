"""The `margin-calls` view says why each call was issued (docs/views.md `margin-calls`): a
call on the loan's limits has an amount on an account whose equity is above its
maintenance requirement, and the risk officer reads its trigger, the loan and the limit
there; the `margin-clients` view names the open call's trigger beside its amount. Views
built by older code, without those columns, are rebuilt from the journal."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest

from app.cli import main
from projections import resume
from projections.database import ViewDatabase, ViewsReadOnly
from projections.tables import MARGIN_CALLS, MARGIN_CLIENTS, Column, Table
from tests.ledger_scenario import Scenario


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
EXPECTED_CALLS = {
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
# The clients at the last mark, 36,000: C1 healthy (equity 33,970 above 32,400) with its
# limit call open, and the call's trigger says why; C2 in margin call on its equity.
EXPECTED_CLIENTS = {
    "C1": {
        "status": "healthy",
        "equity": "33970",
        "maintenance_requirement": "32400",
        "loan": "20030.00",
        "credit_limit": "15000.00",
        "call_amount": "5030.00",
        "call_trigger": "credit_limit_exceeded",
    },
    "C2": {
        "status": "margin_call",
        "equity": "21000",
        "maintenance_requirement": "21600",
        "loan": "15000.00",
        "credit_limit": "1000000.00",
        "call_amount": "600.00",
        "call_trigger": "below_maintenance_requirement",
    },
}
EXPECTED = {MARGIN_CALLS.view: EXPECTED_CALLS, MARGIN_CLIENTS.view: EXPECTED_CLIENTS}
# Figures the views keep at their computed precision (21000.00000000): compared as numbers.
_FIGURES = (
    "equity_at_issue",
    "maintenance_requirement_at_issue",
    "liquidation_requirement_at_issue",
    "equity",
    "maintenance_requirement",
)


def rows_by_account(
    url: str, view: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, dict[str, str]]:
    """`ledger report VIEW --format csv`, the rows by account, as checked above."""
    assert main(["--store", url, "report", view, "--format", "csv"]) == 0
    found = {}
    for row in csv.DictReader(io.StringIO(capsys.readouterr().out)):
        shown = {name: row[name] for name in EXPECTED[view]["C1"]}
        for name in _FIGURES:
            if name in shown:
                shown[name] = f"{Decimal(shown[name]).normalize():f}"
        found[row["account_id"]] = shown
    return found


@pytest.mark.parametrize("view", [MARGIN_CALLS.view, MARGIN_CLIENTS.view])
def test_each_call_names_its_trigger_and_a_limit_call_its_loan_and_limit(
    tmp_path: Path, view: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """margin-calls: C1's limit call names its loan and limit, C2's equity call none;
    margin-clients: C1 healthy with its limit call open, its trigger saying why."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    two_calls(url)
    assert rows_by_account(url, view, capsys) == EXPECTED[view]


@dataclass(frozen=True)
class OlderTable:
    """A view's table as code older than its reason columns wrote it: `table.replaces`,
    with the columns up to `last_column`."""

    table: Table
    last_column: str

    @property
    def sql_name(self) -> str:
        assert self.table.replaces is not None
        return self.table.replaces

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.table.columns[: self.table.column_names.index(self.last_column) + 1]


OLDER_CALLS = OlderTable(MARGIN_CALLS, "liquidation_id")  # before the trigger columns
OLDER_CLIENTS = OlderTable(MARGIN_CLIENTS, "call_age_hours")  # before call_trigger


def _older_table(url: str, older: OlderTable, rows: list[tuple[object, ...]]) -> None:
    """The older table at `url`, with the older columns, holding `rows`: as code older
    than the reason columns creates and writes it."""
    kinds = {"text": "TEXT", "decimal": "TEXT", "integer": "BIGINT"}
    columns = ", ".join(f"{column.name} {kinds[column.kind]}" for column in older.columns)
    key = ", ".join(older.table.key)
    mark = "%s" if url.startswith("postgresql") else "?"
    marks = ", ".join(mark for _ in older.columns)
    insert = f"INSERT INTO {older.sql_name} VALUES ({marks})"  # noqa: S608
    with ViewDatabase.open(url) as database, database.transaction() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {older.sql_name} ({columns}, PRIMARY KEY ({key}))"
        )
        for row in rows:
            cursor.execute(insert, row)


def _make_older(url: str, older: OlderTable) -> list[tuple[object, ...]]:
    """Leave the views at `url` as code older than the reason columns left them: the
    view's table the older one, with the older columns and rows, the new one absent;
    returns those rows."""
    names = ", ".join(column.name for column in older.columns)
    with ViewDatabase.open(url) as database, database.transaction() as cursor:
        kept = database.query(cursor, f"SELECT {names} FROM {older.table.sql_name}", ())  # noqa: S608
        cursor.execute(f"DROP TABLE {older.table.sql_name}")
    assert len(kept) == len(EXPECTED[older.table.view])
    _older_table(url, older, kept)
    return kept


def _has_older_table(url: str, older: OlderTable) -> bool:
    with ViewDatabase.open(url) as database, database.transaction(write=False) as cursor:
        return database._has_table(cursor, older.sql_name)


def check_older_views_are_rebuilt(
    url: str, older: OlderTable, capsys: pytest.CaptureFixture[str]
) -> None:
    """Views built and their state saved by older code (another digest of the state's
    code), the view's table the older one: read as they stand they are refused with the
    command that rebuilds them; the owner's next report rebuilds them from seq 1, with the
    reason columns, equal to a rebuild (`audit replay`), and drops the older table. A
    process of the older code still running that writes a row there again (it creates the
    table again on its next open) has the views rebuilt again."""
    view = older.table.view
    two_calls(url)
    with mock.patch.object(resume, "CODE_DIGEST", "0" * 64):
        rows_by_account(url, view, capsys)  # builds the views and keeps their state
    older_rows = _make_older(url, older)
    refused = rf"written by an older version of the ledger \(its {view} view\)"
    with pytest.raises(ViewsReadOnly, match=refused):
        ViewDatabase.open(url, create=False)
    assert rows_by_account(url, view, capsys) == EXPECTED[view]
    assert not _has_older_table(url, older)
    assert main(["--store", url, "audit", "replay"]) == 0
    assert "differ" not in capsys.readouterr().out

    _older_table(url, older, older_rows[:1])  # an older process wrote a row after the rebuild
    with pytest.raises(ViewsReadOnly, match=refused):
        ViewDatabase.open(url, create=False)
    assert rows_by_account(url, view, capsys) == EXPECTED[view]
    assert not _has_older_table(url, older)
    _older_table(url, older, [])  # an older process opened the views and wrote no row
    with ViewDatabase.open(url, create=False) as database:
        assert len(database.rows(older.table)) == len(EXPECTED[view])


@pytest.mark.parametrize("older", [OLDER_CALLS, OLDER_CLIENTS], ids=lambda o: o.table.view)
def test_views_of_older_code_are_rebuilt_with_the_reason_columns(
    tmp_path: Path, older: OlderTable, capsys: pytest.CaptureFixture[str]
) -> None:
    check_older_views_are_rebuilt(f"sqlite:///{tmp_path / 'ledger.db'}", older, capsys)
