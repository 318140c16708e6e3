"""Each client account's history, kept next to the views, so that an account read at a past
journal position is a few indexed queries instead of a replay.

While the views are projected, every event's changes are appended (`HistoryRecorder`): the
new balance of each (client, asset) and the new position of each (client, market) a posting
or a trade touched, noted by `RecordingBook` as `Book.apply` makes them; the loan and the
open margin call of the account the event names, when they changed; and every mark. A value
is written as `str(Decimal)`, which reads back as the very same `Decimal` (exponent and sign
included), so a book rebuilt from the history (`book_at`) values an account exactly as the
replayed book does, and `reporting.margin_view` / `balances_view` answer byte for byte the
same.

The history is complete from `history_start` (0 for views built from seq 1; for views that
were built before the history was kept, the position at which it began, with every
account's state there written first). Of the platform accounts the stored history keeps
the house's alone (`STORED_PLATFORM`: the counterparty of every spot trade, about 0.4 rows
an event), from its own start (`house_start`: views whose history older code began keep
it from where this code first caught them up, the house's state there written first).
The others move with most events, so their history would be most of the rows. An `as_of`
reader's history of the journal's latest events, in memory and bounded
(projections/tail.py), keeps them all (`RecordingBook.records_platform`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger import journal_events as je
from ledger.book import (
    HOUSE,
    RESERVED_PREFIXES,
    Account,
    Book,
    OpenMarginCall,
    Position,
    is_reserved,
)
from projections.database import DEFAULT_PROJECTION, TableWrite, ViewDatabase
from projections.tables import (
    HISTORY_ACCOUNTS,
    HISTORY_KEYS,
    HISTORY_START,
    HISTORY_VALUES,
    Row,
)

BALANCE = "balance"
POSITION = "position"
MARK = "mark"
_MARKS_OWNER = ""  # the history_keys/history_values account of the marks
Key = tuple[str, str, str]  # (account_id, kind, item)
# The platform account the stored history keeps (the module's docstring says why).
STORED_PLATFORM = HOUSE


def house_start(projection: str) -> str:
    """The `history_start` key of the house's history in `projection`'s views."""
    return f"{projection} {STORED_PLATFORM}"


class RecordingBook(Book):
    """The ledger's `Book`, noting which (account, kind, item) each event changed: every
    balance moves through `post`, every position through `set_position`. The platform
    accounts' changes only when `records_platform` (the module's docstring says why)."""

    changed: set[Key]
    records_platform: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        self.changed = set()
        self.records_platform = False

    @classmethod
    def adopting(cls, book: Book, *, records_platform: bool = False) -> RecordingBook:
        """`book` itself (its state shared, not copied), noting changes from now on."""
        recording = cls.__new__(cls)
        recording.__dict__.update(vars(book))
        recording.changed = set()
        recording.records_platform = records_platform
        return recording

    def post(self, asset: str, amount: Decimal, debit: str, credit: str) -> None:
        super().post(asset, amount, debit, credit)
        every = self.records_platform  # tested inline: a posting is the hot path
        if every or not debit.startswith(RESERVED_PREFIXES) or debit == STORED_PLATFORM:
            self.changed.add((debit, BALANCE, asset))
        if every or not credit.startswith(RESERVED_PREFIXES) or credit == STORED_PLATFORM:
            self.changed.add((credit, BALANCE, asset))

    def set_position(  # type: ignore[override]  # the same call, through the instance
        self, account: Account, market: str, size: Decimal, entry_price: Decimal
    ) -> None:
        Book.set_position(account, market, size, entry_price)
        if self.records_platform or _stored(account.account_id):
            self.changed.add((account.account_id, POSITION, market))


def _stored(account_id: str) -> bool:
    """Whether the stored history keeps `account_id` (a client's, or the house's)."""
    return not account_id.startswith(RESERVED_PREFIXES) or account_id == STORED_PLATFORM


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class HistoryRecorder:
    """The history rows of the events applied since the last batch was written."""

    def __init__(self, book: RecordingBook) -> None:
        self.book = book  # the projection's book, noting what each event changes
        self.keys: list[Row] = []
        self.values: list[Row] = []
        self.accounts: list[Row] = []
        self._known: set[Key] = set()  # keys written (or possibly written, after a restart)
        # The loan and call objects each account's last history_accounts row was made of:
        # the book replaces them on every change, so identity says whether they moved.
        self._written: dict[str, tuple[object, object, object]] = {}

    def record(self, event: je.JournalEventType) -> None:
        """Note what `event` (just applied to the book) changed."""
        book, seq = self.book, event.seq
        if isinstance(event, je.MarkPriceApplied):
            self._value((_MARKS_OWNER, MARK, event.instrument), seq, 0, event.price, None)
        for key in book.changed:
            owner, kind, item = key
            account = book.accounts[owner]
            if kind == BALANCE:
                balances = account.balances
                # Keys are never removed from a balance dict: the index is for good.
                ordinal = 0 if key in self._known else list(balances).index(item)
                self._value(key, seq, ordinal, balances[item], None)
            else:
                held = account.positions.get(item)
                size, entry = (None, None) if held is None else (held.size, held.entry_price)
                self._value(key, seq, 0, size, entry)
        book.changed.clear()
        named = event.account_id
        if named is not None and (
            not named.startswith(RESERVED_PREFIXES) or named == STORED_PLATFORM
        ):
            self._account(book.accounts[named], seq)

    def record_whole(self) -> None:
        """Every client account's state (and the platform's, when the book records them)
        and every mark at the book's seq: the start of a history begun on views built
        before it was kept, or of a reader's tail."""
        book = self.book
        seq = book.last_seq
        for instrument, price in sorted(book.marks.items()):
            self._value((_MARKS_OWNER, MARK, instrument), seq, 0, price, None)
        for account_id in sorted(book.accounts):
            if book.records_platform or _stored(account_id):
                self._whole_account(book.accounts[account_id], seq)

    def record_house(self) -> None:
        """The house's state at the book's seq: the start of its stored history."""
        self._whole_account(self.book.accounts[STORED_PLATFORM], self.book.last_seq)

    def _whole_account(self, account: Account, seq: int) -> None:
        account_id = account.account_id
        for ordinal, (asset, balance) in enumerate(account.balances.items()):
            self._value((account_id, BALANCE, asset), seq, ordinal, balance, None)
        for market, held in sorted(account.positions.items()):
            self._value((account_id, POSITION, market), seq, 0, held.size, held.entry_price)
        self._account(account, seq)

    def _value(
        self, key: Key, seq: int, ordinal: int, value: Decimal | None, extra: Decimal | None
    ) -> None:
        if key not in self._known:
            self._known.add(key)
            self.keys.append((*key, ordinal, seq))
        self.values.append((*key, seq, _text(value), _text(extra)))

    def _account(self, account: Account, seq: int) -> None:
        principal, interest, call = (
            account.loan_principal,
            account.loan_interest,
            account.margin_call,
        )
        last = self._written.get(account.account_id)
        if last is not None and last[0] is principal and last[1] is interest and last[2] is call:
            return
        self._written[account.account_id] = (principal, interest, call)
        self.accounts.append(
            (
                account.account_id,
                seq,
                str(principal),
                str(interest),
                None if call is None else call.call_id,
                None if call is None else call.issued_at,
                None if call is None else call.deadline.isoformat(),
                None if call is None else str(call.amount),
                None if call is None else call.trigger,
            )
        )

    def writes(self, *starts: tuple[str, int]) -> list[TableWrite]:
        """The batch's history rows (with the start of each history it begins: the
        clients', the house's), then none pending. Keys are kept when there: after a
        restart a key may be written again."""
        self.values.sort()  # in the table's key order: SQLite appends instead of inserting
        writes = [
            TableWrite(HISTORY_KEYS, (), self.keys, keep_existing=True),
            TableWrite(HISTORY_VALUES, (), self.values),
            TableWrite(HISTORY_ACCOUNTS, (), self.accounts),
        ]
        writes.extend(TableWrite(HISTORY_START, (start[0],), [start]) for start in starts)
        self.keys, self.values, self.accounts = [], [], []
        return writes

    def forget(self) -> None:
        """Drop what the last event changed: it is in the history already."""
        self.book.changed.clear()


_ACCOUNT_AT = (
    f"SELECT loan_principal, loan_interest, call_id, call_issued_at, call_deadline, "  # noqa: S608
    f"call_amount, call_trigger FROM {HISTORY_ACCOUNTS.sql_name} "
    "WHERE account_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1"
)
_VALUES_AT = (
    f"SELECT k.account_id, k.kind, k.item, v.value, v.extra FROM {HISTORY_KEYS.sql_name} k "  # noqa: S608
    f"JOIN {HISTORY_VALUES.sql_name} v ON v.account_id = k.account_id AND v.kind = k.kind "
    "AND v.item = k.item AND v.seq = (SELECT MAX(w.seq) "
    f"FROM {HISTORY_VALUES.sql_name} w WHERE w.account_id = k.account_id "
    "AND w.kind = k.kind AND w.item = k.item AND w.seq <= ?) "
    "WHERE k.account_id IN (?, ?) AND k.first_seq <= ? ORDER BY k.account_id, k.kind, k.ordinal"
)


def covers(database: ViewDatabase, seq: int, account_id: str | None = None) -> bool:
    """Whether the history stored in `database` answers reads right after `seq` (of the
    clients, or of `account_id`: a client's, the house's from its own start, no other
    platform account's)."""
    if account_id is None or not is_reserved(account_id):
        start = database.history_start()
    elif account_id == STORED_PLATFORM:
        start = database.history_start(house_start(DEFAULT_PROJECTION))
    else:
        return False
    return start is not None and start <= seq <= database.position().last_seq


def book_at(database: ViewDatabase, account_id: str, seq: int) -> Book:
    """A book right after journal position `seq` holding every mark and `account_id` as
    the journal left them there (without the account if it was not open yet), from the
    history; the caller checks `covers(database, seq, account_id)` first."""
    with database.transaction(write=False) as cursor:
        found = database.query(cursor, _ACCOUNT_AT, (account_id, seq))
        values = database.query(cursor, _VALUES_AT, (seq, _MARKS_OWNER, account_id, seq))
    book = Book(last_seq=seq)
    if found:
        book.accounts[account_id] = _account(account_id, found[0], values)
    book.marks = {item: Decimal(value) for owner, _, item, value, _ in values if owner == ""}
    return book


def _account(account_id: str, row: Sequence[Any], values: list[Any]) -> Account:
    principal, interest, call_id, issued_at, deadline, amount, trigger = row
    account = Account(account_id, "", loan_principal=Decimal(principal))
    account.loan_interest = Decimal(interest)
    if call_id is not None:
        account.margin_call = OpenMarginCall(
            call_id, issued_at, datetime.fromisoformat(deadline), Decimal(amount), trigger
        )
    for owner, kind, item, value, extra in values:  # balances in the order they were opened
        if owner != account_id:
            continue
        if kind == BALANCE:
            account.balances[item] = Decimal(value)
        elif value is not None:
            account.positions[item] = Position(Decimal(value), Decimal(extra))
    return account
