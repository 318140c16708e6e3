"""`ledger audit replay` compares the views as they stand: views an older version of the
ledger wrote are not reset by the comparison (only the owner's `ledger report` rebuilds
them), and the auditor is told so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from projections.tables import MARGIN_CALLS
from tests.ledger_scenario import Scenario


def _position(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT projection, last_seq FROM projection_position").fetchall()


def test_replay_of_views_an_older_version_wrote_says_so_and_leaves_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It opened them to write, which empties views of older code for a rebuild, then said
    'the views were never built': the owner's views were gone, and the auditor misled."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    Scenario(url).spot_buy_beyond_cash("15000")  # a credit-limit call among the views' rows
    assert main(["--store", url, "report", "margin-calls"]) == 0  # the owner's report
    # As a version older than this table of calls left the views: without it.
    with sqlite3.connect(path) as connection:
        connection.execute(f"DROP TABLE {MARGIN_CALLS.sql_name}")
    built = _position(path)
    assert built[0][1] > 0
    capsys.readouterr()
    assert main(["--store", url, "audit", "replay"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert (
        f"nothing to compare: the views in {url} were written by an older version of the "
        "ledger (its margin-calls view): the owner role's `ledger report VIEW` rebuilds them "
        "from the journal, then replay again"
    ) in error
    assert _position(path) == built  # left as they stood

    assert main(["--store", url, "report", "margin-calls"]) == 0  # the owner rebuilds them
    assert main(["--store", url, "audit", "replay"]) == 0
    assert "every view is identical" in capsys.readouterr().out
