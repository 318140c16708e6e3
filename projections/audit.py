"""`ledger audit verify` and `ledger audit replay`: the journal's chain, and the views
rebuilt from the journal alone compared with the live ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ledger import journal_events as je
from ledger.checkpoints import Anchor
from ledger.invariants import InvariantViolation
from ledger.journal import VerifyReport, verify_journal
from ledger.store import LedgerStore
from projections.policy_audit import adoptions_seen
from projections.runner import Advance


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    report: VerifyReport
    first_seq: int
    anchor_failures: tuple[str, ...] = ()  # anchors (--expect, --checkpoint) that do not hold
    anchors_held: int = 0
    # The journal's policy_adopted events, for the check of their documents (policy_audit).
    adoptions: tuple[je.PolicyAdopted, ...] = ()

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.anchor_failures

    def describe(self) -> str:
        report = self.report
        if report.ok and self.anchor_failures:
            return "journal NOT anchored: " + "; ".join(self.anchor_failures)
        if report.ok:
            if report.count == 0:
                return "journal verified: it is empty"
            last = self.first_seq + report.count - 1
            held = self.anchors_held
            anchored = (
                f", {held} anchor{'s hold' if held > 1 else ' holds'}" if held else _UNANCHORED
            )
            return (
                f"journal verified: {report.count} records, seq {self.first_seq}..{last}, "
                f"last hash {report.last_hash}{anchored}"
            )
        return (
            f"journal broken at seq {report.first_bad_seq}: {report.reason} "
            f"({report.count} records before it verify)"
        )


# Said when no anchor was given: the chain alone cannot show that the journal's end is where
# it was, and an auditor reading "verified" must not take it for that.
_UNANCHORED = (
    "; its end is not anchored (a journal cut short, or rewritten from some seq on with new "
    "hashes, verifies too): give --expect SEQ:HASH or --checkpoint FILE "
    '(docs/downstream.md "Anchoring the journal\'s end")'
)


def file_records(path: Path) -> Iterator[bytes]:
    """The records of an exported journal: one per line, the line ending removed."""
    with path.open("rb") as stream:
        for line in stream:
            record = line.rstrip(b"\n").removesuffix(b"\r")
            if record:
                yield record


class _StoreRecords:
    """The store's journal records; a gap the store reports ends the run (`gap_after`)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.gap: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        after = 0
        while True:
            try:
                entries = self.store.read_journal(after)
            except InvariantViolation as violation:
                self.gap = str(violation)
                return
            if not entries:
                return
            for entry in entries:
                yield _as_stored(entry.record)
            after = entries[-1].seq


def _as_stored(record: object) -> bytes:
    """A record's bytes. A SQLite row rewritten outside the ledger with the database's text
    functions (`replace`, `||`) comes back as text: its UTF-8 bytes are what was stored."""
    return record if isinstance(record, bytes) else str(record).encode("utf-8")


def _counted(records: Iterable[bytes], progress: Advance) -> Iterator[bytes]:
    for record in records:
        progress(1)
        yield record


class _RecordHash(msgspec.Struct, frozen=True):
    hash: str


def _watched(
    records: Iterable[bytes], seqs: frozenset[int], found: dict[int, str]
) -> Iterator[bytes]:
    """The records unchanged; the hash of the record at each of `seqs` (counted from 1,
    which the chain's verification requires) kept in `found`."""
    for seq, record in enumerate(records, start=1):
        if seq in seqs:
            try:
                found[seq] = msgspec.json.decode(record, type=_RecordHash).hash
            except (msgspec.DecodeError, msgspec.ValidationError):
                found[seq] = ""  # the chain's verification names what is wrong with it
        yield record


def verify_records(
    records: Iterable[bytes],
    progress: Advance | None = None,
    anchors: Sequence[Anchor] = (),
) -> VerifyOutcome:
    """seq continuity from 1 and the hash chain of docs/events.md, over any run of records;
    then each anchor: the journal reaches its seq and holds its hash there."""
    counted = records if progress is None else _counted(records, progress)
    found: dict[int, str] = {}
    adoptions: list[je.PolicyAdopted] = []
    watched = _watched(counted, frozenset(a.seq for a in anchors), found)
    report = verify_journal(adoptions_seen(watched, adoptions))
    failures = tuple(
        failure for anchor in anchors if (failure := _anchor_failure(anchor, report, found))
    )
    held = len(anchors) - len(failures)
    return VerifyOutcome(report, 1, failures, held, tuple(adoptions))


def _anchor_failure(anchor: Anchor, report: VerifyReport, found: dict[int, str]) -> str:
    if anchor.seq > report.count and report.ok:
        return (
            f"{anchor.source} vouches for seq {anchor.seq}, but the journal ends at seq "
            f"{report.count}: records were dropped from its end, or from within with the "
            "records after them renumbered and rehashed"
        )
    if anchor.seq in found and found[anchor.seq] != anchor.hash:
        return (
            f"{anchor.source}: seq {anchor.seq} holds hash {found[anchor.seq]}, not "
            f"{anchor.hash}: the journal was rewritten from there or before"
        )
    return ""


def verify_store(
    store: LedgerStore, progress: Advance | None = None, anchors: Sequence[Anchor] = ()
) -> VerifyOutcome:
    records = _StoreRecords(store)
    outcome = verify_records(records, progress, anchors)
    if outcome.report.ok and records.gap is not None:
        bad = outcome.report.count + 1
        report = VerifyReport(False, outcome.report.count, bad, records.gap, "")
        return VerifyOutcome(report, 1)
    return outcome
