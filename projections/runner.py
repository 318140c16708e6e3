"""The projection runner: follows the journal into the view tables, each event exactly once.

Embedded mode reads the journal from the store (`follow`); service mode hands it journal
records from the topic (`apply_records`). Either way one call is one batch: the events are
applied to the in-memory state (the ledger's `Book` and the registers of
`projections.state`), then the rows of everything the batch touched and the new position
(`last_seq`) are written in ONE transaction. Events at or below the recorded position only
bring the in-memory state up to it (after a restart) and write nothing, so a redelivered
record is never applied twice, and a record that skips ahead is refused.

The same journal gives the same rows whatever the batch sizes: every row is a function of
the state at the end of its batch, and every row whose inputs a batch changed is
rewritten at its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger import journal_events as je
from ledger import snapshots
from ledger.adopted_policies import AdoptedPolicies
from ledger.collector import cyclic_collector_paused
from ledger.invariants import require
from ledger.store import LedgerStore
from projections import rows, tables
from projections.database import DEFAULT_PROJECTION, Position, TableWrite, ViewDatabase
from projections.history import HistoryRecorder, RecordingBook, house_start
from projections.records import Touched
from projections.resume import resume
from projections.state import ProjectionState

# Events written per transaction. A batch rewrites the rows of every account it touched,
# and a batch of a few thousand events touches most of them (every holder of a marked
# instrument): fewer, larger batches recompute those rows less often (docs/performance.md).
projection_batch_events_max = 50_000
# Told how many more events were projected (a progress display, say).
Advance = Callable[[int], None]


class ProjectionGap(ValueError):
    """A journal record arrived that does not follow the projection's state."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    applied: int  # events written into the views by this batch
    last_seq: int  # the views' position after it


class ProjectionRunner:
    """One projection of the journal into a `ViewDatabase`, each seq valued with the policy
    in force there (one of `policies`, by the digest its `policy_adopted` names)."""

    def __init__(
        self,
        database: ViewDatabase,
        policies: AdoptedPolicies,
        name: str = DEFAULT_PROJECTION,
        *,
        from_store: bool = True,
    ) -> None:
        """`from_store` False: the events come from somewhere with no store behind them
        (an exported journal, a benchmark's records), so the book keeps every client trade
        and deposit a reversal may name; `follow` hands it the originals instead."""
        self.database = database
        self.policies = policies
        self.name = name
        self.position = database.position(name)
        # Where the views stand, when their saved state fits; else from seq 1.
        self.state = resume(database, policies, self.position, name)
        if not from_store:
            require(self.state.last_seq == 0, "a runner without a store starts at seq 1")
            self.state.book.keeps_originals = True
        self.history: HistoryRecorder | None = None
        self._history_begins = False  # the first batch written starts the history
        self._house_begins = False  # ... and the house's (views whose history began before)
        self._keep_history()

    def _keep_history(self) -> None:
        """Record the accounts' history (projections/history.py) where the views keep it."""
        if not self.database.keeps_history:
            return
        book = RecordingBook.adopting(self.state.book)
        self.state.book = book
        self.history = HistoryRecorder(book)
        self._history_begins = self.database.history_start(self.name) is None
        self._house_begins = self.database.history_start(house_start(self.name)) is None

    @property
    def last_seq(self) -> int:
        """The views' recorded position: every event up to it is in the views."""
        return self.position.last_seq

    def apply_records(self, records: Iterable[bytes]) -> BatchResult:
        """Project journal records (canonical JSON, in seq order) as one batch.

        Records at or below the state's seq are skipped (redelivery); records up to the
        recorded position rebuild the state only; the rest are written in one transaction.
        Raises ProjectionGap when a record does not follow the previous one."""
        # The decoder itself, not `decode_journal_record`: a Python call less per event.
        return self.apply_events(map(je.journal_decoder.decode, records))

    def apply_events(self, events: Iterable[je.JournalEventType]) -> BatchResult:
        """`apply_records`' events, decoded; the collector paused for the batch (bounded:
        `projection_batch_events_max`), as the writer pauses it for its own."""
        with cyclic_collector_paused():
            return self._apply_batch(events)

    def _apply_batch(self, events: Iterable[je.JournalEventType]) -> BatchResult:
        # Per event only what must be: the state, history and position are read once.
        state, history, written = self.state, self.history, self.position.last_seq
        applied, last = 0, state.last_seq
        for event in events:
            seq = event.seq
            if seq <= last:
                continue
            if seq != last + 1:
                raise ProjectionGap(f"journal seq {seq} arrived where {last + 1} belongs")
            if history is not None and seq == written + 1:
                self._begin_history(history, seq)
            state.apply(event)
            last = seq
            if seq <= written:
                state.forget_touched()  # already in the views: rebuild memory only
                if history is not None:
                    history.forget()
            else:
                applied += 1
                if history is not None:
                    history.record(event)
        if applied:
            self._commit()
        return BatchResult(applied, self.position.last_seq)

    def _begin_history(self, history: HistoryRecorder, seq: int) -> None:
        """Before the first event written, the state where a history begins: every kept
        account's on views built before the history was kept; the house's alone where its
        history begins at seq 1 (the row of its loan and call) or on a clients' history
        older code began without it."""
        if self._history_begins and seq > 1:
            history.record_whole()  # the views were built before the history was kept
        elif self._house_begins:
            history.record_house()  # from seq 1, or on a history older code began

    def _commit(self) -> None:
        state = self.state
        after = Position(state.last_seq, state.book.last_hash, state.recorded_at)
        writes = batch_writes(state, state.end_batch())
        if self.history is not None:
            begun = self.position.last_seq
            starts = [(self.name, begun)] if self._history_begins else []
            if self._house_begins:
                starts.append((house_start(self.name), begun))
            writes.extend(self.history.writes(*starts))
        self.database.commit_batch(writes, self.position, after, self.name)
        self.position = after
        self._history_begins = self._house_begins = False

    def follow(
        self,
        store: LedgerStore,
        *,
        until_seq: int | None = None,
        batch_events: int = projection_batch_events_max,
        progress: Advance | None = None,
        valued: Callable[[je.JournalEventType], bool] | None = None,
    ) -> int:
        """Project the store's journal up to `until_seq` (default: its end), a batch of at
        most `batch_events` at a time (read a page at a time); returns how many events were
        written. With `valued`, only up to the first event it says the views cannot value
        (a policy whose document the reader lacks, which would stop the state inside it)."""
        require(0 < batch_events <= projection_batch_events_max, "batch size out of bounds")
        written = 0
        while until_seq is None or self.state.last_seq < until_seq:
            start = self.state.last_seq
            end = (
                start + batch_events if until_seq is None else min(start + batch_events, until_seq)
            )
            events = snapshots.events_after(store, self.state.book, start, end, progress)
            if valued is not None:
                events = itertools.takewhile(valued, events)
            written += self.apply_events(events).applied
            if self.state.last_seq == start:
                break  # the journal's end
        return written

    def rebuild(self, store: LedgerStore, *, until_seq: int | None = None) -> int:
        """Forget every view row and project the journal again from seq 1."""
        self.database.reset(self.name)
        self.state = ProjectionState(self.policies)
        self.position = self.database.position(self.name)
        self._keep_history()
        return self.follow(store, until_seq=until_seq)


def batch_writes(state: ProjectionState, touched: Touched) -> list[TableWrite]:
    """The table writes of one batch: the touched scopes' rows, the aggregates whole."""
    book, policy = state.book, state.policy
    scopes, balances, positions, margin = rows.accounts_rows(
        book, policy, touched.accounts, state.recorded_at
    )
    calls = sorted(touched.calls)
    liquidations = sorted(touched.liquidations)
    liquidation_records = [state.liquidations[i] for i in liquidations]
    dates = sorted(touched.statements)
    writes = [
        TableWrite(tables.BALANCES, scopes, balances),
        TableWrite(tables.POSITIONS, scopes, positions),
        TableWrite(tables.MARGIN_CLIENTS, scopes, margin),
        TableWrite(tables.MARGIN_CALLS, calls, [rows.call_row(state.calls[c]) for c in calls]),
        TableWrite(
            tables.LIQUIDATIONS,
            liquidations,
            [rows.liquidation_row(r) for r in liquidation_records],
        ),
        TableWrite(
            tables.LIQUIDATION_STEPS,
            liquidations,
            [row for r in liquidation_records for row in rows.liquidation_step_rows(r)],
        ),
        TableWrite(
            tables.DAILY_STATEMENT,
            dates,
            [row for d in dates for row in state.statement_rows.pop(d)],
        ),
        TableWrite(tables.COLLATERAL_CONCENTRATION, None, rows.concentration_rows(book, policy)),
        TableWrite(tables.PERPS_EXPOSURE, None, rows.perps_rows(book, policy, state.funding)),
        TableWrite(tables.PLATFORM_EXPOSURE, None, rows.platform_exposure_rows(book)),
        TableWrite(tables.STALE_MARKS, None, rows.stale_mark_rows(book, policy, state.recorded_at)),
        TableWrite(
            tables.CLIENT_ASSETS,
            None,
            rows.client_asset_rows(book, state.custody_in, state.custody_out),
        ),
        TableWrite(tables.LENDING_LIMITS, None, rows.lending_rows(book, policy)),
    ]
    for write in writes:
        width = len(write.table.columns)
        require(
            all(len(row) == width for row in write.rows),
            f"a {write.table.view} row does not have its {width} columns",
        )
    return writes
