"""`ledger audit verify` and `ledger audit replay`: the journal's chain, and the views
rebuilt from the journal alone compared with the live ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.invariants import InvariantViolation
from ledger.journal import VerifyReport, verify_journal
from ledger.store import LedgerStore
from projections.runner import Advance


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    report: VerifyReport
    first_seq: int

    @property
    def ok(self) -> bool:
        return self.report.ok

    def describe(self) -> str:
        report = self.report
        if report.ok:
            if report.count == 0:
                return "journal verified: it is empty"
            last = self.first_seq + report.count - 1
            return (
                f"journal verified: {report.count} records, seq {self.first_seq}..{last}, "
                f"last hash {report.last_hash}"
            )
        return (
            f"journal broken at seq {report.first_bad_seq}: {report.reason} "
            f"({report.count} records before it verify)"
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
                yield entry.record
            after = entries[-1].seq


def _counted(records: Iterable[bytes], progress: Advance) -> Iterator[bytes]:
    for record in records:
        progress(1)
        yield record


def verify_records(records: Iterable[bytes], progress: Advance | None = None) -> VerifyOutcome:
    """seq continuity from 1 and the hash chain of docs/events.md, over any run of records."""
    counted = records if progress is None else _counted(records, progress)
    return VerifyOutcome(verify_journal(counted), 1)


def verify_store(store: LedgerStore, progress: Advance | None = None) -> VerifyOutcome:
    records = _StoreRecords(store)
    outcome = verify_records(records, progress)
    if outcome.ok and records.gap is not None:
        bad = outcome.report.count + 1
        report = VerifyReport(False, outcome.report.count, bad, records.gap, "")
        return VerifyOutcome(report, 1)
    return outcome
