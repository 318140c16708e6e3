"""Book snapshots: a restart from a snapshot and the journal's tail decides exactly as a
restart that replays the whole journal, and a snapshot that does not fit is never used."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from app.cli import main
from app.simulation import simulate
from ledger import journal_events as je
from ledger import reporting, snapshots
from ledger.application import InboxItem, LedgerApplication
from ledger.book import Book
from ledger.policy import load_policy
from ledger.store import DEPOSITS_TABLE, TRADES_TABLE, JournalConflict, LedgerStore
from tests.ledger_scenario import Scenario, store_of_older_code

POLICY = load_policy(None)
GOLDEN = Path(__file__).parent.parent / "golden"
never_events = 10**12  # an interval no test journal reaches: no snapshot is taken
simulated_batch_records = 100
simulated_records = 2_000  # a few hundred journal events per snapshot interval below


def _items(lines: list[bytes]) -> list[InboxItem]:
    return [
        InboxItem(value=line, key=None, topic="test", partition=0, offset=offset)
        for offset, line in enumerate(lines)
    ]


def _restarting_run(items: list[InboxItem], batch: int, snapshot_events: int) -> LedgerStore:
    """Decide `items` in batches, a new LedgerApplication (a restart) before each batch."""
    store = LedgerStore.open("sqlite:///:memory:")
    for start in range(0, len(items), batch):
        app = LedgerApplication(store, POLICY, snapshot_events=snapshot_events)
        app.process(items[start : start + batch])
    return store


def _journal_and_rejects(store: LedgerStore) -> list[bytes]:
    return [e.record for e in store.iter_journal()] + list(store.read_rejects())


def _same_originals(store: LedgerStore, replayed: Book) -> None:
    """The store's trades and deposits tables hold every trade and deposit a plain replay
    keeps, as it keeps it."""
    last = store.last_seq()
    assert store.trades_booked(replayed.trades, last) == replayed.trades
    assert snapshots.deposits_booked(store, replayed.deposits, last) == replayed.deposits
    assert replayed.trades  # not trivially equal: the simulation books trades and deposits
    assert replayed.deposits


def _replayed(store: LedgerStore, until_seq: int | None = None) -> Book:
    """The book of a plain replay from seq 1, as before snapshots."""
    book = Book()
    for entry in store.iter_journal():
        if until_seq is not None and entry.seq > until_seq:
            break
        book.apply(je.decode_journal_record(entry.record))
    return book


def _with_reference(line: bytes) -> bytes:
    """A client deposit of the simulation given a bank reference, so that the book keeps it
    (for a return) as it keeps the trades (for a bust)."""
    record = json.loads(line)
    if record["type"] == "deposit" and not record["account_id"].startswith("platform:"):
        record["reference"] = f"bank-{record['event_id']}"
    return json.dumps(record).encode()


@pytest.fixture(scope="module")
def simulated() -> list[InboxItem]:
    return _items([_with_reference(line) for line in list(simulate(5, 8, 1))[:simulated_records]])


def test_the_golden_scenario_restarted_from_snapshots_is_byte_identical() -> None:
    items = _items((GOLDEN / "crash_scenario.inbox.jsonl").read_bytes().splitlines())
    from_snapshots = _restarting_run(items, 1, snapshot_events=2)
    from_seq_1 = _restarting_run(items, 1, snapshot_events=never_events)
    assert from_snapshots.snapshot_at_or_before(snapshots.CODE_DIGEST) is not None
    assert _journal_and_rejects(from_snapshots) == _journal_and_rejects(from_seq_1)


def test_a_simulated_day_restarted_from_snapshots_is_byte_identical(
    simulated: list[InboxItem],
) -> None:
    from_snapshots = _restarting_run(simulated, simulated_batch_records, snapshot_events=97)
    from_seq_1 = _restarting_run(simulated, simulated_batch_records, snapshot_events=never_events)
    assert _journal_and_rejects(from_snapshots) == _journal_and_rejects(from_seq_1)
    restored = LedgerApplication(from_snapshots, POLICY).book
    replayed = _replayed(from_snapshots)
    assert snapshots.encode_book(restored) == snapshots.encode_book(replayed)
    _same_originals(from_snapshots, replayed)


def test_a_snapshot_every_few_events_leaves_one_per_interval(simulated: list[InboxItem]) -> None:
    store = _restarting_run(simulated, simulated_batch_records, snapshot_events=500)
    seqs: list[int] = []
    while found := store.read_snapshots(snapshots.CODE_DIGEST, seqs[-1] if seqs else 0):
        seqs.append(found[0][0])
    assert len(seqs) >= 2
    assert all(later - earlier >= 500 for earlier, later in itertools.pairwise([0, *seqs]))


@pytest.fixture
def snapshotted(simulated: list[InboxItem]) -> Iterator[LedgerStore]:
    store = _restarting_run(simulated, simulated_batch_records, snapshot_events=300)
    yield store
    store.close()


def test_the_book_as_of_any_seq_equals_a_replay_to_it(snapshotted: LedgerStore) -> None:
    last = snapshotted.last_seq()
    for seq in (1, 299, 300, 301, last // 2, last - 1, last):
        from_snapshot = reporting.book_as_of(snapshotted, str(seq))
        assert from_snapshot.last_seq == seq
        assert snapshots.encode_book(from_snapshot) == snapshots.encode_book(
            _replayed(snapshotted, seq)
        )


def test_as_of_a_time_is_the_last_seq_recorded_at_or_before_it(snapshotted: LedgerStore) -> None:
    times = [
        (e.seq, datetime.fromisoformat(je.decode_journal_record(e.record).recorded_at))
        for e in snapshotted.iter_journal()
    ]
    for _, moment in times[:: len(times) // 7]:
        expected = max(seq for seq, at in times if at <= moment)
        assert reporting.as_of_seq(snapshotted, moment.isoformat()) == expected
    assert reporting.as_of_seq(snapshotted, "2000-01-01T00:00:00Z") == 0


def _latest_snapshot(store: LedgerStore) -> snapshots.BookSnapshot:
    found = store.snapshot_at_or_before(snapshots.CODE_DIGEST)
    assert found is not None
    return msgspec.msgpack.decode(found[1], type=snapshots.BookSnapshot)


def _write_over(store: LedgerStore, snapshot: snapshots.BookSnapshot) -> None:
    """Record `snapshot` one seq later than the real latest one, as a forger would."""
    seq = snapshot.seq + 1
    forged = msgspec.structs.replace(snapshot, seq=seq)
    store.append_snapshot(seq, snapshots.CODE_DIGEST, msgspec.msgpack.encode(forged))


def test_a_snapshot_that_does_not_match_the_journal_hash_is_not_used(
    snapshotted: LedgerStore,
) -> None:
    latest = _latest_snapshot(snapshotted)
    wrong = dataclasses.replace(latest.book, total_loans=latest.book.total_loans + 1)
    _write_over(snapshotted, msgspec.structs.replace(latest, book=wrong))
    # The forged snapshot claims seq latest+1 with the hash of seq latest: refused.
    restored = snapshots.book_at(snapshotted, latest.seq + 1)
    expected = _replayed(snapshotted, latest.seq + 1)
    assert snapshots.encode_book(restored) == snapshots.encode_book(expected)


def test_a_snapshot_written_by_other_code_is_not_used(snapshotted: LedgerStore) -> None:
    latest = _latest_snapshot(snapshotted)
    (entry,) = snapshotted.read_journal(latest.seq, 1)
    forged = msgspec.structs.replace(
        latest,
        code_digest="0" * 64,
        hash=je.decode_journal_record(entry.record).hash,
        book=dataclasses.replace(latest.book, total_loans=latest.book.total_loans + 1),
    )
    _write_over(snapshotted, forged)
    restored = LedgerApplication(snapshotted, POLICY).book
    expected = _replayed(snapshotted)
    assert snapshots.encode_book(restored) == snapshots.encode_book(expected)
    _same_originals(snapshotted, expected)


def test_a_second_snapshot_at_the_same_seq_is_refused(snapshotted: LedgerStore) -> None:
    found = snapshotted.snapshot_at_or_before(snapshots.CODE_DIGEST)
    assert found is not None
    with pytest.raises(JournalConflict):
        snapshotted.append_snapshot(found[0], snapshots.CODE_DIGEST, found[1])


def test_audit_replay_compares_every_snapshot_with_the_book_from_seq_1(
    tmp_path: Path, simulated: list[InboxItem], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with LedgerStore.open(url) as store:
        app = LedgerApplication(store, POLICY, snapshot_events=300)
        for start in range(0, len(simulated), simulated_batch_records):
            app.process(simulated[start : start + simulated_batch_records])
        check = snapshots.check_all(store)
        replayed = _replayed(store)
        originals = len(replayed.trades) + len(replayed.deposits)
    checks = check.snapshots
    assert len(checks) >= 2
    assert {check.verdict for check in checks} == {"equal"}
    assert (check.originals, check.originals_differing) == (originals, [])
    assert main(["--store", url, "report", "balances", "--format", "csv"]) == 0  # the views
    assert main(["--store", url, "audit", "replay"]) == 0
    out = capsys.readouterr().out
    assert f"book snapshots: {len(checks)} of {len(checks)} equal" in out
    assert (
        f"trades and deposits tables: {originals} of {originals} client trades and deposits "
        "as the journal booked them"
    ) in out
    with LedgerStore.open(url) as store:
        latest = _latest_snapshot(store)
        (entry,) = store.read_journal(latest.seq, 1)
        wrong = dataclasses.replace(latest.book, total_loans=latest.book.total_loans + 1)
        hash_ = je.decode_journal_record(entry.record).hash
        _write_over(store, msgspec.structs.replace(latest, hash=hash_, book=wrong))
    assert main(["--store", url, "audit", "replay"]) == 1
    out = capsys.readouterr().out
    assert f"book snapshot at seq {latest.seq + 1}: differs" in out


def test_a_start_that_replays_a_whole_interval_records_a_snapshot_at_once(
    snapshotted: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = snapshotted.last_seq()
    latest = _latest_snapshot(snapshotted)
    assert 0 < last - latest.seq < 300  # not due by the interval alone
    monkeypatch.setattr(snapshots, "CODE_DIGEST", "f" * 64)  # an upgrade: no usable snapshot
    app = LedgerApplication(snapshotted, POLICY, snapshot_events=300)
    assert app.snapshot_seq == last
    assert _latest_snapshot(snapshotted).code_digest == "f" * 64
    restarted = LedgerApplication(snapshotted, POLICY, snapshot_events=300)
    assert restarted.replayed_events == 0  # from the new snapshot, nothing left to replay


def test_only_the_first_start_after_an_upgrade_of_a_store_at_rest_replays(
    snapshotted: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = snapshotted.last_seq()
    LedgerApplication(snapshotted, POLICY, snapshot_events=1)  # a snapshot at the journal's end
    assert _latest_snapshot(snapshotted).seq == last
    # An upgrade: code that applies events otherwise; the store at rest, its end held by the
    # older code's snapshot.
    monkeypatch.setattr(snapshots, "CODE_DIGEST", "f" * 64)
    first = LedgerApplication(snapshotted, POLICY, snapshot_events=300)
    assert (first.snapshot_seq, first.replayed_events) == (last, last)  # from seq 1
    recorded = _latest_snapshot(snapshotted)
    assert (recorded.seq, recorded.code_digest) == (last, "f" * 64)
    second = LedgerApplication(snapshotted, POLICY, snapshot_events=300)
    assert (second.snapshot_seq, second.replayed_events) == (last, 0)  # the snapshot loaded
    expected = _replayed(snapshotted)
    assert snapshots.encode_book(second.book) == snapshots.encode_book(expected)
    _same_originals(snapshotted, expected)


def test_a_readers_book_keeps_only_the_reversed_originals_read_from_the_journal() -> None:
    s = Scenario()
    s.perp_long()  # C1 buys 0.1 BTC-PERP as p1
    s.perp_buy("C1", "p2", "0.2", "61000", fee="1")  # the position grows: entry averaged
    s.send("trade_busted", trade_id="p2", reason="off-market price")
    s.mark("BTC", "60000")
    s.send("deposit", account_id="C1", asset="BTC", amount="1", reference="bank-1")
    s.send(
        "spot_trade", account_id="C1", trade_id="t1", symbol="BTC/USD", side="sell",
        quantity="0.5", price="60000", fee="2",
    )  # fmt: skip
    s.send("trade_busted", trade_id="t1", reason="venue error")
    s.send("deposit_returned", reference="bank-1", reason="returned by the bank")
    assert len(s.events("trade_reversed")) == 2
    assert len(s.events("deposit_reversed")) == 1
    writer = s.app.book
    reader = Book(keeps_originals=False)
    snapshots.apply_until(s.store, reader, s.store.last_seq())
    assert snapshots.encode_book(reader) == snapshots.encode_book(writer)
    # Only what was reversed, exactly as the writer kept it when it was booked.
    assert set(reader.trades) == reader.busted == {"p2", "t1"}
    assert s.store.trades_booked(reader.trades, s.store.last_seq()) == reader.trades
    assert reader.deposits == snapshots.deposits_booked(s.store, {"bank-1"}, s.store.last_seq())
    assert reader.deposits["bank-1"].amount == Decimal(1)
    assert set(s.store.trades_booked({"p1", "p2", "p3", "t1"}, s.store.last_seq())) == {
        "p1",
        "p2",
        "t1",
    }
    assert writer.new_trades == {}  # the store has them
    assert writer.new_deposits == {}


def test_a_read_from_a_snapshot_reverses_a_trade_booked_before_it() -> None:
    s = Scenario()
    s.app = LedgerApplication(s.store, POLICY, snapshot_events=1)  # a snapshot per batch
    s.perp_long()
    s.app.snapshot_events = never_events  # none after the bust: it is in the tail
    s.send("trade_busted", trade_id="p1", reason="off-market price")
    snapshot = s.store.snapshot_at_or_before(snapshots.CODE_DIGEST)
    assert snapshot is not None
    assert snapshot[0] < s.store.last_seq()
    read = reporting.book_as_of(s.store, None)  # the snapshot without registers, then the tail
    assert not read.keeps_originals
    assert snapshots.encode_book(read) == snapshots.encode_book(s.app.book)
    assert read.accounts["C1"].positions == {}


def test_a_store_written_before_the_trades_and_deposits_tables_is_filled_by_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    s = store_of_older_code(path)
    s.store = LedgerStore.open(f"sqlite:///{path}")  # a writer's open makes them, empty
    last = s.store.last_seq()
    assert s.store.trades_booked({"p1", "p2"}, last) == {}
    assert s.store.deposits_booked({"bank-1"}, last) == {}
    s.app = LedgerApplication(s.store, POLICY)  # no snapshot of this code: from seq 1
    assert s.app.replayed_events == last
    replayed = _replayed(s.store)
    assert set(replayed.trades) == {"p1", "p2"}
    assert set(replayed.deposits) == {"bank-1"}
    _same_originals(s.store, replayed)
    s.send("trade_busted", trade_id="p2", reason="off-market price")  # found in the table
    (reversal,) = s.events("trade_reversed")
    assert reversal["original_seq"] == msgspec.msgpack.decode(replayed.trades["p2"])[0]
    assert s.app.book.accounts["C1"].positions["BTC-PERP"].size == Decimal("0.1")
    s.send("deposit_returned", reference="bank-1", reason="returned by the bank")
    (returned,) = s.events("deposit_reversed")
    assert (returned["original_seq"], returned["amount"]) == (last, "500.00")


@pytest.mark.parametrize("page_events", [None, 1], ids=["one-page", "a-page-an-event"])
def test_the_audit_finds_a_row_of_the_originals_tables_other_than_booked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_events: int | None
) -> None:
    path = tmp_path / "ledger.db"
    s = Scenario(f"sqlite:///{path}")
    s.perp_long()  # C1 buys 0.1 BTC-PERP as p1
    s.perp_buy("C1", "p2", "0.2", "61000", fee="1")
    s.perp_buy("C1", "p1", "0.1", "62000")  # a trade id booked again: its first row stays
    s.send("deposit", account_id="C1", asset="USD", amount="5", reference="bank-1")
    s.send("deposit", account_id="C1", asset="USD", amount="6", reference="bank-1")  # again
    if page_events is not None:  # each rebooking compared on a page of its own
        monkeypatch.setattr(snapshots, "journal_read_batch_events_max", page_events)
    compared = 3 if page_events is None else 5  # a page compares a trade id or reference once
    check = snapshots.check_all(s.store)
    assert (check.originals, check.originals_differing) == (compared, [])
    with sqlite3.connect(path) as connection:  # rows changed behind the ledger's back
        connection.execute(f"UPDATE {TRADES_TABLE} SET trade = x'00' WHERE trade_id = 'p2'")  # noqa: S608
        connection.execute(f"DELETE FROM {TRADES_TABLE} WHERE trade_id = 'p1'")  # noqa: S608
        connection.execute(f"UPDATE {DEPOSITS_TABLE} SET seq = 1")  # noqa: S608
    check = snapshots.check_all(s.store)
    differing = ["trade p1", "trade p2", "deposit bank-1"]
    if page_events is not None:
        differing = ["trade p1", "trade p2", "trade p1", "deposit bank-1", "deposit bank-1"]
    assert (check.originals, check.originals_differing) == (compared, differing)
