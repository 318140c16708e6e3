"""Book snapshots: a restart or a read starts from the latest snapshot, then the journal's tail.

Every `snapshot_interval_events` journal events the writer records two things at the seq it
stands at, in one store transaction:

- a `BookSnapshot`: the book as a replay up to that seq builds it (no clock: the clock is the
  deciding desk's, not the journal's), with the seq, the record hash at that seq, and the
  digest of the code that applies events to a book;
- a `SnapshotRegisters`: what the book's append-only register gained since the previous
  snapshot: the client deposits kept for returns. It grows with every deposit ever
  booked, so each snapshot carries only its own share, and a restart joins them; a read
  (`ledger query`, `as_of`) needs none of them. (The inputs seen and the client trades
  are not in a snapshot at all: the store keeps them, `LedgerStore.inputs_seen` and
  `LedgerStore.trades_booked`.)

The book snapshots are a stream per code digest and the register records a stream per
format (`LedgerStore.append_snapshot`): a code version reads only its own snapshots, so the
first start after an upgrade replays from seq 1 and records its snapshot at once, even at a
seq where the older code recorded one (a store at rest), and the next start loads it. The
register records are the same whatever code writes them (a format fixes them), so a
snapshot at a seq whose register record is there already records only the book.

A snapshot is derived data, never the truth. It is used only when its format and code
digest are this code's, its hash equals the journal's at its seq, and the register records
form an unbroken run from the first one to it; otherwise the book is rebuilt from seq 1
(logged), as `ledger audit replay` always does, comparing each snapshot with the rebuilt
book.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from ledger import book as book_module
from ledger import journal_events as je
from ledger import money, risk
from ledger.book import Book
from ledger.invariants import present, require
from ledger.limits import journal_read_batch_events_max
from ledger.store import LedgerStore

log = logging.getLogger("ledger.snapshots")

# 2: a trade register entry is an encoded `BookedTrade`, not the whole journal event.
# 3: no inputs seen (the store keeps them).
# 4: a stream per code digest and per register format; a run is its stream, from its start.
# 5: no trades (the store keeps them).
SNAPSHOT_FORMAT = 5
# What `Book.apply` depends on: a change to any of these files (an upgrade) retires every
# snapshot written before it, so a book is never restored into code that applies otherwise.
_APPLY_CODE = (book_module, risk, money)


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
    book: Book  # without clock and registers


class SnapshotRegisters(msgspec.Struct, frozen=True, kw_only=True):
    """The client deposits a book kept (in journal order) since the previous record."""

    after_seq: int  # the previous record's seq (0 for the first of its stream)
    seq: int
    count: int  # the deposits kept up to `seq`, these included
    deposits: dict[str, je.DepositCredited]


class _RegistersHead(msgspec.Struct, frozen=True):
    """A register record without its entries (msgspec skips them unread)."""

    seq: int
    count: int


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
_decode_registers = msgspec.msgpack.Decoder(SnapshotRegisters).decode
_decode_registers_head = msgspec.msgpack.Decoder(_RegistersHead).decode
_decode_hash = msgspec.json.Decoder(_HashHead).decode


@dataclass(frozen=True, slots=True)
class SnapshotMark:
    """Where the latest register record stands: its seq and the deposits kept up to it."""

    seq: int = 0  # 0: the next snapshot's registers are the first, holding everything
    count: int = 0  # the deposits kept at `seq`


def encode_book(book: Book) -> bytes:
    """The snapshot form of `book` (what a replay to its seq holds: no clock, no registers),
    encoded with keys and set members sorted, to compare books: equal books, equal bytes."""
    return _encode_comparable(snapshot_form(book))


def snapshot_form(book: Book) -> Book:
    """`book` without what a snapshot does not keep: the clock, the writer's inputs and
    trades of its current batch, the trades (the store keeps them), the deposits (kept
    apart) and the event being applied (none between events)."""
    return dataclasses.replace(
        book,
        clock=None,
        new_inputs=None,
        keeps_originals=True,
        trades={},
        new_trades=None,
        deposits={},
        _applying=None,
    )


def _gained(register: dict[str, Any], before: int) -> dict[str, Any]:
    """The entries added to `register` after its first `before` ones (insertion order)."""
    fresh = len(register) - before
    require(fresh >= 0, "an append-only register of the book lost entries")
    return dict(reversed(list(itertools.islice(reversed(register.items()), fresh))))


def take(store: LedgerStore, book: Book, previous: SnapshotMark) -> SnapshotMark:
    """Record a snapshot of `book` (at its last seq) and the deposits it kept since
    `previous` (unless `previous` is at this seq: other code recorded them)."""
    count = len(book.deposits)
    snapshot = BookSnapshot(
        format=SNAPSHOT_FORMAT,
        code_digest=CODE_DIGEST,
        seq=book.last_seq,
        hash=book.last_hash,
        book=snapshot_form(book),
    )
    registers = None
    if previous.seq != book.last_seq:
        gained = SnapshotRegisters(
            after_seq=previous.seq,
            seq=book.last_seq,
            count=count,
            deposits=_gained(book.deposits, previous.count),
        )
        registers = (SNAPSHOT_FORMAT, _encode(gained))
    store.append_snapshot(book.last_seq, (CODE_DIGEST, _encode(snapshot)), registers)
    return SnapshotMark(book.last_seq, count)


def latest_mark(store: LedgerStore) -> SnapshotMark:
    """Where the latest register record of this format stands, whatever code wrote it:
    the next one continues from it."""
    record = store.last_snapshot_registers(SNAPSHOT_FORMAT)
    if record is None:
        return SnapshotMark()
    head = _decode_registers_head(record)
    return SnapshotMark(head.seq, head.count)


def restore(store: LedgerStore, until_seq: int | None = None, *, with_registers: bool) -> Book:
    """The book at the latest usable snapshot at or before `until_seq`, else an empty book.

    With `with_registers` the book carries its deposits (a writer needs them to return
    them; its trades are in the store); without, it is a reader's book, which keeps none
    (`Book.keeps_originals`). Applied with `apply_from_store`, either reads the original of
    a reversal it does not keep from the journal."""
    found = store.snapshot_at_or_before(CODE_DIGEST, until_seq)
    if found is None:
        return Book(keeps_originals=with_registers)
    seq, record = found
    head = _decode_snapshot_head(record)
    if (head.format, head.code_digest) != (SNAPSHOT_FORMAT, CODE_DIGEST):
        log.warning("snapshot at seq %s claims other code: replaying from seq 1", seq)
        return Book(keeps_originals=with_registers)
    journal = store.read_journal(seq - 1, 1)
    if not journal or journal[0].seq != seq or _decode_hash(journal[0].record).hash != head.hash:
        log.warning("snapshot at seq %s does not match the journal: replaying from seq 1", seq)
        return Book(keeps_originals=with_registers)
    book = _decode_snapshot(record).book
    book.keeps_originals = with_registers
    if with_registers and not _join_registers(store, book, seq):
        log.warning("registers up to seq %s are incomplete: replaying from seq 1", seq)
        return Book(keeps_originals=with_registers)
    return book


def _join_registers(store: LedgerStore, book: Book, until_seq: int) -> bool:
    """Fill the book's deposits from the run of register records up to `until_seq`; False
    when that run is broken (a record missing, or a count disagrees)."""
    last = store.read_snapshot_registers(SNAPSHOT_FORMAT, until_seq - 1, 1)
    if not last or _decode_registers_head(last[0]).seq != until_seq:
        return False
    after_seq = cursor = 0
    while after_seq < until_seq and (
        records := store.read_snapshot_registers(SNAPSHOT_FORMAT, cursor)
    ):
        for record in records:
            registers = _decode_registers(record)
            if registers.after_seq != after_seq or registers.seq > until_seq:
                return False
            book.deposits.update(registers.deposits)
            if len(book.deposits) != registers.count:
                return False
            after_seq = cursor = registers.seq
            if after_seq == until_seq:
                break
    return after_seq == until_seq


@dataclass(frozen=True, slots=True)
class SnapshotCheck:
    seq: int
    verdict: Literal["equal", "differs"]


@dataclass(slots=True)
class StoreCheck:
    """What `ledger audit replay` compares of the store's derived data with the journal."""

    snapshots: list[SnapshotCheck] = field(default_factory=list)
    trades: int = 0  # client trades the journal booked, each compared with the trades table
    trades_differing: list[str] = field(default_factory=list)  # missing or other than booked


def check_all(store: LedgerStore) -> StoreCheck:
    """Every snapshot of this code, and every row of the trades table, compared with what a
    rebuild from seq 1 holds (`ledger audit replay`). Other code's snapshots are never read
    by this code."""
    book = Book(new_trades={})  # keeps what a writer keeps; a snapshot is compared without
    check = StoreCheck()
    after_seq = 0
    while found := store.read_snapshots(CODE_DIGEST, after_seq):
        seq, record = found[0]
        after_seq = seq
        _apply_checking_trades(store, book, seq, check)
        head = _decode_snapshot_head(record)
        same = (
            (head.format, head.code_digest, head.seq, head.hash)
            == (SNAPSHOT_FORMAT, CODE_DIGEST, book.last_seq, book.last_hash)
        ) and encode_book(_decode_snapshot(record).book) == encode_book(book)
        check.snapshots.append(SnapshotCheck(seq, "equal" if same else "differs"))
    _apply_checking_trades(store, book, store.last_seq(), check)
    return check


def _apply_checking_trades(
    store: LedgerStore, book: Book, until_seq: int, check: StoreCheck
) -> None:
    """`apply_until`, a journal page at a time, each page's client trades compared with the
    store's rows: a row must be the trade's first booking, byte for byte."""
    while book.last_seq < until_seq:
        apply_until(store, book, min(until_seq, book.last_seq + journal_read_batch_events_max))
        booked = present(book.new_trades, "the checking book keeps its new trades")
        stored = store.trades_booked(booked, book.last_seq)
        for trade_id, (seq, trade) in booked.items():
            row = stored.get(trade_id)
            if row != trade and not (row is not None and _booked_before(store, trade_id, row, seq)):
                check.trades_differing.append(trade_id)
        check.trades += len(booked)
        book.new_trades = {}


def _booked_before(store: LedgerStore, trade_id: str, row: bytes, seq: int) -> bool:
    """Whether the trades table's `row` is of a booking under `trade_id` before the one at
    `seq` (a trade id booked twice keeps its first row, compared on its own page)."""
    try:
        earlier = book_module.decode_trade(row).seq
    except msgspec.DecodeError:  # not a trade at all
        return False
    if not 0 < earlier < seq:
        return False
    (entry,) = store.read_journal(earlier - 1, 1)
    event = je.decode_journal_record(entry.record)
    return isinstance(event, je.SpotTradeBooked | je.PerpTradeBooked) and event.trade_id == trade_id


def apply_until(store: LedgerStore, book: Book, until_seq: int) -> None:
    """Apply the journal's events after the book's seq up to `until_seq` (or its end)."""
    while book.last_seq < until_seq:
        limit = min(journal_read_batch_events_max, until_seq - book.last_seq)
        entries = store.read_journal(book.last_seq, limit)
        if not entries:
            return
        for entry in entries:
            apply_from_store(store, book, je.decode_journal_record(entry.record))


def apply_from_store(store: LedgerStore, book: Book, event: je.JournalEventType) -> None:
    """`book.apply(event)`, a reversal's original handed first (`hand_original`)."""
    hand_original(store, book, event)
    book.apply(event)


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


def book_at(store: LedgerStore, until_seq: int | None = None, *, with_registers: bool) -> Book:
    """The book right after journal seq `until_seq` (default: the journal's end): the latest
    usable snapshot at or before it, then the journal's events after it."""
    book = restore(store, until_seq, with_registers=with_registers)
    apply_until(store, book, store.last_seq() if until_seq is None else until_seq)
    return book
