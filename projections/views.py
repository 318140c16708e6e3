"""Reading views: the live views caught up, the views as of a journal position, snapshots
and differences between two sets of views."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ledger.adopted_policies import AdoptedPolicies
from ledger.journal import canonical_json
from ledger.store import LedgerStore
from projections import resume
from projections.database import Position, TableWrite, ViewDatabase, ViewsReadOnly
from projections.records import Touched
from projections.runner import Advance, ProjectionRunner, batch_writes
from projections.tables import DAILY_STATEMENT, TABLES, Row, Table

# The projection's state is kept next to the stored views at every multiple of this many
# events (`_follow_keeping_states`): a report as of a position before them starts from
# the nearest instead of seq 1, and replays at most this many events.
projection_state_interval_events = 50_000

differences_shown_max = 20  # per view, in `audit replay`'s output


def live_views(
    store: LedgerStore, url: str, policies: AdoptedPolicies, progress: Advance | None = None
) -> ViewDatabase:
    """The views kept next to the store at `url`, brought up to the journal's end first."""
    database = ViewDatabase.open(url)
    try:
        position = database.position()
        if position.last_seq == store.last_seq() and resume.valued_with(
            database, policies, position
        ):
            return database  # nothing to catch up: the saved state need not be decoded
        runner = ProjectionRunner(database, policies)
        if _follow_keeping_states(runner, store, progress):
            # The next reader resumes here instead of rebuilding the state from seq 1.
            resume.save(database, runner.state, runner.name)
    except BaseException:
        database.close()
        raise
    return database


def _follow_keeping_states(
    runner: ProjectionRunner, store: LedgerStore, progress: Advance | None
) -> int:
    """`runner.follow` to the journal's end, keeping the projection's state at each
    multiple of `projection_state_interval_events` it passes (`views_at` starts from the
    nearest); returns how many events were written."""
    end, written, interval = store.last_seq(), 0, projection_state_interval_events
    while (at := runner.state.last_seq) < end:
        stop = min((at // interval + 1) * interval, end)
        written += runner.follow(store, until_seq=stop, progress=progress)
        if runner.state.last_seq < stop:
            break  # the journal's end
        if stop % interval == 0:
            runner.database.save_snapshot(stop, resume.encoded(runner.state), runner.name)
    return written


def readable_views(
    store: LedgerStore, url: str, policies: AdoptedPolicies, progress: Advance | None = None
) -> ViewDatabase:
    """The live views at the journal's end, caught up first (`live_views`). Where they
    cannot be written (a read-only store or file system, a reader role), the views as they
    stand when they are at the end, else caught up in a scratch copy: nothing is written."""
    try:
        return live_views(store, url, policies, progress)
    except ViewsReadOnly:
        return views_at(store, policies, store.last_seq(), progress, stored_url=url)


def views_at(
    store: LedgerStore,
    policies: AdoptedPolicies,
    seq: int,
    progress: Advance | None = None,
    *,
    stored_url: str | None = None,
) -> ViewDatabase:
    """The views right after journal position `seq`. From the views stored at `stored_url`
    when they stand at or before `seq` (as they are when at `seq` and valued with `policies`,
    else a scratch copy caught up to it); otherwise built from seq 1 in a scratch in-memory
    database. Writes nothing."""
    stored = _stored_views(stored_url)
    if stored is not None:
        position = stored.position()
        if position.last_seq == seq and resume.valued_with(stored, policies, position):
            return stored
    try:
        if stored is not None and stored.position().last_seq < seq:
            scratch = _scratch_copy(stored)
        else:
            scratch = _from_kept_state(stored, store, policies, seq)
    finally:
        if stored is not None:
            stored.close()
    try:
        ProjectionRunner(scratch, policies).follow(store, until_seq=seq, progress=progress)
    except BaseException:
        scratch.close()
        raise
    return scratch


def stored_copy(url: str | None, *, keeps_history: bool = False) -> ViewDatabase:
    """A scratch in-memory copy of the views stored at `url` (empty when there are none it
    may read): a runner on it resumes where they stand, and writes nothing to the store.
    With `keeps_history`, the copy keeps the history of what it catches up (not the stored
    history: it begins where the stored views stand)."""
    stored = _stored_views(url)
    try:
        return _scratch_copy(stored, keeps_history=keeps_history)
    finally:
        if stored is not None:
            stored.close()


def _from_kept_state(
    stored: ViewDatabase | None, store: LedgerStore, policies: AdoptedPolicies, seq: int
) -> ViewDatabase:
    """Scratch views in memory at the latest state the stored views kept at or before
    `seq` (`_follow_keeping_states`), empty when there is none: every row is a function of
    the state (projections/runner.py) but a daily statement's, of its close, copied from
    the stored views for the dates closed there (one still open there: its provisional
    rows, from the state as a batch's end writes them)."""
    scratch = ViewDatabase.in_memory()
    kept = None if stored is None else resume.kept_at_or_before(stored, store, policies, seq)
    if stored is None or kept is None:
        return scratch
    state, state_bytes = kept
    book = state.book
    state.touched = Touched(
        accounts=set(book.accounts),
        calls=set(state.calls),
        liquidations=set(state.liquidations),
        any_event=True,
    )
    from_state = batch_writes(state, state.end_batch())
    closed_seq = DAILY_STATEMENT.column_names.index("closed_seq")
    date = DAILY_STATEMENT.column_names.index("business_date")
    statements = [
        row for row in stored.rows(DAILY_STATEMENT) if int(row[closed_seq] or 0) <= book.last_seq
    ]
    dates = sorted({str(row[date]) for row in statements})
    # The state's own writes come second: a date still open there (provisional rows) is
    # their scope, its stored final rows replaced.
    writes = [TableWrite(DAILY_STATEMENT, dates, statements), *from_state]
    scratch.commit_batch(
        writes, scratch.position(), Position(book.last_seq, book.last_hash, state.recorded_at)
    )
    scratch.save_state(book.last_seq, state_bytes)  # the runner resumes from it
    return scratch


def _stored_views(url: str | None) -> ViewDatabase | None:
    """The views stored at `url` opened to read, or None (no URL, or none readable there)."""
    if url is None:
        return None
    try:
        return ViewDatabase.open(url, create=False)
    except ViewsReadOnly:
        return None


def _scratch_copy(source: ViewDatabase | None, *, keeps_history: bool = False) -> ViewDatabase:
    """A scratch in-memory database holding every view's rows, the position and the saved
    projection state of `source` (empty without one)."""
    scratch = ViewDatabase.in_memory(keeps_history=keeps_history)
    if source is None:
        return scratch
    position = source.position()
    if position.last_seq == 0:
        return scratch
    writes = [TableWrite(table, None, source.rows(table)) for table in TABLES]
    scratch.commit_batch(writes, scratch.position(), position)
    saved = source.saved_state()
    if saved is not None:
        scratch.save_state(*saved)
    return scratch


def views_from_records(
    records: Iterable[bytes],
    policies: AdoptedPolicies,
    batch_records: int,
    progress: Advance | None = None,
) -> ViewDatabase:
    """The views of an exported journal (JSON lines), in a scratch in-memory database."""
    scratch = ViewDatabase.open("sqlite:///:memory:")
    runner = ProjectionRunner(scratch, policies, from_store=False)
    for batch in _chunks(records, batch_records):
        runner.apply_records(batch)
        if progress is not None:
            progress(len(batch))
    return scratch


def _chunks(records: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def document(database: ViewDatabase, table: Table) -> dict[str, Any]:
    """One view as a JSON-ready document: its position, its columns, its rows."""
    position = database.position()
    names = table.column_names
    return {
        "view": table.view,
        "as_of_seq": position.last_seq,
        "as_of_recorded_at": position.recorded_at or None,
        "columns": list(names),
        "rows": [dict(zip(names, row, strict=True)) for row in database.rows(table)],
    }


def snapshot(database: ViewDatabase) -> bytes:
    """Every view's rows in key order, as canonical JSON: equal views, equal bytes."""
    return canonical_json(
        {table.view: [list(row) for row in database.rows(table)] for table in TABLES}
    )


@dataclass
class ViewDifference:
    view: str
    only_live: list[Row] = field(default_factory=list)
    only_replayed: list[Row] = field(default_factory=list)
    changed: list[tuple[Row, Row]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.only_live) + len(self.only_replayed) + len(self.changed)


def differences(live: ViewDatabase, replayed: ViewDatabase) -> list[ViewDifference]:
    """Per view, the rows that differ between two sets of views (matched by key)."""
    found = []
    for table in TABLES:
        key = [table.column_names.index(name) for name in table.key]
        left = {tuple(row[i] for i in key): row for row in live.rows(table)}
        right = {tuple(row[i] for i in key): row for row in replayed.rows(table)}
        difference = ViewDifference(table.view)
        difference.only_live = [left[k] for k in left.keys() - right.keys()]
        difference.only_replayed = [right[k] for k in right.keys() - left.keys()]
        difference.changed = [(left[k], right[k]) for k in left.keys() & right.keys()]
        difference.changed = [(a, b) for a, b in difference.changed if a != b]
        if difference.count:
            found.append(difference)
    return found


def describe_difference(table: Table, difference: ViewDifference) -> list[str]:
    """Lines a person can read: what each differing row holds on each side."""
    names = table.column_names
    lines = [f"{table.view}: {difference.count} rows differ"]
    shown = 0
    for row in sorted(difference.only_live, key=str):
        if shown < differences_shown_max:
            lines.append(f"  only in the live views: {_row_text(names, row)}")
        shown += 1
    for row in sorted(difference.only_replayed, key=str):
        if shown < differences_shown_max:
            lines.append(f"  only in the replay: {_row_text(names, row)}")
        shown += 1
    for live_row, replayed_row in sorted(difference.changed, key=str):
        if shown < differences_shown_max:
            changed = [
                f"{name}: live {a!r}, replay {b!r}"
                for name, a, b in zip(names, live_row, replayed_row, strict=True)
                if a != b
            ]
            key = ", ".join(str(live_row[names.index(k)]) for k in table.key)
            lines.append(f"  {key}: " + "; ".join(changed))
        shown += 1
    if shown > differences_shown_max:
        lines.append(f"  … and {shown - differences_shown_max} more")
    return lines


def _row_text(names: tuple[str, ...], row: Row) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, row, strict=True) if v is not None)
