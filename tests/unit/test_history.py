"""The accounts' history kept with the stored views answers an account read at a past seq
exactly as replaying the journal to that seq does: the same documents, byte for byte."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledger import journal_events as je
from ledger import reporting, risk
from ledger.book import Book
from ledger.journal import canonical_json
from ledger.policy import Policy, load_policy
from ledger.store import LedgerStore
from projections import history, resume, views
from projections.database import ViewDatabase
from projections.runner import ProjectionRunner
from tests.unit.test_projections import ACCOUNTS, DAYS, SEED, ingest_simulation

sampled_seqs = 400  # seqs compared, besides the first and the last ten


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module")
def journal_db(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    """The simulated crash (calls, liquidations, loans, funding) in a store, no views."""
    path = tmp_path_factory.mktemp("history") / "ledger.db"
    ingest_simulation(f"sqlite:///{path}", policy, SEED, ACCOUNTS, DAYS)
    return path


@pytest.fixture
def store_url(journal_db: Path, tmp_path: Path) -> str:
    copy = tmp_path / "ledger.db"
    shutil.copy(journal_db, copy)
    return f"sqlite:///{copy}"


def _document(book: Book, policy: Policy, account_id: str) -> bytes:
    """What the API answers for the account in `book` (margin and balances), as bytes."""
    if account_id not in book.accounts:
        return b"absent"
    try:
        margin: Any = reporting.margin_view(book, policy, account_id)
    except risk.MissingMark as missing:
        margin = f"missing mark: {missing}"
    return canonical_json([margin, reporting.balances_view(book, policy, account_id)])


def compare_history_with_replay(
    store: LedgerStore, database: ViewDatabase, policy: Policy, seqs: set[int]
) -> int:
    """Replay the journal once, comparing every client's documents at each seq of `seqs`
    with the history's; returns how many documents were compared."""
    replayed, compared = Book(), 0
    clients = sorted(a.account_id for a in reporting.book_as_of(store, None).clients())
    for entry in store.iter_journal():
        replayed.apply(je.decode_journal_record(entry.record))
        if entry.seq not in seqs:
            continue
        assert history.covers(database, entry.seq)
        for account_id in clients:
            from_history = history.book_at(database, account_id, entry.seq)
            expected = _document(replayed, policy, account_id)
            assert _document(from_history, policy, account_id) == expected, (entry.seq, account_id)
            compared += 1
    return compared


def _sample(last: int, start: int) -> set[int]:
    chosen = random.Random(7).sample(range(start, last + 1), min(sampled_seqs, last - start))
    return {*chosen, *range(start, start + 10), *range(last - 9, last + 1)} - {0}


def test_history_answers_as_the_replay_does(store_url: str, policy: Policy) -> None:
    with LedgerStore.open(store_url) as store, ViewDatabase.open(store_url) as database:
        ProjectionRunner(database, policy).follow(store, batch_events=997)
        last = store.last_seq()
        assert database.history_start() == 0
        assert compare_history_with_replay(store, database, policy, _sample(last, 1)) > 1_000


@pytest.mark.parametrize("state_saved", [True, False])
def test_history_goes_on_after_a_restart(
    store_url: str, policy: Policy, *, state_saved: bool
) -> None:
    with LedgerStore.open(store_url) as store:
        half = store.last_seq() // 2
        with ViewDatabase.open(store_url) as database:
            runner = ProjectionRunner(database, policy)
            runner.follow(store, until_seq=half)
            if state_saved:  # resumed from it; else rebuilt in memory from seq 1 to half
                resume.save(database, runner.state, runner.name)
        with views.live_views(store, store_url, policy) as database:
            assert database.history_start() == 0
            seqs = _sample(store.last_seq(), 1) | set(range(half - 5, half + 5))
            compare_history_with_replay(store, database, policy, seqs)


class _WithoutHistory(ViewDatabase):
    records_history = False  # views as code before the history built them


def test_a_history_begun_on_older_views_starts_where_they_stood(
    store_url: str, policy: Policy
) -> None:
    with LedgerStore.open(store_url) as store:
        third = store.last_seq() // 3
        with _WithoutHistory.open(store_url) as older:
            ProjectionRunner(older, policy).follow(store, until_seq=third)
        with ViewDatabase.open(store_url) as database:
            assert database.history_start() is None
            ProjectionRunner(database, policy).follow(store)
            assert database.history_start() == third
            assert not history.covers(database, third - 1)
            compare_history_with_replay(store, database, policy, _sample(store.last_seq(), third))


def test_scratch_views_in_memory_keep_no_history(store_url: str, policy: Policy) -> None:
    with LedgerStore.open(store_url) as store, ViewDatabase.open("sqlite:///:memory:") as scratch:
        ProjectionRunner(scratch, policy).follow(store, until_seq=100)
        assert scratch.history_start() is None
        assert not history.covers(scratch, 50)
