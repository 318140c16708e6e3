"""`ledger store snapshot` before an upgrade, on every store adapter.

A module that imports these tests provides a `store_url` fixture: an empty store's URL
that a writer may use. The older version of the code is played by the same code under
another code digest (`older_code`): its snapshots are in a stream the current code never
reads, as after an upgrade that changes how events apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from app.cli import main
from app.simulation import simulate
from ledger import journal_events as je
from ledger import snapshots
from ledger.application import InboxItem, LedgerApplication
from ledger.book import Book
from ledger.policy import load_policy
from ledger.store import LedgerStore

POLICY = load_policy(None)
OLDER_DIGEST = "0" * 64
batch_records = 100
records_before = 1_200  # decided by the older version before the command runs
records_total = 2_000
older_snapshot_events = 300
page_events = 150  # journal pages of the command in these tests: many pages, a moving end


@contextmanager
def older_code() -> Iterator[None]:
    """The older version of the code: the same decisions, its own snapshot stream."""
    with mock.patch.object(snapshots, "CODE_DIGEST", OLDER_DIGEST):
        yield


@pytest.fixture(scope="module")
def items() -> list[InboxItem]:
    return [
        InboxItem(value=line, key=None, topic="test", partition=0, offset=offset)
        for offset, line in enumerate(list(simulate(5, 8, 1))[:records_total])
    ]


def _batches(items: list[InboxItem]) -> list[list[InboxItem]]:
    return [items[start : start + batch_records] for start in range(0, len(items), batch_records)]


def _older_writer(store: LedgerStore) -> LedgerApplication:
    with older_code():
        return LedgerApplication(store, POLICY, snapshot_events=older_snapshot_events)


def _decide(app: LedgerApplication, batch: list[InboxItem]) -> None:
    with older_code():
        app.process(batch)


def _stored(store: LedgerStore) -> list[object]:
    """Everything the command must leave as it is: the journal, the rejects, the older
    code's snapshots, and the inputs, trades and deposits tables as a writer reads them."""
    journal = [entry.record for entry in store.iter_journal()]
    replayed = replayed_book(store)
    event_ids = [
        event.causation_id for event in map(je.decode_journal_record, journal) if event.causation_id
    ]
    last = store.last_seq()
    return [
        journal,
        list(store.read_rejects()),
        store.read_snapshots(OLDER_DIGEST, 0, 10_000),
        store.inputs_seen(event_ids, last),
        store.trades_booked(replayed.trades, last),
        store.deposits_booked(replayed.deposits, last),
    ]


def replayed_book(store: LedgerStore) -> Book:
    book = Book()
    for entry in store.iter_journal():
        book.apply(je.decode_journal_record(entry.record))
    return book


def _journal_and_rejects(store: LedgerStore) -> tuple[list[bytes], list[bytes]]:
    return [entry.record for entry in store.iter_journal()], list(store.read_rejects())


def test_after_the_command_the_upgraded_start_applies_only_the_tail(
    store_url: str, items: list[InboxItem], capsys: pytest.CaptureFixture[str]
) -> None:
    batches = _batches(items)
    split = records_before // batch_records
    with LedgerStore.open(store_url) as store:
        older = _older_writer(store)
        for batch in batches[:split]:
            _decide(older, batch)
        assert store.snapshot_at_or_before(OLDER_DIGEST) is not None
        assert store.snapshot_at_or_before(snapshots.CODE_DIGEST) is None  # an upgrade
        at_command = store.last_seq()
        before = _stored(store)
    capsys.readouterr()
    assert main(["--store", store_url, "store", "snapshot"]) == 0
    assert capsys.readouterr().out == (
        f"book snapshot of this version at seq {at_command} "
        f"(from seq 1 (no snapshot of it yet), {at_command} journal events applied)\n"
    )
    with LedgerStore.open(store_url) as store:
        assert _stored(store) == before  # only this version's snapshots were written
        older = _older_writer(store)  # the older writer goes on after the command
        for batch in batches[split:]:
            _decide(older, batch)
        tail_events = store.last_seq() - at_command
        assert tail_events > 0
        upgraded = LedgerApplication(store, POLICY)
        assert (upgraded.snapshot_seq, upgraded.replayed_events) == (at_command, tail_events)
        assert snapshots.encode_book(upgraded.book) == snapshots.encode_book(replayed_book(store))


def test_the_command_does_not_disturb_the_older_writer(
    store_url: str, items: list[InboxItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The older writer decides a batch (on its own connection) after each journal page the
    command applies: the journal and rejects are those of the same batches decided without
    the command, the command follows the journal's end as it moves, and its snapshots
    equal the book of a replay to their seq."""
    batches = _batches(items)
    split = records_before // batch_records
    with LedgerStore.open("sqlite:///:memory:") as alone:
        older_alone = _older_writer(alone)
        for batch in batches:
            _decide(older_alone, batch)
        expected = _journal_and_rejects(alone)
    monkeypatch.setattr(snapshots, "journal_read_batch_events_max", page_events)
    with LedgerStore.open(store_url) as writer_store, LedgerStore.open(store_url) as command_store:
        older = _older_writer(writer_store)
        for batch in batches[:split]:
            _decide(older, batch)
        at_start = writer_store.last_seq()
        meanwhile = iter(batches[split:])

        def older_writer_goes_on(_applied: int) -> None:
            if (batch := next(meanwhile, None)) is not None:
                _decide(older, batch)

        prepared = snapshots.prepare(command_store, 10**9, older_writer_goes_on)
        assert next(meanwhile, None) is None  # every later batch was decided meanwhile
        assert _journal_and_rejects(writer_store) == expected
        last = writer_store.last_seq()
        assert (prepared.began_at, prepared.applied) == (0, last)  # it caught the moving end
        assert prepared.snapshot_seq == last > at_start
        upgraded = LedgerApplication(writer_store, POLICY)
        assert (upgraded.snapshot_seq, upgraded.replayed_events) == (last, 0)
        assert snapshots.encode_book(upgraded.book) == snapshots.encode_book(
            replayed_book(writer_store)
        )


def test_an_interrupted_command_goes_on_from_its_last_snapshot(
    store_url: str,
    items: list[InboxItem],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LedgerStore.open(store_url) as store:
        older = _older_writer(store)
        for batch in _batches(items):
            _decide(older, batch)
        last = store.last_seq()
    monkeypatch.setattr(snapshots, "journal_read_batch_events_max", page_events)
    monkeypatch.setenv("LEDGER_SNAPSHOT_EVENTS", str(2 * page_events))
    pages = 0
    apply_until = snapshots.apply_until

    def interrupted_at_the_fifth_page(store: LedgerStore, book: Book, until_seq: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 5:  # after two snapshots, at pages 2 and 4
            raise KeyboardInterrupt
        apply_until(store, book, until_seq)

    monkeypatch.setattr(snapshots, "apply_until", interrupted_at_the_fifth_page)
    capsys.readouterr()
    assert main(["--store", store_url, "store", "snapshot"]) == 130
    kept = 4 * page_events
    assert capsys.readouterr().err == (
        f"ledger: interrupted; this version's latest book snapshot is at seq {kept}: "
        "run the command again to go on from there\n"
    )
    monkeypatch.setattr(snapshots, "apply_until", apply_until)
    assert main(["--store", store_url, "store", "snapshot"]) == 0
    assert capsys.readouterr().out == (
        f"book snapshot of this version at seq {last} "
        f"(from seq {kept}, {last - kept} journal events applied)\n"
    )
    assert main(["--store", store_url, "store", "snapshot"]) == 0  # at rest: nothing to do
    assert capsys.readouterr().out == (
        f"book snapshot of this version at seq {last} (from seq {last}, 0 journal events applied)\n"
    )
    with LedgerStore.open(store_url) as store:
        seqs = [seq for seq, _ in store.read_snapshots(snapshots.CODE_DIGEST, 0, 10_000)]
        assert seqs == [*range(2 * page_events, last, 2 * page_events), last]
        check = snapshots.check_all(store)
        assert {snapshot.verdict for snapshot in check.snapshots} == {"equal"}
