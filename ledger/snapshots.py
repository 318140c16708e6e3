"""Book snapshots: a restart or a read starts from the latest snapshot, then the journal's tail.

Every `snapshot_interval_events` journal events the writer records a `BookSnapshot` at the
seq it stands at: the book as a replay up to that seq builds it (no clock: the clock is the
deciding desk's, not the journal's), with the seq, the record hash at that seq, and the
digest of the code that applies events to a book. What grows with every input ever
decided is not in a book, so not in a snapshot: the store keeps it (the inputs seen, the
client trades and the client deposits kept for busts and returns: `LedgerStore.inputs_seen`,
`trades_booked`, `deposits_booked`).

The book snapshots are a stream per code digest (`LedgerStore.append_snapshot`): a code
version reads only its own snapshots, so the first start after an upgrade replays from seq
1 and records its snapshot at once, even at a seq where the older code recorded one (a
store at rest), and the next start loads it. To spare the upgraded writer that replay,
the new code records its snapshot beforehand (`prepare`, `ledger store snapshot`), while
the older code's writer still runs: the switch-over start is that snapshot and the tail.

A snapshot is derived data, never the truth. It is used only when its format and code
digest are this code's and its hash equals the journal's at its seq; otherwise the book is
rebuilt from seq 1 (logged), as `ledger audit replay` always does, comparing each snapshot
with the rebuilt book.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from ledger import book as book_module
from ledger import journal_events as je
from ledger import money, risk
from ledger.book import Book
from ledger.invariants import InvariantViolation, present, require
from ledger.limits import journal_read_batch_events_max
from ledger.store import JournalConflict, LedgerStore

log = logging.getLogger("ledger.snapshots")

# 2: a trade register entry is an encoded `BookedTrade`, not the whole journal event.
# 3: no inputs seen (the store keeps them).
# 4: a stream per code digest and per register format; a run is its stream, from its start.
# 5: no trades (the store keeps them).
# 6: no deposits (the store keeps them): no register records at all.
SNAPSHOT_FORMAT = 6
# What `Book.apply` depends on: a change to any of these files (an upgrade) retires every
# snapshot written before it, so a book is never restored into code that applies otherwise.
_APPLY_CODE = (book_module, risk, money)
# The events whose original `hand_original` may read, by exact type: an `isinstance` test
# costs ~150 ns for every other event (a Struct's metaclass).
_REVERSALS = frozenset({je.TradeReversed, je.DepositReversed})


def _code_digest() -> str:
    digest = hashlib.sha256(f"format {SNAPSHOT_FORMAT}\n".encode())
    for module in _APPLY_CODE:
        source = present(module.__file__, f"{module.__name__} is loaded from a file")
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


CODE_DIGEST = _code_digest()


class BookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    code_digest: str
    seq: int
    hash: str  # the journal record's hash at `seq`
    book: Book  # without clock, trades and deposits


class _SnapshotHead(msgspec.Struct, frozen=True):
    format: int
    code_digest: str
    seq: int
    hash: str


class _HashHead(msgspec.Struct, frozen=True):
    hash: str


_encode = msgspec.msgpack.Encoder().encode
# For comparing two books only: sets in sorted order (a set's order is its hash order, which a
# decoded snapshot and a rebuilt book need not share; no decision depends on it).
_encode_comparable = msgspec.msgpack.Encoder(order="deterministic").encode
_decode_snapshot = msgspec.msgpack.Decoder(BookSnapshot).decode
_decode_snapshot_head = msgspec.msgpack.Decoder(_SnapshotHead).decode
_decode_hash = msgspec.json.Decoder(_HashHead).decode


def encode_book(book: Book) -> bytes:
    """The snapshot form of `book` (what a replay to its seq holds: no clock, no originals),
    encoded with keys and set members sorted, to compare books: equal books, equal bytes."""
    return _encode_comparable(snapshot_form(book))


def snapshot_form(book: Book) -> Book:
    """`book` without what a snapshot does not keep: the clock, the writer's inputs, trades
    and deposits of its current batch, the originals kept (the store keeps them) and the
    event being applied (none between events)."""
    return dataclasses.replace(
        book,
        clock=None,
        new_inputs=None,
        keeps_originals=True,
        trades={},
        new_trades=None,
        deposits={},
        new_deposits=None,
        _applying=None,
    )


def take(store: LedgerStore, book: Book) -> None:
    """Record a snapshot of `book` at its last seq."""
    snapshot = BookSnapshot(
        format=SNAPSHOT_FORMAT,
        code_digest=CODE_DIGEST,
        seq=book.last_seq,
        hash=book.last_hash,
        book=snapshot_form(book),
    )
    store.append_snapshot(book.last_seq, CODE_DIGEST, _encode(snapshot))


@dataclass(frozen=True, slots=True)
class Prepared:
    """What `prepare` did: the seq of this code's snapshot it began from (0: seq 1), the
    journal events it applied after it, and the seq of this code's snapshot it leaves."""

    began_at: int
    applied: int
    snapshot_seq: int


def prepare(
    store: LedgerStore,
    interval_events: int,
    on_page: Callable[[int], None] | None = None,
) -> Prepared:
    """This code's book snapshot at the journal's end, recorded ahead of an upgrade
    (`ledger store snapshot`), while the older code's writer may still be appending.

    The book is built as this code's writer builds it at start (`replay_into`), from this
    code's latest usable snapshot, else seq 1, up to the journal's end as it stands after
    each page (so it catches a writer that goes on); a snapshot is recorded every
    `interval_events` on the way, so an interrupted run resumes near where it stopped, and
    one at the end. The journal, the rejects, the inputs seen and the older code's
    snapshots are only read; the trades and deposits tables get only the rows the journal
    booked that they lack (none, unless older code wrote the store before they existed).
    `on_page` is told the events applied, after each page."""
    book = restore(store, writer=True)
    began_at = recorded = book.last_seq
    while book.last_seq < (end := store.last_seq()):
        before = book.last_seq
        replay_into(store, book, min(end, before + journal_read_batch_events_max))
        if book.last_seq - recorded >= interval_events:
            recorded = _record(store, book)
        if on_page is not None:
            on_page(book.last_seq - before)
    if book.last_seq > recorded:
        recorded = _record(store, book)
    return Prepared(began_at, book.last_seq - began_at, recorded)


def replay_into(store: LedgerStore, book: Book, until_seq: int) -> None:
    """A writer's `book` brought to journal seq `until_seq`, a page at a time, recording in
    the store the client trades and deposits booked there (a trade id or reference
    recorded already keeps its row)."""
    while book.last_seq < until_seq:
        page_end = min(until_seq, book.last_seq + journal_read_batch_events_max)
        apply_until(store, book, page_end)
        require(book.last_seq == page_end, "the journal ends before its last seq")
        store.record_originals(*originals_booked(book))
        book.new_trades, book.new_deposits = {}, {}


def originals_booked(
    book: Book,
) -> tuple[list[tuple[str, int, bytes]], list[tuple[str, int]]]:
    """The client trades and deposits a writer's `book` booked since they were last taken
    from it, as the store records them."""
    trades = present(book.new_trades, "the writer's book keeps its new trades")
    deposits = present(book.new_deposits, "the writer's book keeps its new deposits")
    return (
        [(trade_id, seq, trade) for trade_id, (seq, trade) in trades.items()],
        [(reference, deposit.seq) for reference, deposit in deposits.items()],
    )


def _record(store: LedgerStore, book: Book) -> int:
    """`take`, where a snapshot of this code at the book's seq is as good as this one (this
    code's writer, or an earlier run, recorded it): derived from the same journal by the
    same code. Returns the seq."""
    try:
        take(store, book)
    except JournalConflict:
        log.info("this code's snapshot at seq %s was already recorded", book.last_seq)
    return book.last_seq


def restore(store: LedgerStore, until_seq: int | None = None, *, writer: bool) -> Book:
    """The book at the latest usable snapshot at or before `until_seq`, else an empty book.

    A `writer`'s book hands the trades and deposits it books to the store (`Book.new_trades`,
    `Book.new_deposits`); any other is a reader's book, which keeps none
    (`Book.keeps_originals`). Applied with `apply_until`, either reads the original of
    a reversal it does not keep from the journal."""
    found = store.snapshot_at_or_before(CODE_DIGEST, until_seq)
    if found is None:
        return _empty(writer=writer)
    seq, record = found
    head = _decode_snapshot_head(record)
    if (head.format, head.code_digest) != (SNAPSHOT_FORMAT, CODE_DIGEST):
        log.warning("snapshot at seq %s claims other code: replaying from seq 1", seq)
        return _empty(writer=writer)
    journal = store.read_journal(seq - 1, 1)
    if not journal or journal[0].seq != seq or _decode_hash(journal[0].record).hash != head.hash:
        log.warning("snapshot at seq %s does not match the journal: replaying from seq 1", seq)
        return _empty(writer=writer)
    book = _decode_snapshot(record).book
    book.keeps_originals = writer
    if writer:
        book.new_trades, book.new_deposits = {}, {}
    return book


def _empty(*, writer: bool) -> Book:
    if writer:
        return Book(new_trades={}, new_deposits={})
    return Book(keeps_originals=False)


@dataclass(frozen=True, slots=True)
class SnapshotCheck:
    seq: int
    verdict: Literal["equal", "differs"]


@dataclass(slots=True)
class StoreCheck:
    """What `ledger audit replay` compares of the store's derived data with the journal."""

    snapshots: list[SnapshotCheck] = field(default_factory=list)
    # Client trades and deposits the journal booked, each compared with the store's table.
    originals: int = 0
    originals_differing: list[str] = field(default_factory=list)  # "trade ID", "deposit REF"


def check_all(store: LedgerStore) -> StoreCheck:
    """Every snapshot of this code, and every row of the trades and deposits tables,
    compared with what a rebuild from seq 1 holds (`ledger audit replay`). Other code's
    snapshots are never read by this code."""
    book = _empty(writer=True)  # a writer's book: what it books is compared with the tables
    check = StoreCheck()
    after_seq = 0
    while found := store.read_snapshots(CODE_DIGEST, after_seq):
        seq, record = found[0]
        after_seq = seq
        _apply_checking_originals(store, book, seq, check)
        head = _decode_snapshot_head(record)
        same = (
            (head.format, head.code_digest, head.seq, head.hash)
            == (SNAPSHOT_FORMAT, CODE_DIGEST, book.last_seq, book.last_hash)
        ) and encode_book(_decode_snapshot(record).book) == encode_book(book)
        check.snapshots.append(SnapshotCheck(seq, "equal" if same else "differs"))
    _apply_checking_originals(store, book, store.last_seq(), check)
    return check


def _apply_checking_originals(
    store: LedgerStore, book: Book, until_seq: int, check: StoreCheck
) -> None:
    """`apply_until`, a journal page at a time, each page's client trades and deposits
    compared with the store's rows: a row must be the first booking under its key (a key
    booked again keeps its first row, compared on its own page)."""
    while book.last_seq < until_seq:
        apply_until(store, book, min(until_seq, book.last_seq + journal_read_batch_events_max))
        trades = present(book.new_trades, "the checking book keeps its new trades")
        stored = store.trades_booked(trades, book.last_seq)
        for trade_id, (seq, trade) in trades.items():
            row = stored.get(trade_id)
            if row != trade and not _booked_before(store, _seq_of(row), seq, "trade", trade_id):
                check.originals_differing.append(f"trade {trade_id}")
        deposits = present(book.new_deposits, "the checking book keeps its new deposits")
        seqs = store.deposits_booked(deposits, book.last_seq)
        for reference, deposit in deposits.items():
            stored_seq = seqs.get(reference)
            if stored_seq != deposit.seq and not _booked_before(
                store, stored_seq, deposit.seq, "deposit", reference
            ):
                check.originals_differing.append(f"deposit {reference}")
        check.originals += len(trades) + len(deposits)
        book.new_trades, book.new_deposits = {}, {}


def _seq_of(row: bytes | None) -> int | None:
    """The seq a trades-table row claims, if it is a trade at all."""
    try:
        return None if row is None else book_module.decode_trade(row).seq
    except msgspec.DecodeError:
        return None


def _booked_before(
    store: LedgerStore,
    earlier: int | None,
    seq: int,
    kind: Literal["trade", "deposit"],
    key: str,
) -> bool:
    """Whether the journal booked a client trade (or deposit) under `key` at `earlier`,
    before `seq`."""
    if earlier is None or not 0 < earlier < seq:
        return False
    (entry,) = store.read_journal(earlier - 1, 1)
    match je.decode_journal_record(entry.record):
        case je.SpotTradeBooked(trade_id=booked) | je.PerpTradeBooked(trade_id=booked):
            return kind == "trade" and booked == key
        case je.DepositCredited(reference=booked):
            return kind == "deposit" and booked == key
        case _:
            return False


def deposits_booked(
    store: LedgerStore, references: Collection[str], until_seq: int
) -> dict[str, je.DepositCredited]:
    """The client deposit booked under each of `references` up to `until_seq` (its first
    booking), read from the journal where the store's deposits table says it is."""
    found = store.deposits_booked(references, until_seq) if references else {}
    booked = {}
    for reference, seq in found.items():
        (entry,) = store.read_journal(seq - 1, 1)
        deposit = je.decode_journal_record(entry.record)
        if not (isinstance(deposit, je.DepositCredited) and deposit.reference == reference):
            raise InvariantViolation(
                f"the deposits table puts deposit {reference} at seq {seq}, which booked another"
            )
        booked[reference] = deposit
    return booked


def apply_until(store: LedgerStore, book: Book, until_seq: int) -> None:
    """Apply the journal's events after the book's seq up to `until_seq` (or its end)."""
    apply = book.apply
    for event in events_after(store, book, book.last_seq, until_seq):
        apply(event)


def events_after(
    store: LedgerStore,
    book: Book,
    after_seq: int,
    until_seq: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[je.JournalEventType]:
    """The journal's events after `after_seq` up to `until_seq`, read a page at a time; the
    original of a reversal is handed to `book` (`hand_original`) before it is applied.
    `progress` is told how many more events each page held."""
    decode = je.journal_decoder.decode  # the decoder itself: a Python call less per event
    while after_seq < until_seq:
        limit = min(journal_read_batch_events_max, until_seq - after_seq)
        records = store.read_journal_records(after_seq, limit)
        if not records:
            return
        for event in map(decode, records):
            if type(event) in _REVERSALS:
                hand_original(store, book, event)
            yield event
        if progress is not None:
            progress(len(records))
        after_seq += len(records)  # gap-free from `after_seq`


def hand_original(store: LedgerStore, book: Book, event: je.JournalEventType) -> None:
    """Before `event` is applied: a book that does not keep the original a reversal
    reverses gets it, read from the journal at the reversal's `original_seq` (a reader's
    book, `Book.keeps_originals` False, keeps none; the writer's keeps no trade)."""
    if isinstance(event, je.TradeReversed):
        kept = event.trade_id in book.trades
    elif isinstance(event, je.DepositReversed):
        kept = event.reference in book.deposits
    else:
        return
    if not kept:
        (original,) = store.read_journal(event.original_seq - 1, 1)
        book.remember_original(je.decode_journal_record(original.record), event)


def book_at(store: LedgerStore, until_seq: int | None = None) -> Book:
    """A reader's book right after journal seq `until_seq` (default: the journal's end): the
    latest usable snapshot at or before it, then the journal's events after it."""
    book = restore(store, until_seq, writer=False)
    apply_until(store, book, store.last_seq() if until_seq is None else until_seq)
    return book
