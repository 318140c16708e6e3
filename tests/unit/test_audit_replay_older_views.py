"""`ledger audit replay` compares the views as they stand: views an older version of the
ledger wrote are not reset by the comparison (only the owner's `ledger report` rebuilds
them), and the auditor is told so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from tests.unit.test_margin_call_triggers import _make_older, calls_by_account, two_calls


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
    two_calls(url)
    calls_by_account(url, capsys)  # the owner's report built the views
    with sqlite3.connect(path) as connection:
        (stood,) = connection.execute("SELECT * FROM projection_position").fetchall()
    _make_older(url)  # as code older than the trigger columns left them, at that position
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM projection_position")
        connection.execute("INSERT INTO projection_position VALUES (?, ?, ?, ?)", stood)
    built = _position(path)
    assert built[0][1] > 0
    assert main(["--store", url, "audit", "replay"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert (
        f"nothing to compare: the views in {url} were written by an older version of the "
        "ledger (its margin-calls view): the owner role's `ledger report VIEW` rebuilds them "
        "from the journal, then replay again"
    ) in error
    assert _position(path) == built  # left as they stood

    calls_by_account(url, capsys)  # the owner's report rebuilds them
    assert main(["--store", url, "audit", "replay"]) == 0
    assert "every view is identical" in capsys.readouterr().out
