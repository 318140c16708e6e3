"""`ledger store snapshot` before an upgrade, on PostgreSQL: the shared suite, and the
command run with the writer role's credentials on a store its owner created."""

from __future__ import annotations

import uuid

import pytest

from app.cli import main
from app.simulation import simulate
from ledger import snapshots
from ledger.store import LedgerStore
from tests.integration.test_store_privileges import role_url
from tests.upgrade_suite import *  # noqa: F403  # the shared suite's tests run here

pytestmark = pytest.mark.integration


@pytest.fixture
def store_url(pg_schema_url: str) -> str:
    return pg_schema_url


def test_the_writer_role_records_the_snapshot(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    schema = f"upgrade_{uuid.uuid4().hex[:12]}"
    inbox = tmp_path_factory.mktemp("upgrade") / "inbox.jsonl"
    inbox.write_bytes(b"\n".join(simulate(7, 4, 1)) + b"\n")
    owner = role_url(postgres_url, "ledger_owner", schema)
    assert main(["--store", owner, "ingest", str(inbox)]) in (0, 1)  # 1: some refused
    writer = role_url(postgres_url, "ledger_writer", schema)
    with LedgerStore.open(writer) as store:
        last = store.last_seq()
        found = store.snapshot_at_or_before(snapshots.CODE_DIGEST)
        assert found is None or found[0] < last  # the ingest's last one stands before the end
    assert main(["--store", writer, "store", "snapshot"]) == 0
    with LedgerStore.open(writer) as store:
        found = store.snapshot_at_or_before(snapshots.CODE_DIGEST)
        assert found is not None
        assert found[0] == last
