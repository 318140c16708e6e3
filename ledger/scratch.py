"""A what-if copy of the book: decisions run on it exactly as on the ledger's own book, and
nothing they do reaches the original or the store.

Pre-trade checks and stress tests (`ledger/pretrade.py`, `ledger/stress.py`) decide inputs
the ledger has not received. They call the ledger's own decision code (`decisions.decide`,
`margin.review`) on a `scratch_desk`: a desk over a copy of the book, with its own watchlist
and its own pending journal, which is thrown away afterwards.

Copying every account for each pre-trade check would cost more than the check itself, so
the scratch book copies an account the first time a decision reads it (`_CopiedOnRead`).
The inputs already seen stay with the original: a scratch desk starts with none, and the
caller checks a proposed input's event id against the original book first.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import ItemsView, ValuesView
from decimal import Decimal

from ledger.book import Account, Book
from ledger.desk import Desk
from ledger.margin import watch_all
from ledger.policy import Policy
from ledger.watchlist import Watchlist

_NOT_COPIED = ("accounts", "seen_inputs")
_IMMUTABLE = (Decimal, str, int, type(None))


class _CopiedOnRead(dict[str, Account]):
    """The original book's accounts, each replaced by its own deep copy when first read."""

    def __init__(self, original: dict[str, Account]) -> None:
        super().__init__(original)
        self._copied: set[str] = set()

    def _own(self, account_id: str) -> Account:
        account = super().__getitem__(account_id)
        if account_id not in self._copied:
            account = _copy_account(account)
            super().__setitem__(account_id, account)
            self._copied.add(account_id)
        return account

    def __getitem__(self, account_id: str) -> Account:
        return self._own(account_id)

    def __setitem__(self, account_id: str, account: Account) -> None:
        super().__setitem__(account_id, account)
        self._copied.add(account_id)

    def get(self, account_id: str, default: Account | None = None) -> Account | None:  # type: ignore[override]  # dict.get's overloads
        return self._own(account_id) if account_id in self else default

    def values(self) -> ValuesView[Account]:  # type: ignore[override]  # a view of the copies
        self._own_all()
        return super().values()

    def items(self) -> ItemsView[str, Account]:  # type: ignore[override]  # a view of the copies
        self._own_all()
        return super().items()

    def _own_all(self) -> None:
        for account_id in list(super().keys()):
            self._own(account_id)


def _copy_account(account: Account) -> Account:
    """A copy no decision on the scratch book can reach through: the account's dicts are
    copied, with their mutable values (positions); decimals and strings are immutable and
    shared. Faster than `copy.deepcopy`, which is most of a pre-trade check's cost."""
    copied = copy.copy(account)
    for name, value in vars(account).items():
        if isinstance(value, dict):
            setattr(copied, name, {key: _immutable_or_copy(item) for key, item in value.items()})
        elif not isinstance(value, _IMMUTABLE):
            setattr(copied, name, copy.deepcopy(value))
    return copied


def _immutable_or_copy(value: object) -> object:
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


def scratch_book(book: Book) -> Book:
    """A copy of `book` that decisions may change freely; `book` itself is never changed.

    Every field but the accounts (copied on read) and the inputs seen (left behind) is deep
    copied, so a field added to `Book` later is copied too."""
    scratch = dataclasses.replace(book, accounts=_CopiedOnRead(book.accounts), seen_inputs={})
    for item in dataclasses.fields(book):
        if item.name not in _NOT_COPIED:
            setattr(scratch, item.name, copy.deepcopy(getattr(book, item.name)))
    return scratch


def scratch_desk(book: Book, policy: Policy, *, watch_everyone: bool = False) -> Desk:
    """A desk over a scratch copy of `book`. With `watch_everyone`, every client account gets
    its price bands and every open call its deadline, as after a replay, so that marks
    decided on the desk revalue exactly the accounts the ledger would."""
    desk = Desk(book=scratch_book(book), policy=policy, watchlist=Watchlist(policy))
    if watch_everyone:
        watch_all(desk)
    return desk
