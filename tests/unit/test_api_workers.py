"""`ledger api --workers N`: N server processes on one port, each with its own views, all
giving the answers one process gives, stopped together."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from ledger import pretrade, reporting
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.api_process import listening_sockets, running_api
from tests.unit.test_api_checks import withdrawal
from tests.unit.test_projections import ingest_simulation

workers = 2
stop_timeout_s = 30.0
requests_per_worker = 8  # new connections, spread over the workers by the kernel

POLICY = load_policy(None)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('workers') / 'ledger.db'}"
    ingest_simulation(url, POLICY, 5, 6, 1)
    return url


def _workers_of(supervisor: int) -> list[int]:
    return [
        int(pid)
        for pid in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    ]


def test_every_worker_answers_the_check_one_process_would(store_url: str, tmp_path: Path) -> None:
    with LedgerStore.open(store_url) as store:
        book = reporting.book_as_of(store, None)
        account_id = sorted(a.account_id for a in book.clients() if a.balance("USD") > 0)[0]
        raw = withdrawal(account_id, "0.01")
        checked = pretrade.check(book, POLICY, account_id, raw, store=store)
    expected = checked.document(POLICY.version)
    with running_api(store_url, tmp_path / "api.log", workers) as api:
        assert len(_workers_of(api.process.pid)) == workers
        assert listening_sockets(api.port) == workers
        for _ in range(requests_per_worker * workers):
            # A new connection each time: the kernel picks the worker.
            answer = httpx.post(f"{api.base}/accounts/{account_id}/checks", content=raw)
            assert answer.status_code == 200, answer.text
            assert answer.json() == expected
        metrics = {httpx.get(f"{api.base}/metrics").text for _ in range(requests_per_worker)}
        assert len(metrics) == 1  # counted from the journal: the same in every worker


def test_sigterm_stops_every_worker_and_a_lost_worker_stops_the_rest(
    store_url: str, tmp_path: Path
) -> None:
    with running_api(store_url, tmp_path / "api.log", workers) as api:
        pids = _workers_of(api.process.pid)
        api.process.send_signal(signal.SIGTERM)
        assert api.process.wait(timeout=stop_timeout_s) == 0
        assert listening_sockets(api.port) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    with running_api(store_url, tmp_path / "api-killed.log", workers) as api:
        lost, survivor = _workers_of(api.process.pid)
        os.kill(lost, signal.SIGKILL)
        assert api.process.wait(timeout=stop_timeout_s) == 1
        assert not Path(f"/proc/{survivor}").exists()  # stopped and reaped before it exited
        deadline = time.monotonic() + stop_timeout_s
        while _group_members(lost) and time.monotonic() < deadline:
            time.sleep(0.05)  # the killed worker's as_of pool, signalled, on its way out
        assert _group_members(lost) == []


def _group_members(group: int) -> list[int]:
    """The processes in a process group (Linux's /proc: field 5 of a process's stat)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited while the folder was read
        if int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members
