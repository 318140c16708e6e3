"""`ledger store snapshot` before an upgrade, on a SQLite store file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from ledger.application import LedgerApplication
from ledger.store import LedgerStore
from tests.ledger_scenario import store_of_older_code
from tests.upgrade_suite import *  # noqa: F403  # the shared suite's tests run here
from tests.upgrade_suite import POLICY, replayed_book


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
    store_of_older_code(path)
    url = f"sqlite:///{path}"
    assert main(["--store", url, "store", "snapshot"]) == 2  # "open it once with ... store init"
    assert main(["--store", url, "store", "init"]) == 0  # the upgrade's first step
    with LedgerStore.open(url) as store:
        assert store.trades_booked({"p1", "p2"}, store.last_seq()) == {}  # made, empty
    assert main(["--store", url, "store", "snapshot"]) == 0
    with LedgerStore.open(url) as store:
        last = store.last_seq()
        replayed = replayed_book(store)
        assert set(replayed.trades) == {"p1", "p2"}
        assert store.trades_booked(replayed.trades, last) == replayed.trades
        assert store.deposits_booked({"bank-1"}, last) == {"bank-1": last}
        upgraded = LedgerApplication(store, POLICY)
        assert (upgraded.snapshot_seq, upgraded.replayed_events) == (last, 0)
