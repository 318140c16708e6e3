"""`ledger store snapshot` before an upgrade, on a SQLite store file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from ledger.application import LedgerApplication
from ledger.store import DEPOSITS_TABLE, TRADES_TABLE, LedgerStore
from tests.ledger_scenario import Scenario
from tests.upgrade_suite import *  # noqa: F403  # the shared suite's tests run here
from tests.upgrade_suite import POLICY


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_the_command_fills_the_originals_tables_a_store_of_older_code_lacks(
    tmp_path: Path,
) -> None:
    """A store written before the trades and deposits tables existed: the upgraded writer
    that starts from the command's snapshot replays only the tail, so the command records
    the originals the journal booked, as a writer's start from seq 1 would have."""
    path = tmp_path / "ledger.db"
    s = Scenario(f"sqlite:///{path}")
    s.perp_long()  # C1 buys 0.1 BTC-PERP as p1
    s.perp_buy("C1", "p2", "0.2", "61000", fee="1")
    s.send("deposit", account_id="C1", asset="USD", amount="500", reference="bank-1")
    last = s.store.last_seq()
    booked = s.store.trades_booked({"p1", "p2"}, last)
    assert set(booked) == {"p1", "p2"}
    s.store.close()
    with sqlite3.connect(path) as connection:  # as older code left it
        connection.execute(f"DROP TABLE {TRADES_TABLE}")
        connection.execute(f"DROP TABLE {DEPOSITS_TABLE}")
    url = f"sqlite:///{path}"
    assert main(["--store", url, "store", "snapshot"]) == 2  # "open it once with ... store init"
    assert main(["--store", url, "store", "init"]) == 0  # the upgrade's first step: empty tables
    assert main(["--store", url, "store", "snapshot"]) == 0
    with LedgerStore.open(url) as store:
        assert store.trades_booked({"p1", "p2"}, last) == booked
        assert store.deposits_booked({"bank-1"}, last) == {"bank-1": last}
        upgraded = LedgerApplication(store, POLICY)
        assert (upgraded.snapshot_seq, upgraded.replayed_events) == (last, 0)
