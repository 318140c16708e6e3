"""The policies a journal adopted, by digest: a reader values each part of the journal with
the policy in force there, the one its latest `policy_adopted` names.

A licensed firm changes its haircuts: the writer, restarted with the new policy file,
journals a second `policy_adopted`. The figures of the seqs before it were decided with the
first policy, those after with the second, and the views, statements and explanations show
them so. Where a reader gets the documents:

- the store keeps the document of every policy the journal adopted, written in the
  transaction that journals its `policy_adopted` (`LedgerStore.adopted_policies`); each is
  checked here against the digest that event recorded before it is used;
- a store written before the store kept them has none: the reader is given the files
  (`--policy`, once per policy), each known by the SHA-256 of its bytes.

A `policy_adopted` whose document is in neither is refused, naming its version and digest
(`PolicyDocumentMissing`): the figures of that part of the journal cannot be computed. A
reader that runs on (the API) looks again, in the store and the `--policy` file or folder,
each time it meets one: a writer of an older version adopting a policy keeps no document,
and the operator puts it in either place.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ledger import journal_events as je
from ledger.book import Book
from ledger.invariants import InvariantViolation
from ledger.policy import Policy, PolicyError, load_policy, parse_policy

if TYPE_CHECKING:  # the valuing code (statements, views) loads no store adapter
    from ledger.store import LedgerStore


class PolicyDocumentMissing(PolicyError):
    """The journal adopted a policy whose document the reader was not given (nor the store
    kept): that part of the journal cannot be valued."""


class PolicyDocumentAltered(PolicyError):
    """A policy document kept in the store is not the one its `policy_adopted` recorded."""


class AdoptedPolicies:
    """Policies by the SHA-256 of their file, and the journal's latest as far as known.

    Read from a store (`adopted_policies`), a policy the journal adopts after this was made
    (a writer restarted with a new file while the API runs) is looked up there when first
    met: the store keeps its document from the transaction that journals it; and in the
    `files` given (a file or folder, read again), where a writer of an older version, which
    keeps none, leaves the operator to put it."""

    def __init__(
        self,
        by_digest: Mapping[str, Policy],
        current: Policy,
        store: LedgerStore | None = None,
        files: Path | None = None,
    ) -> None:
        self.by_digest = dict(by_digest)
        # The journal's latest policy as far as the reader knows: the store's latest
        # document, else the first file given, else the demonstration policy. It sets the
        # scales a report shows and values an empty journal: every event is valued with the
        # policy in force at its seq (a writer adopts its policy before its first decision).
        self.current = current
        self._store = store
        self._files = files
        # The store's `policy_adopted` events up to `_adoptions_through`, in seq order: what
        # `at_seq` looks up (read from the store once, then only what the journal gained).
        self._adoptions: list[je.PolicyAdopted] = []
        self._adoptions_through = 0
        self._adoptions_read = threading.Lock()  # the API's as_of threads share one

    @classmethod
    def of(cls, *policies: Policy) -> AdoptedPolicies:
        """The given policies (the first is `current`), no store behind them."""
        return cls({p.digest: p for p in policies}, policies[0])

    def adopted(self, event: je.PolicyAdopted) -> Policy:
        """The policy `event` adopted; `PolicyDocumentMissing` without its document."""
        return self._document(event.version, event.digest, f"journal seq {event.seq} adopted")

    def in_force(self, book: Book) -> Policy:
        """The policy in force at `book`'s seq: the latest it adopted (`current` before any)."""
        if not book.policy_digest:
            return self.current
        return self._document(
            book.policy_version, book.policy_digest, f"the journal at seq {book.last_seq} is under"
        )

    def at_seq(self, store: LedgerStore, seq: int) -> Policy:
        """The policy in force right after journal position `seq`, read off `store`'s
        journal (for a book rebuilt for one account from the history, which keeps no
        policy); one store's journal per `AdoptedPolicies`."""
        with self._adoptions_read:
            if seq > self._adoptions_through:
                through = store.last_seq()  # first: a later policy_adopted is read next time
                for adopted_seq in store.policy_adoptions(self._adoptions_through):
                    if adopted_seq <= through:
                        self._adoptions.append(adopted_at(store, adopted_seq))
                self._adoptions_through = through
            adoptions = list(self._adoptions)
        at = bisect.bisect_right([a.seq for a in adoptions], seq)
        return self.current if at == 0 else self.adopted(adoptions[at - 1])

    def _document(self, version: str, digest: str, where: str) -> Policy:
        found = self.by_digest.get(digest)
        if found is None:
            self._look_again()
            found = self.by_digest.get(digest)
        if found is None:
            raise PolicyDocumentMissing(
                f"{where} policy {version} (sha256 {digest}), whose document is neither kept "
                "in the store nor given: give that version's file with --policy (a file, or "
                "a folder of the files of every policy the journal adopted)"
            )
        return found

    def _look_again(self) -> None:
        """The documents kept in the store and the files given, read again: a policy
        adopted since may be in either now."""
        if self._store is not None:
            self.by_digest.update((p.digest, p) for p in _kept_policies(self._store))
        if self._files is not None:
            self.by_digest.update((p.digest, p) for p in policy_files(self._files))


def adopted_policies(
    store: LedgerStore, given: Iterable[Policy] = (), files: Path | None = None
) -> AdoptedPolicies:
    """The policies the store keeps (each checked against its `policy_adopted`), the
    `given` ones, and those of `files` (a file or folder: `--policy`), each known by its
    SHA-256; the store and `files` are looked in again for a policy met later."""
    given_policies = [*given, *policy_files(files)]
    by_digest = {policy.digest: policy for policy in given_policies}
    kept = _kept_policies(store)
    by_digest.update((policy.digest, policy) for policy in kept)
    current = kept[-1] if kept else (given_policies[0] if given_policies else load_policy(None))
    by_digest.setdefault(current.digest, current)
    return AdoptedPolicies(by_digest, current, store, files)


def policy_files(path: Path | None) -> list[Policy]:
    """The policies a reader is given: a file, or a folder of them (every `*.toml` in it, in
    name order); none for None."""
    if path is None:
        return []
    if not path.is_dir():
        return [load_policy(path)]
    files = sorted(path.glob("*.toml"))
    if not files:
        raise PolicyError(f"policy folder {path} holds no policy file (*.toml)")
    return [load_policy(file) for file in files]


def _kept_policies(store: LedgerStore) -> list[Policy]:
    """The policies the store keeps, in the order the journal adopted them."""
    return [_kept_policy(store, seq, document) for seq, document in store.adopted_policies()]


def adopted_at(store: LedgerStore, seq: int) -> je.PolicyAdopted:
    """The journal's `policy_adopted` at `seq` (a seq `policy_adoptions` gave)."""
    (entry,) = store.read_journal(seq - 1, 1)
    adopted = je.decode_journal_record(entry.record)
    if not isinstance(adopted, je.PolicyAdopted):
        raise InvariantViolation(f"journal seq {seq} is not the policy_adopted its row says")
    return adopted


def _kept_policy(store: LedgerStore, seq: int, document: bytes) -> Policy:
    """The policy document the store keeps at `seq`, checked against the journal there."""
    adopted = adopted_at(store, seq)
    digest = hashlib.sha256(document).hexdigest()
    if adopted.digest != digest:
        raise PolicyDocumentAltered(
            f"the policy document the store keeps at seq {seq} (sha256 {digest}) is not the "
            f"one the journal adopted there: the store was altered outside the ledger"
        )
    return parse_policy(document, f"the policy the store keeps at seq {seq}")
