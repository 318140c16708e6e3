"""`ledger audit verify`'s check of the policy documents: each `policy_adopted` of the
journal has its document, the file whose SHA-256 the event recorded, kept in the store
(docs/views.md "Policies") or given with `--policy`.

A figure of the journal is decided under the policy in force at its seq: an auditor who
recomputes it needs that policy's exact file. So the check fails, with a stable reason,
when a document is missing (`policy_document_missing`), when the store keeps one whose
SHA-256 is not the recorded digest (`policy_document_altered`: the store was changed
outside the ledger), or when the store keeps one where the journal adopted no policy
(`policy_document_unadopted`). An exported journal carries no document: its adoptions are
listed, and checked only against the files given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from ledger import journal_events as je
from ledger.policy import Policy

PolicyDocumentFailure = Literal[
    "policy_document_missing", "policy_document_altered", "policy_document_unadopted"
]
# How a `policy_adopted` record reads in canonical JSON: the records that may be one.
_ADOPTED_TYPE = b'"type":"policy_adopted"'


@dataclass(frozen=True, slots=True)
class PolicyDocumentCheck:
    seq: int  # of the policy_adopted (or of the document kept where none is)
    version: str
    digest: str  # the SHA-256 the journal recorded (of the kept document where none is)
    found: str  # where the document was found, or why it fails
    failure: PolicyDocumentFailure | None = None

    def describe(self) -> str:
        head = f"  seq {self.seq} policy {self.version} sha256 {self.digest}"
        if self.failure is None:
            return f"{head}: {self.found}" if self.found else head
        return f"{head}: {self.failure}: {self.found}"


@dataclass(frozen=True, slots=True)
class PolicyDocumentsOutcome:
    checks: tuple[PolicyDocumentCheck, ...]
    checked: bool = True  # False: an export with no file given, its adoptions only listed

    @property
    def ok(self) -> bool:
        return all(check.failure is None for check in self.checks)

    def describe(self) -> str:
        count = len(self.checks)
        if count == 0:
            return "policy documents: the journal adopted no policy"
        adopted = f"{count} polic{'y' if count == 1 else 'ies'} adopted"
        failures = sum(check.failure is not None for check in self.checks)
        if not self.checked:
            head = (
                "policy documents not checked: an exported journal carries none (give the "
                f"files with --policy to check them): {adopted}:"
            )
        elif failures:
            head = (
                f"policy documents NOT verified: {failures} of {adopted} "
                f"fail{'s' if failures == 1 else ''}:"
            )
        else:
            head = (
                f"policy documents verified: {adopted}, each document hashes to the digest "
                "its policy_adopted recorded:"
            )
        return "\n".join([head, *(check.describe() for check in self.checks)])


def adoptions_seen(records: Iterable[bytes], found: list[je.PolicyAdopted]) -> Iterator[bytes]:
    """The records unchanged; each `policy_adopted` among them decoded into `found` (one
    that does not decode is left to the chain's verification to name)."""
    for record in records:
        if _ADOPTED_TYPE in record:
            try:
                event: je.JournalEventType | None = je.decode_journal_record(record)
            except (msgspec.MsgspecError, ValueError):  # a text not UTF-8 included
                event = None
            if isinstance(event, je.PolicyAdopted):
                found.append(event)
        yield record


def check_policy_documents(
    adoptions: Sequence[je.PolicyAdopted],
    kept: Sequence[tuple[int, bytes]] | None,
    given: Sequence[Policy],
) -> PolicyDocumentsOutcome:
    """Each adoption's document among those the store `kept` (seq, bytes) (None for an
    exported journal: no store) or the `given` files."""
    if kept is None and not given:
        listed = (PolicyDocumentCheck(a.seq, a.version, a.digest, "") for a in adoptions)
        return PolicyDocumentsOutcome(tuple(listed), checked=False)
    kept_at = dict(kept or ())
    given_digests = {policy.digest for policy in given}
    checks = [_check(a, kept_at.pop(a.seq, None), given_digests, kept is None) for a in adoptions]
    checks.extend(
        PolicyDocumentCheck(
            seq,
            "?",
            hashlib.sha256(document).hexdigest(),
            "the store keeps a policy document where the journal adopted no policy",
            "policy_document_unadopted",
        )
        for seq, document in kept_at.items()
    )
    return PolicyDocumentsOutcome(tuple(sorted(checks, key=lambda check: check.seq)))


def _check(
    adopted: je.PolicyAdopted, kept: bytes | None, given: set[str], export: bool
) -> PolicyDocumentCheck:
    def checked(found: str, failure: PolicyDocumentFailure | None = None) -> PolicyDocumentCheck:
        return PolicyDocumentCheck(adopted.seq, adopted.version, adopted.digest, found, failure)

    if kept is not None:
        digest = hashlib.sha256(kept).hexdigest()
        if digest == adopted.digest:
            return checked("kept in the store")
        return checked(
            f"the store keeps a document whose sha256 is {digest}: it was altered outside "
            "the ledger",
            "policy_document_altered",
        )
    if adopted.digest in given:
        return checked("given with --policy")
    if export:
        return checked("not given with --policy", "policy_document_missing")
    return checked("neither kept in the store nor given with --policy", "policy_document_missing")
