"""A what-if copy of the book: decisions run on it exactly as on the ledger's own book, and
nothing they do reaches the original or the store.

Pre-trade checks and stress tests (`ledger/pretrade.py`, `ledger/stress.py`) decide inputs
the ledger has not received. They call the ledger's own decision code (`decisions.decide`,
`margin.review`) on a `scratch_desk`: a desk over a copy of the book, with its own watchlist
and its own pending journal, which is thrown away afterwards.

Copying every account for each pre-trade check would cost more than the check itself, so
the scratch book copies an account (or any value of the book's dicts) the first time a
decision reads it (`_CopiedOnRead`), and then only structurally (`_structural_copy`). The
registers that only grow, with values never changed (`APPEND_ONLY_REGISTERS`: a trade or a
deposit kept for its reversal), are not copied at all: what a decision adds to them goes
into a layer over the original (a `ChainMap`), so a check costs the same on a store of a
million trades as on a new one.
No book keeps the inputs already seen (the store does): the caller checks a proposed
input's event id against the store first.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import ItemsView, ValuesView
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from ledger import risk
from ledger.book import Account, Book
from ledger.desk import Desk
from ledger.margin import watch_all
from ledger.policy import Policy
from ledger.watchlist import Watchlist

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")
_SHARED_TYPES = frozenset({Decimal, str, int, bool, type(None), datetime, tuple})
# Book fields only ever added to, under new keys, with immutable values (`Book.trades`,
# `Book.deposits`): a scratch book reads through to them and writes to its own layer.
APPEND_ONLY_REGISTERS = frozenset({"trades", "deposits"})


class _CopiedOnRead(dict[_K, _V]):
    """The original book's dict (its accounts, its liquidation lots, ...), each value
    replaced by its own copy the first time it is read, so unread values cost nothing."""

    def __init__(self, original: dict[_K, _V]) -> None:
        super().__init__(original)
        self._copied: set[_K] = set()

    def _own(self, key: _K) -> _V:
        value = super().__getitem__(key)
        if key not in self._copied:
            value = _structural_copy(value)
            super().__setitem__(key, value)
            self._copied.add(key)
        return value

    def __getitem__(self, key: _K) -> _V:
        return self._own(key)

    def __setitem__(self, key: _K, value: _V) -> None:
        super().__setitem__(key, value)
        self._copied.add(key)

    def get(self, key: _K, default: _V | None = None) -> _V | None:  # type: ignore[override]  # dict.get's overloads
        return self._own(key) if key in self else default

    def setdefault(self, key: _K, default: _V) -> _V:
        if key not in self:
            self[key] = default
        return self._own(key)

    def pop(self, key: _K, default: _V | None = None) -> _V | None:  # type: ignore[override]  # one signature
        value = self._own(key) if key in self else default
        super().pop(key, None)
        return value

    def values(self) -> ValuesView[_V]:  # type: ignore[override]  # a view of the copies
        self._own_all()
        return super().values()

    def items(self) -> ItemsView[_K, _V]:  # type: ignore[override]  # a view of the copies
        self._own_all()
        return super().items()

    def _own_all(self) -> None:
        for key in list(super().keys()):
            self._own(key)


def _structural_copy(value: _T) -> _T:
    """A copy that no change to the copy can reach the original through: dicts, lists and
    mutable dataclasses are copied level by level; everything else (decimals, strings,
    numbers, times, tuples, frozen records, set members) is immutable and shared. Much
    faster than `copy.deepcopy`, which was most of a pre-trade check's cost; a dataclass is
    copied through its instance dict, not `copy.copy` and `dataclasses.fields` (a third of
    a check's copying)."""
    copied: object
    kind: type = type(value)
    if kind in _SHARED_TYPES:  # the common case first: most fields are figures
        return value
    if isinstance(value, dict):
        copied = {key: _structural_copy(item) for key, item in value.items()}
    elif isinstance(value, list):
        copied = [_structural_copy(item) for item in value]
    elif isinstance(value, set):
        copied = set(value)
    elif _is_mutable_dataclass(kind):
        copied = object.__new__(kind)
        fields = value.__dict__
        copied.__dict__.update({name: _structural_copy(item) for name, item in fields.items()})
    else:
        return value
    return copied  # type: ignore[return-value]  # the same type as `value`, copied


@functools.cache
def _is_mutable_dataclass(kind: type) -> bool:
    """A dataclass whose instances may change, with an instance dict (no `__slots__`)."""
    params = getattr(kind, "__dataclass_params__", None)
    return params is not None and not params.frozen and "__slots__" not in vars(kind)


def scratch_book(book: Book) -> Book:
    """A copy of `book` that decisions may change freely; `book` itself is never changed.

    Every dict of the book (the accounts, the liquidation lots, ...) is copied value by value
    when read, the append-only registers are layered over; every other field but the
    writer's new inputs (a scratch book records none) is copied at once; so a field added
    to `Book` later is copied too."""
    scratch = object.__new__(Book)  # every field set below: no __init__ to run again
    fields = vars(scratch)
    for name, value in vars(book).items():
        fields[name] = None if name == "new_inputs" else _scratch_field(name, value)
    return scratch


def _scratch_field(name: str, value: object) -> object:
    if isinstance(value, dict):
        return ChainMap({}, value) if name in APPEND_ONLY_REGISTERS else _CopiedOnRead(value)
    return _structural_copy(value)


class _Unbanded(Watchlist):
    """The watchlist of a desk that decides no mark: a review sets no price bands.

    Bands only tell which accounts a later mark revalues; a pre-trade check decides one
    order, withdrawal or loan draw and throws the desk away, and computing the bands was a
    tenth of its CPU. Forgetting the account instead leaves `still_healthy` false for it, so
    a later review in the same input revalues it rather than trusting bands set before: the
    same decisions, as the watchlist's own contract says."""

    def watch(
        self, account: Account, figures: risk.MarginFigures, marks: dict[str, Decimal]
    ) -> None:
        del figures, marks
        self.forget(account.account_id)


def scratch_desk(book: Book, policy: Policy, *, watch_everyone: bool = False) -> Desk:
    """A desk over a scratch copy of `book`. With `watch_everyone`, every client account gets
    its price bands and every open call its deadline, as after a replay, so that marks
    decided on the desk revalue exactly the accounts the ledger would; without it, the desk
    is for inputs that are not marks, and sets no bands (`_Unbanded`)."""
    watchlist = Watchlist(policy) if watch_everyone else _Unbanded(policy)
    desk = Desk(book=scratch_book(book), policy=policy, watchlist=watchlist)
    if watch_everyone:
        watch_all(desk)
    return desk
