"""One test suite for every `LedgerStore` adapter, as eventsourcing does for its recorders.

A module that imports these tests provides a `store_url` fixture: an empty store's URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventsourcing.persistence import Tracking

from ledger.invariants import InvariantViolation
from ledger.journal import GENESIS_HASH, JournalEntry, canonical_json, seal, verify_journal
from ledger.store import JournalConflict, LedgerStore, TrackingConflict

INBOX = "ledger.inbox:0"


def journal_entries(first_seq: int, count: int, prev_hash: str) -> list[JournalEntry]:
    """`count` sealed records continuing a chain at `first_seq` after `prev_hash`."""
    entries = []
    for seq in range(first_seq, first_seq + count):
        body = {
            "type": "deposit_credited",
            "recorded_at": "2026-11-24T03:12:00Z",
            "causation_id": f"dep-{seq}",
            "account_id": f"ACC-{seq % 7}",
            "asset": "BTC",
            "amount": f"{seq}.00000001",
            "reference": "é \u2028 wire " + "x" * 200,
        }
        sealed = seal(body, seq, prev_hash)
        entries.append(JournalEntry(seq, "deposit_credited", sealed.record))
        prev_hash = sealed.hash
    return entries


def reject_records(first_number: int, count: int) -> list[bytes]:
    return [
        canonical_json(
            {
                "number": number,
                "reason_code": "malformed_json",
                "detail": "The record is not JSON.",
                "topic": "ledger.inbox",
                "partition": 0,
                "offset": number,
                "key": None,
                "value": "{not json",
                "recorded_at": "2026-11-24T03:12:00Z",
            }
        )
        for number in range(first_number, first_number + count)
    ]


def last_hash(entries: list[JournalEntry]) -> str:
    return verify_journal(entry.record for entry in entries).last_hash


@pytest.fixture
def store(store_url: str) -> Iterator[LedgerStore]:
    with LedgerStore.open(store_url) as opened:
        yield opened


def test_an_empty_store(store: LedgerStore) -> None:
    assert store.read_journal() == []
    assert list(store.iter_journal()) == []
    assert (store.last_seq(), store.reject_count()) == (0, 0)
    assert store.read_rejects() == []
    assert store.max_tracking_id(INBOX) is None
    store.append([], [], None)  # nothing to do
    assert store.last_seq() == 0


def test_append_and_read_round_trip(store: LedgerStore) -> None:
    entries = journal_entries(1, 3, GENESIS_HASH)
    store.append(entries, reject_records(1, 2), Tracking(INBOX, 0))
    assert store.read_journal() == entries
    assert store.read_journal(after_seq=1, limit=1) == entries[1:2]
    assert store.read_rejects() == reject_records(1, 2)
    assert store.read_rejects(after=1) == reject_records(2, 1)
    assert (store.last_seq(), store.reject_count(), store.max_tracking_id(INBOX)) == (3, 2, 0)
    assert verify_journal(entry.record for entry in store.read_journal()).ok


def test_batches_continue_the_journal_without_gaps(store: LedgerStore) -> None:
    first = journal_entries(1, 2, GENESIS_HASH)
    store.append(first, [], Tracking(INBOX, 10))
    second = journal_entries(3, 2, last_hash(first))
    store.append(second, [], Tracking(INBOX, 11))
    assert [entry.seq for entry in store.read_journal()] == [1, 2, 3, 4]
    with pytest.raises(InvariantViolation, match="gap"):
        store.append(journal_entries(6, 1, GENESIS_HASH), [], Tracking(INBOX, 12))
    with pytest.raises(InvariantViolation, match="breaks"):
        store.append([*journal_entries(5, 1, GENESIS_HASH), second[0]], [], None)
    assert store.last_seq() == 4
    assert store.max_tracking_id(INBOX) == 11


def test_a_redelivered_position_books_nothing(store: LedgerStore) -> None:
    first = journal_entries(1, 2, GENESIS_HASH)
    store.append(first, reject_records(1, 1), Tracking(INBOX, 5))
    again = journal_entries(3, 2, last_hash(first))
    for position in (5, 4):  # the same offset, and an older one
        with pytest.raises(TrackingConflict) as conflict:
            store.append(again, reject_records(2, 3), Tracking(INBOX, position))
        assert conflict.value.recorded_id == 5
    # Events and rejects of the refused transaction were rolled back with it.
    assert store.read_journal() == first
    assert (store.last_seq(), store.reject_count(), store.max_tracking_id(INBOX)) == (2, 1, 5)
    store.append(again, reject_records(2, 3), Tracking(INBOX, 6))
    assert (store.last_seq(), store.reject_count(), store.max_tracking_id(INBOX)) == (4, 4, 6)


def test_a_repeated_seq_is_a_journal_conflict_and_books_nothing(store: LedgerStore) -> None:
    first = journal_entries(1, 3, GENESIS_HASH)
    store.append(first, reject_records(1, 1), Tracking(INBOX, 1))
    with pytest.raises(JournalConflict):
        store.append(journal_entries(3, 2, GENESIS_HASH), reject_records(2, 1), Tracking(INBOX, 2))
    with pytest.raises(JournalConflict):
        store.append([], reject_records(1, 1), Tracking("ledger.inbox:1", 0))
    assert store.read_journal() == first
    assert (store.reject_count(), store.max_tracking_id(INBOX)) == (1, 1)
    assert store.max_tracking_id("ledger.inbox:1") is None


def test_tracking_alone(store: LedgerStore) -> None:
    store.append([], [], Tracking(INBOX, 0))
    store.append([], [], Tracking("ledger.inbox:3", 42))
    assert (store.max_tracking_id(INBOX), store.max_tracking_id("ledger.inbox:3")) == (0, 42)
    with pytest.raises(TrackingConflict):
        store.append([], [], Tracking("ledger.inbox:3", 42))
    with pytest.raises(InvariantViolation):
        store.append([], [], Tracking("__migration__", 7))
    assert store.last_seq() == 0


def test_rejects_stream(store: LedgerStore) -> None:
    store.append([], reject_records(1, 3), Tracking(INBOX, 0))
    store.append([], reject_records(4, 1), None)
    assert store.read_rejects() == reject_records(1, 4)
    assert store.read_rejects(after=2, limit=1) == reject_records(3, 1)
    assert store.reject_count() == 4
    with pytest.raises(InvariantViolation, match="gap"):
        store.append([], reject_records(6, 1), None)
    with pytest.raises(InvariantViolation, match="breaks"):
        store.append([], [*reject_records(5, 1), *reject_records(7, 1)], None)
    assert store.last_seq() == 0


def test_the_entry_must_match_its_record(store: LedgerStore) -> None:
    entry = journal_entries(1, 1, GENESIS_HASH)[0]
    with pytest.raises(InvariantViolation, match="type"):
        store.append([JournalEntry(1, "withdrawal_approved", entry.record)], [], None)
    sealed_for_seq_2 = journal_entries(2, 1, GENESIS_HASH)[0].record
    with pytest.raises(InvariantViolation, match="record says 2"):
        store.append([JournalEntry(1, entry.type, sealed_for_seq_2)], [], None)
    with pytest.raises(InvariantViolation):
        store.read_journal(limit=0)
    assert store.last_seq() == 0


def test_another_instance_and_a_reopened_store_see_everything(store_url: str) -> None:
    entries = journal_entries(1, 4, GENESIS_HASH)
    with LedgerStore.open(store_url) as writer, LedgerStore.open(store_url) as reader:
        assert reader.last_seq() == 0
        writer.append(entries[:2], reject_records(1, 1), Tracking(INBOX, 1))
        assert reader.read_journal() == entries[:2]
        writer.append(entries[2:], [], Tracking(INBOX, 2))
        assert (reader.last_seq(), reader.reject_count(), reader.max_tracking_id(INBOX)) == (
            4,
            1,
            2,
        )
    with LedgerStore.open(store_url) as reopened:
        assert reopened.read_journal() == entries
        assert reopened.read_rejects() == reject_records(1, 1)
        assert reopened.max_tracking_id(INBOX) == 2
        with pytest.raises(TrackingConflict):
            reopened.append(journal_entries(5, 1, last_hash(entries)), [], Tracking(INBOX, 2))


def test_a_large_batch_in_one_append(store: LedgerStore) -> None:
    entries = journal_entries(1, 5_000, GENESIS_HASH)
    store.append(entries, reject_records(1, 500), Tracking(INBOX, 4_999))
    assert store.last_seq() == 5_000
    assert len(store.read_journal(limit=1_000)) == 1_000
    assert list(store.iter_journal()) == entries
    assert [entry.seq for entry in store.iter_journal(after_seq=4_990)] == list(range(4_991, 5_001))
    assert verify_journal(entry.record for entry in store.iter_journal()).count == 5_000
    assert store.reject_count() == 500
    # A refused redelivery of a large batch leaves no trace either.
    with pytest.raises(TrackingConflict):
        store.append(journal_entries(5_001, 5_000, last_hash(entries)), [], Tracking(INBOX, 7))
    assert store.last_seq() == 5_000


def decided_entries(first_seq: int, count: int, prev_hash: str) -> list[JournalEntry]:
    """Records of inputs decided two journal events each (input `in-N` at seqs 2N and
    2N+1): the first event of each carries the input's digest, as the desk writes them."""
    entries = []
    for seq in range(first_seq, first_seq + count):
        body: dict[str, object] = {
            "type": "deposit_credited",
            "recorded_at": "2026-11-24T03:12:00Z",
            "causation_id": f"in-{seq // 2}",
            "account_id": "ACC-1",
            "asset": "BTC",
            "amount": "1",
        }
        if seq % 2 == 0:
            body["input_digest"] = input_digest(seq // 2)
        sealed = seal(body, seq, prev_hash)
        entries.append(JournalEntry(seq, "deposit_credited", sealed.record))
        prev_hash = sealed.hash
    return entries


def input_digest(number: int) -> str:
    return f"{number:064x}"


def test_the_inputs_seen_are_written_with_the_journal_records(store: LedgerStore) -> None:
    first = decided_entries(1, 5, GENESIS_HASH)  # in-0 (no first event here), in-1, in-2
    store.append(first, [], Tracking(INBOX, 1))
    ids = ["in-0", "in-1", "in-2", "in-3"]
    assert store.inputs_seen(ids, 5) == {"in-1": input_digest(1), "in-2": input_digest(2)}
    assert store.inputs_seen(ids, 3) == {"in-1": input_digest(1)}  # as of seq 3
    again = decided_entries(6, 2, last_hash(first))  # in-3
    with pytest.raises(TrackingConflict):
        store.append(again, [], Tracking(INBOX, 1))
    assert store.inputs_seen(ids, 7) == store.inputs_seen(ids, 5)  # rolled back with it
    store.append(again, [], Tracking(INBOX, 2))
    many = [f"never-{n}" for n in range(2_500)]  # more than one statement's worth of ids
    assert store.inputs_seen([*many, "in-3"], 7) == {"in-3": input_digest(3)}
    assert store.catch_up_inputs_seen() == 1  # only the record after the last input's


def test_the_trades_booked_are_written_with_the_journal_records(store: LedgerStore) -> None:
    first = journal_entries(1, 3, GENESIS_HASH)
    store.append(first, [], Tracking(INBOX, 1), [("T1", 1, b"first"), ("T2", 3, b"second")])
    ids = ["T0", "T1", "T2"]
    assert store.trades_booked(ids, 3) == {"T1": b"first", "T2": b"second"}
    assert store.trades_booked(ids, 2) == {"T1": b"first"}  # as of seq 2
    again = journal_entries(4, 1, last_hash(first))
    with pytest.raises(TrackingConflict):
        store.append(again, [], Tracking(INBOX, 1), [("T3", 4, b"third")])
    assert store.trades_booked(["T3"], 4) == {}  # rolled back with the journal
    # The first booking under a trade id is the one kept (a bust reverses it), whether a
    # later one comes with the journal or from a start's replay.
    store.append(again, [], Tracking(INBOX, 2), [("T3", 4, b"third"), ("T1", 4, b"later")])
    store.record_originals([("T2", 3, b"replayed"), ("T4", 4, b"fourth")], [])
    many = [f"never-{n}" for n in range(2_500)]  # more than one statement's worth of ids
    assert store.trades_booked([*many, "T1", "T2", "T3", "T4"], 4) == {
        "T1": b"first",
        "T2": b"second",
        "T3": b"third",
        "T4": b"fourth",
    }


def test_the_deposits_booked_are_written_with_the_journal_records(store: LedgerStore) -> None:
    first = journal_entries(1, 3, GENESIS_HASH)
    store.append(first, [], Tracking(INBOX, 1), deposits=[("bank-1", 1), ("bank-2", 3)])
    references = ["bank-0", "bank-1", "bank-2"]
    assert store.deposits_booked(references, 3) == {"bank-1": 1, "bank-2": 3}
    assert store.deposits_booked(references, 2) == {"bank-1": 1}  # as of seq 2
    again = journal_entries(4, 1, last_hash(first))
    with pytest.raises(TrackingConflict):
        store.append(again, [], Tracking(INBOX, 1), deposits=[("bank-3", 4)])
    assert store.deposits_booked(["bank-3"], 4) == {}  # rolled back with the journal
    store.append(again, [], Tracking(INBOX, 2), deposits=[("bank-3", 4), ("bank-1", 4)])
    store.record_originals([], [("bank-2", 4), ("bank-4", 4)])  # the first booking stays
    assert store.deposits_booked([*references, "bank-3", "bank-4"], 4) == {
        "bank-1": 1,
        "bank-2": 3,
        "bank-3": 4,
        "bank-4": 4,
    }


def test_a_key_taken_in_one_table_keeps_every_other_row_of_the_append(
    store: LedgerStore,
) -> None:
    first = decided_entries(1, 3, GENESIS_HASH)  # in-1
    store.append(first, [], Tracking(INBOX, 1), [("T1", 2, b"first")], [("bank-1", 2)])
    # One append: new inputs, a trade id booked again beside a new one, a new deposit.
    later = decided_entries(4, 4, last_hash(first))  # in-2, in-3
    trades = [("T2", 4, b"second"), ("T1", 5, b"again")]
    store.append(later, reject_records(1, 2), Tracking(INBOX, 2), trades, [("bank-2", 6)])
    assert store.inputs_seen(["in-1", "in-2", "in-3"], 7) == {
        "in-1": input_digest(1),
        "in-2": input_digest(2),
        "in-3": input_digest(3),
    }
    assert store.trades_booked(["T1", "T2"], 7) == {"T1": b"first", "T2": b"second"}
    assert store.deposits_booked(["bank-1", "bank-2"], 7) == {"bank-1": 2, "bank-2": 6}
    assert list(store.iter_journal()) == first + later
    assert (store.reject_count(), store.max_tracking_id(INBOX)) == (2, 2)
