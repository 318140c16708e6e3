"""A what-if copy of the book: decisions run on it exactly as on the ledger's own book, and
nothing they do reaches the original or the store.

Pre-trade checks and stress tests (`ledger/pretrade.py`, `ledger/stress.py`) decide inputs
the ledger has not received. They call the ledger's own decision code (`decisions.decide`,
`margin.review`) on a `scratch_desk`: a desk over a copy of the book, with its own watchlist
and its own pending journal, which is thrown away afterwards.

Copying every account for each pre-trade check would cost more than the check itself, so
the scratch book copies an account (or any value of the book's dicts) the first time a
decision reads it (`_CopiedOnRead`, a layer over the original dict: nothing is copied up
front, not even the dict), and then only structurally (`_structural_copy`). The
registers that only grow, with values never changed (`APPEND_ONLY_REGISTERS`: a trade or a
deposit kept for its reversal), are not copied at all: what a decision adds to them goes
into a layer over the original (a `ChainMap`), so a check costs the same on a store of a
million trades as on a new one; so are the sets that only grow (`GROWING_SETS`: the trades
busted, the deposits returned, the funding intervals settled), through a `_GrowingSet`.
No book keeps the inputs already seen (the store does): the caller checks a proposed
input's event id against the store first.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping, MutableSet
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar, cast

import msgspec

from ledger import journal_events as je
from ledger import risk
from ledger.book import Account, Book
from ledger.desk import Desk
from ledger.invariants import require
from ledger.journal import JournalEntry
from ledger.margin import watch_all
from ledger.policy import Policy
from ledger.rejections import Refusal
from ledger.watchlist import Watchlist

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")
_SHARED_TYPES = frozenset({Decimal, str, int, bool, type(None), datetime, tuple})
# Book fields only ever added to, under new keys, with immutable values (`Book.trades`,
# `Book.deposits`): a scratch book reads through to them and writes to its own layer.
APPEND_ONLY_REGISTERS = frozenset({"trades", "deposits"})
# Book sets only ever added to (`Book.busted`, `Book.returned`, `Book.funding_settled`):
# the same, through a `_GrowingSet`.
GROWING_SETS = frozenset({"busted", "returned", "funding_settled"})


class _CopiedOnRead(MutableMapping[_K, _V]):
    """The original book's dict (its accounts, its liquidation lots, ...) seen through a
    layer of its own: each value is copied the first time it is read, what is set or
    deleted stays in the layer, and nothing is copied up front, so making one costs the same
    on a book of a million accounts as on a new one. Iterates as the dict would: the
    original's keys in order, then the keys added (a key deleted and set again among them)."""

    def __init__(self, original: Mapping[_K, _V]) -> None:
        self._original = original
        self._own: dict[_K, _V] = {}  # the values read (copies) or set
        self._hidden: set[_K] = set()  # the original's keys deleted (perhaps set again)
        self._added: dict[_K, None] = {}  # keys not in the original's order, in order

    def __getitem__(self, key: _K) -> _V:
        own = self._own
        if key in own:
            return own[key]
        if key in self._hidden:
            raise KeyError(key)
        value = own[key] = _structural_copy(self._original[key])
        return value

    def __setitem__(self, key: _K, value: _V) -> None:
        if key not in self._own and (key in self._hidden or key not in self._original):
            self._added[key] = None
        self._own[key] = value

    def __delitem__(self, key: _K) -> None:
        if key not in self:
            raise KeyError(key)
        self._own.pop(key, None)
        self._added.pop(key, None)
        if key in self._original:
            self._hidden.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._own or (key not in self._hidden and key in self._original)

    def __iter__(self) -> Iterator[_K]:
        hidden = self._hidden
        yield from (key for key in self._original if key not in hidden)
        yield from self._added

    def __len__(self) -> int:
        return len(self._original) - len(self._hidden) + len(self._added)


class _GrowingSet(MutableSet[_T]):
    """The original book's set that only grows (the trades busted, the deposits returned,
    the funding intervals settled: a few thousand a year, each copied whole by every check
    before) seen through a layer: what is added stays in the layer, nothing is copied up
    front. Its members are the original's, then those added."""

    def __init__(self, original: AbstractSet[_T]) -> None:
        self._original = original
        self._added: set[_T] = set()

    def __contains__(self, item: object) -> bool:
        return item in self._added or item in self._original

    def __iter__(self) -> Iterator[_T]:
        yield from self._original
        yield from self._added

    def __len__(self) -> int:
        return len(self._original) + len(self._added)

    def add(self, value: _T) -> None:
        if value not in self._original:
            self._added.add(value)

    def discard(self, value: _T) -> None:
        require(value not in self._original, "a set of the book that only grows lost %r", value)
        self._added.discard(value)


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
    # A mapping, not only a dict: a scratch book of a scratch book layers over its layers.
    kind: type = type(value)
    if _is_mutable_mapping(kind):
        mapping = cast("MutableMapping[object, object]", value)
        return ChainMap({}, mapping) if name in APPEND_ONLY_REGISTERS else _CopiedOnRead(mapping)
    if name in GROWING_SETS:
        return _GrowingSet(cast("AbstractSet[object]", value))
    return _structural_copy(value)


@functools.cache
def _is_mutable_mapping(kind: type) -> bool:
    """`isinstance(value, MutableMapping)` by the value's type, remembered: the abstract
    class's check costs about half a microsecond, and a check makes a book of 25 fields."""
    return issubclass(kind, MutableMapping)


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


# The one journal event that moves a mark (`Book.apply`): figures kept before it are stale.
MARK_APPLIED = str(je.MarkPriceApplied.__struct_config__.tag)


class _Valuation(msgspec.Struct, frozen=True):
    """An account's full figures and what they were computed from."""

    holdings: risk.AccountHoldings  # its balances a copy: the account's own dict changes
    recorded: int  # the desk's journal events then: a mark recorded since moves the figures
    figures: risk.MarginFigures


@dataclass
class ValuingDesk(Desk):
    """A scratch desk that values one account (`valued`) in full whenever a decision values
    it: the figures with each position's and its liquidation price, as `ledger query
    margin` shows them. The decision gets the account's figures alone, as on any desk; the
    desk keeps the full ones, so that a pre-trade check's figures after the record need not
    value the account once more (`kept_figures`)."""

    valued: str = ""
    kept: _Valuation | None = None
    leaves_house_out: bool = False  # the house's side of a client's trade, if asked to
    left_house_out: bool = False  # whether it did

    def leaves_counterparty_out(self, kind: type[je.JournalEventType]) -> bool:
        """Leave the house's side out when asked to (`ledger/pretrade.py` says when the
        answer is the same): its entry keeps its place and its seq, so the events after it
        keep theirs, but names only its type and applies nothing."""
        if not self.leaves_house_out:
            return False
        book = self.book
        book.last_seq += 1
        self.pending.append(JournalEntry(book.last_seq, str(kind.__struct_config__.tag), b""))
        self.left_house_out = True
        return True

    def figures(
        self, account: Account, *, with_positions: bool = False
    ) -> risk.MarginFigures | Refusal:
        if with_positions or account.account_id != self.valued:
            return super().figures(account, with_positions=with_positions)
        holdings = account.holdings()
        try:
            figures = risk.margin_figures(holdings, self.book.marks, self.policy)
        except risk.MissingMark:
            return super().figures(account)  # the decision's refusal, in its words
        kept = risk.AccountHoldings(dict(holdings.balances), holdings.loan, holdings.positions)
        self.kept = _Valuation(kept, len(self.pending), figures)
        # The account's figures alone, exactly as `Desk.figures` gives a decision.
        return msgspec.structs.replace(figures, positions=())

    def kept_figures(self, account: Account) -> risk.MarginFigures | None:
        """The full figures of `valued` last computed, if the account still holds what it
        held then (a what-if valuation, as a withdrawal's, does not) and no mark moved
        since: the same inputs, the same figures. None otherwise, and when no decision
        valued it (one that touched nothing, or an account that cannot fall short): the
        caller values it itself."""
        kept = self.kept
        if (
            kept is None
            or account.account_id != self.valued
            or account.holdings() != kept.holdings
            or any(entry.type == MARK_APPLIED for entry in self.pending[kept.recorded :])
        ):
            return None
        return kept.figures


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


def valuing_desk(
    book: Book, policy: Policy, account_id: str, *, leaves_house_out: bool = False
) -> ValuingDesk:
    """A scratch desk for inputs that are not marks (no bands, as `scratch_desk`) that keeps
    the full figures of `account_id` each decision computes (`ValuingDesk`); with
    `leaves_house_out`, it leaves the house's side of a client's trade out."""
    return ValuingDesk(
        book=scratch_book(book),
        policy=policy,
        watchlist=_Unbanded(policy),
        valued=account_id,
        leaves_house_out=leaves_house_out,
    )
