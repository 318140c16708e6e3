"""Projections: replay determinism, as-of, restart, the regulatory tie-outs, explain, and the
accounts' history answering an account read at a past seq as the replay does, byte for byte."""

from __future__ import annotations

import dataclasses
import random
import shutil
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app import api_as_of
from app.simulation import simulate
from ledger import journal_events as je
from ledger import reporting, risk, snapshots
from ledger.adopted_policies import AdoptedPolicies, PolicyDocumentMissing, adopted_policies
from ledger.application import InboxItem, LedgerApplication
from ledger.book import FEES, HOUSE, PLATFORM_ACCOUNTS, Book
from ledger.journal import JournalEntry, canonical_json
from ledger.limits import inbox_batch_records_max, snapshot_interval_events
from ledger.policy import Policy, load_policy
from ledger.reporting import AsOfError
from ledger.store import LedgerStore
from projections import history, resume, state, tables, views
from projections import tail as tail_module
from projections.database import DEFAULT_PROJECTION, ViewDatabase
from projections.explain import DECISION_TYPES, explain_event
from projections.runner import ProjectionGap, ProjectionRunner
from projections.tail import HistoryTail
from tests.ledger_scenario import Scenario

SEED, ACCOUNTS, DAYS = 1, 8, 3  # the crash of day 2 issues calls and liquidates accounts


def ingest_simulation(url: str, policy: Policy, seed: int, accounts: int, days: int) -> None:
    """Decide a simulated inbox stream into the store at `url`."""
    records = list(simulate(seed, accounts, days))
    with LedgerStore.open(url) as store:
        app = LedgerApplication(store, policy)
        for start in range(0, len(records), inbox_batch_records_max):
            batch = records[start : start + inbox_batch_records_max]
            app.process([InboxItem(r, None, "sim", 0, start + i) for i, r in enumerate(batch)])


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module")
def journal_db(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    path = tmp_path_factory.mktemp("journal") / "ledger.db"
    ingest_simulation(f"sqlite:///{path}", policy, SEED, ACCOUNTS, DAYS)
    return path


@pytest.fixture
def store_url(journal_db: Path, tmp_path: Path) -> str:
    """A private copy of the simulated store (its views written by this test alone)."""
    copy = tmp_path / "ledger.db"
    shutil.copy(journal_db, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def store(store_url: str) -> Iterator[LedgerStore]:
    with LedgerStore.open(store_url) as opened:
        yield opened


@pytest.fixture(scope="module")
def entries(journal_db: Path) -> list[JournalEntry]:
    with LedgerStore.open(f"sqlite:///{journal_db}") as opened:
        return list(opened.iter_journal())


def _project(store: LedgerStore, policy: Policy, batch_events: int) -> bytes:
    with ViewDatabase.open("sqlite:///:memory:") as database:
        ProjectionRunner(database, AdoptedPolicies.of(policy)).follow(
            store, batch_events=batch_events
        )
        return views.snapshot(database)


def test_the_simulation_crash_calls_and_liquidates(entries: list[JournalEntry]) -> None:
    kinds = {entry.type for entry in entries}
    assert {"margin_call_issued", "liquidation_triggered", "funding_settled"} <= kinds


def test_views_built_batch_by_batch_equal_a_rebuild_from_seq_1(
    store: LedgerStore, policy: Policy
) -> None:
    incremental = _project(store, policy, batch_events=397)
    assert incremental == _project(store, policy, batch_events=5000)
    assert b'"margin-calls":[[' in incremental  # not trivially equal: the registers hold rows


def test_the_events_looked_up_as_book_only_need_no_register(
    store: LedgerStore, policy: Policy, entries: list[JournalEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`state._BOOK_ONLY` skips the registers' match by exact type: every view equals the
    views built with every event through that match (a register added for one of those
    types and not taken out of the set would differ here)."""
    skipped = {entry.type for entry in entries} & {
        t.__struct_config__.tag for t in state._BOOK_ONLY
    }
    assert {"loan_repaid", "loan_drawn", "credit_limit_set", "account_opened"} <= skipped
    looked_up = _project(store, policy, batch_events=5000)
    monkeypatch.setattr(state, "_BOOK_ONLY", frozenset())
    assert _project(store, policy, batch_events=5000) == looked_up


def test_apply_records_in_random_chunks_equals_a_rebuild(
    store: LedgerStore, policy: Policy, entries: list[JournalEntry]
) -> None:
    chooser = random.Random(7)
    with ViewDatabase.open("sqlite:///:memory:") as database:
        runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
        start = 0
        while start < len(entries):
            size = chooser.randint(1, 3000)
            # Redelivery: every chunk repeats a few records already applied.
            runner.apply_records(e.record for e in entries[max(0, start - 5) : start + size])
            start += size
        assert database.position().last_seq == len(entries)
        assert views.snapshot(database) == _project(store, policy, batch_events=5000)


def test_a_restarted_runner_continues_where_the_views_stand(
    store: LedgerStore, policy: Policy
) -> None:
    with ViewDatabase.open("sqlite:///:memory:") as database:
        ProjectionRunner(database, AdoptedPolicies.of(policy)).follow(
            store, until_seq=7_777, batch_events=1000
        )
        assert database.position().last_seq == 7_777
        restarted = ProjectionRunner(database, AdoptedPolicies.of(policy))
        written = restarted.follow(store)
        assert written == store.last_seq() - 7_777
        assert views.snapshot(database) == _project(store, policy, batch_events=5000)


def test_a_runner_resumes_from_the_saved_state_and_writes_the_same_views(
    store: LedgerStore, policy: Policy
) -> None:
    with ViewDatabase.open("sqlite:///:memory:") as database:
        first = ProjectionRunner(database, AdoptedPolicies.of(policy))
        first.follow(store, until_seq=7_777, batch_events=1000)
        resume.save(database, first.state, first.name)
        resumed = ProjectionRunner(database, AdoptedPolicies.of(policy))
        assert resumed.state.last_seq == 7_777  # not rebuilt from seq 1
        assert resumed.state.calls == first.state.calls
        assert resumed.state.book.trades == first.state.book.trades  # for busts
        assert resumed.follow(store) == store.last_seq() - 7_777
        assert views.snapshot(database) == _project(store, policy, batch_events=5000)


def test_a_bust_after_the_saved_state_reverses_the_trade_in_the_views(
    tmp_path: Path, policy: Policy
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    s.perp_long()
    # The views and their saved state.
    views.live_views(s.store, url, AdoptedPolicies.of(policy)).close()
    s.send("trade_busted", trade_id="p1", reason="off-market price")
    with (
        views.live_views(
            s.store, url, AdoptedPolicies.of(policy)
        ) as live,  # resumed, then the bust applied
        views.views_at(
            s.store, AdoptedPolicies.of(policy), s.store.last_seq()
        ) as rebuilt,  # from seq 1
    ):
        assert views.snapshot(live) == views.snapshot(rebuilt)


def test_views_as_of_a_seq_start_from_the_stored_views_standing_before_it(
    store: LedgerStore, store_url: str, policy: Policy
) -> None:
    with ViewDatabase.open(store_url) as stored:
        runner = ProjectionRunner(stored, AdoptedPolicies.of(policy))
        runner.follow(store, until_seq=3_000)
        resume.save(stored, runner.state, runner.name)
    for seq in (2_000, 3_000, 5_000):
        projected: list[int] = []
        with (
            views.views_at(
                store, AdoptedPolicies.of(policy), seq, projected.append, stored_url=store_url
            ) as got,
            views.views_at(store, AdoptedPolicies.of(policy), seq) as rebuilt,
        ):
            assert views.snapshot(got) == views.snapshot(rebuilt)
        # Before the stored views: from seq 1; at them: as they are; after: the difference.
        assert sum(projected) == {2_000: 2_000, 3_000: 0, 5_000: 2_000}[seq]


def test_views_at_the_journal_end_are_served_without_decoding_their_state(
    store: LedgerStore, store_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built, their state saved.
    views.live_views(store, store_url, AdoptedPolicies.of(policy)).close()

    def undecodable(_: bytes) -> None:
        raise AssertionError("the saved state was decoded")

    with monkeypatch.context() as patched:
        patched.setattr(resume, "_decode", undecodable)
        with views.live_views(store, store_url, AdoptedPolicies.of(policy)) as again:
            assert again.position().last_seq == store.last_seq()
    other = dataclasses.replace(policy, digest="0" * 64)
    with pytest.raises(PolicyDocumentMissing):  # valued with a policy not given: not served
        views.live_views(store, store_url, AdoptedPolicies.of(other))


def test_a_saved_state_behind_the_views_or_of_another_policy_is_not_used(
    store: LedgerStore, policy: Policy
) -> None:
    with ViewDatabase.open("sqlite:///:memory:") as database:
        first = ProjectionRunner(database, AdoptedPolicies.of(policy))
        first.follow(store, until_seq=3_000)
        resume.save(database, first.state, first.name)
        other = dataclasses.replace(policy, digest="0" * 64)
        assert ProjectionRunner(database, AdoptedPolicies.of(other)).state.last_seq == 0
        first.follow(store, until_seq=4_000)  # the views move on, the saved state does not
        restarted = ProjectionRunner(database, AdoptedPolicies.of(policy))
        assert restarted.state.last_seq == 0
        assert restarted.follow(store) == store.last_seq() - 4_000
        assert views.snapshot(database) == _project(store, policy, batch_events=5000)


def test_a_record_that_skips_ahead_is_refused(policy: Policy, entries: list[JournalEntry]) -> None:
    with ViewDatabase.open("sqlite:///:memory:") as database:
        runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
        runner.apply_records([entries[0].record])
        with pytest.raises(ProjectionGap, match="seq 3 arrived where 2 belongs"):
            runner.apply_records([entries[2].record])
        assert database.position().last_seq == 1


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.93])
def test_the_view_as_of_seq_k_equals_the_views_of_the_first_k_events(
    store: LedgerStore, policy: Policy, entries: list[JournalEntry], fraction: float
) -> None:
    k = int(len(entries) * fraction)
    with views.views_at(store, AdoptedPolicies.of(policy), k) as as_of:
        at_k = views.snapshot(as_of)
    with LedgerStore.open("sqlite:///:memory:") as truncated:
        for start in range(0, k, 1000):
            truncated.append(entries[start : min(k, start + 1000)], [], None)
        assert _project(truncated, policy, batch_events=5000) == at_k


def test_as_of_a_timestamp_is_the_last_event_recorded_at_or_before_it(
    store: LedgerStore, entries: list[JournalEntry]
) -> None:
    middle = je.decode_journal_record(entries[len(entries) // 2].record)
    seq = reporting.as_of_seq(store, middle.recorded_at)
    assert seq >= middle.seq
    assert je.decode_journal_record(entries[seq - 1].record).recorded_at == middle.recorded_at
    if seq < len(entries):
        assert je.decode_journal_record(entries[seq].record).recorded_at > middle.recorded_at
    with pytest.raises(AsOfError, match="beyond the journal"):
        reporting.as_of_seq(store, str(len(entries) + 1))
    with pytest.raises(AsOfError, match="UTC offset"):
        reporting.as_of_seq(store, "2026-11-03T00:00:00")


def _rows(store: LedgerStore, policy: Policy, table: tables.Table) -> list[dict[str, object]]:
    with views.views_at(store, AdoptedPolicies.of(policy), store.last_seq()) as database:
        return views.document(database, table)["rows"]  # type: ignore[no-any-return]  # a list of rows


def test_client_assets_tie_out_to_custody(store: LedgerStore, policy: Policy) -> None:
    rows = _rows(store, policy, tables.CLIENT_ASSETS)
    assert {row["asset"] for row in rows} >= {"USD", "BTC", "ETH"}
    for row in rows:
        assert Decimal(str(row["difference"])) == 0
        assert row["status"] == "tied"
        client, platform = (
            Decimal(str(row["client_balances"])),
            Decimal(str(row["platform_balances"])),
        )
        net = Decimal(str(row["custody_in"])) - Decimal(str(row["custody_out"]))
        assert client + platform == net == -Decimal(str(row["custody_account_balance"]))


def test_perps_long_open_interest_equals_short(store: LedgerStore, policy: Policy) -> None:
    rows = _rows(store, policy, tables.PERPS_EXPOSURE)
    assert [row["market"] for row in rows] == ["BTC-PERP", "ETH-PERP"]
    for row in rows:
        assert Decimal(str(row["long_open_interest"])) > 0
        assert row["long_open_interest"] == row["short_open_interest"]
        assert row["retail_accounts_exposed"] == 0
        assert row["check"] == "ok"


def test_every_decision_of_the_crash_recomputes_to_its_recorded_figures(
    policy: Policy, entries: list[JournalEntry]
) -> None:
    book = Book()
    triggers: dict[str, je.LiquidationTriggered] = {}
    explained: set[str] = set()
    for entry in entries:
        event = je.decode_journal_record(entry.record)
        if isinstance(event, je.LiquidationTriggered):
            triggers[event.liquidation_id] = event
        if isinstance(event, DECISION_TYPES):
            trigger = (
                triggers[event.liquidation_id]
                if isinstance(event, je.LiquidationCompleted)
                else None
            )
            explanation = explain_event(event, policy, book_before=book, trigger=trigger)
            assert explanation.consistent, (event.seq, explanation.differences)
            explained.add(explanation.type)
        book.apply(event)
    assert {
        "margin_call_issued",
        "liquidation_triggered",
        "liquidation_completed",
        "loan_drawn",
        "withdrawal_approved",
        "funding_settled",
        "interest_accrued",
    } <= explained


# -- the accounts' history: an as_of account read without a replay ---------------------

sampled_seqs = 400  # seqs compared, besides the first and the last ten


def _account_document(book: Book, policy: Policy, account_id: str) -> bytes:
    """What the API answers for the account in `book` (margin and balances), as bytes."""
    if account_id not in book.accounts:
        return b"absent"
    try:
        margin: Any = reporting.margin_view(book, policy, account_id)
    except risk.MissingMark as missing:
        margin = f"missing mark: {missing}"
    return canonical_json([margin, reporting.balances_view(book, policy, account_id)])


def compare_history_with_replay(
    store: LedgerStore,
    database: ViewDatabase,
    policy: Policy,
    seqs: set[int],
    *,
    platform: bool = False,
) -> int:
    """Replay the journal once, comparing every client's and the house's documents (with
    `platform`, a tail's: every platform account's) at each seq of `seqs` with the
    history's; returns how many documents were compared."""
    replayed, compared = Book(), 0
    accounts = sorted(a.account_id for a in reporting.book_as_of(store, None).clients())
    accounts += PLATFORM_ACCOUNTS if platform else (HOUSE,)
    for entry in store.iter_journal():
        replayed.apply(je.decode_journal_record(entry.record))
        if entry.seq not in seqs:
            continue
        assert history.covers(database, entry.seq)
        assert platform or history.covers(database, entry.seq, HOUSE)
        for account_id in accounts:
            from_history = history.book_at(database, account_id, entry.seq)
            expected = _account_document(replayed, policy, account_id)
            assert _account_document(from_history, policy, account_id) == expected, (
                entry.seq,
                account_id,
            )
            compared += 1
    return compared


def _sample_seqs(last: int, start: int) -> set[int]:
    chosen = random.Random(7).sample(range(start, last + 1), min(sampled_seqs, last - start))
    return {*chosen, *range(start, start + 10), *range(last - 9, last + 1)} - {0}


def test_history_answers_as_the_replay_does(store_url: str, policy: Policy) -> None:
    with LedgerStore.open(store_url) as store, ViewDatabase.open(store_url) as database:
        ProjectionRunner(database, AdoptedPolicies.of(policy)).follow(store, batch_events=997)
        last = store.last_seq()
        assert database.history_start() == 0
        assert compare_history_with_replay(store, database, policy, _sample_seqs(last, 1)) > 1_000


@pytest.mark.parametrize("state_saved", [True, False])
def test_history_goes_on_after_a_restart(
    store_url: str, policy: Policy, *, state_saved: bool
) -> None:
    with LedgerStore.open(store_url) as store:
        half = store.last_seq() // 2
        with ViewDatabase.open(store_url) as database:
            runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
            runner.follow(store, until_seq=half)
            if state_saved:  # resumed from it; else rebuilt in memory from seq 1 to half
                resume.save(database, runner.state, runner.name)
        with views.live_views(store, store_url, AdoptedPolicies.of(policy)) as database:
            assert database.history_start() == 0
            seqs = _sample_seqs(store.last_seq(), 1) | set(range(half - 5, half + 5))
            compare_history_with_replay(store, database, policy, seqs)


class _WithoutHistory(ViewDatabase):
    records_history = False  # views as code before the history built them


def test_a_history_begun_on_older_views_starts_where_they_stood(
    store_url: str, policy: Policy
) -> None:
    with LedgerStore.open(store_url) as store:
        third = store.last_seq() // 3
        with _WithoutHistory.open(store_url) as older:
            ProjectionRunner(older, AdoptedPolicies.of(policy)).follow(store, until_seq=third)
        with ViewDatabase.open(store_url) as database:
            assert database.history_start() is None
            ProjectionRunner(database, AdoptedPolicies.of(policy)).follow(store)
            assert database.history_start() == third
            assert not history.covers(database, third - 1)
            compare_history_with_replay(
                store, database, policy, _sample_seqs(store.last_seq(), third)
            )


def test_the_house_history_begun_on_a_history_without_it_starts_where_it_stood(
    store_url: str, policy: Policy
) -> None:
    with LedgerStore.open(store_url) as store:
        third = store.last_seq() // 3
        with ViewDatabase.open(store_url) as older:
            ProjectionRunner(older, AdoptedPolicies.of(policy)).follow(store, until_seq=third)
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as connection:
            for table in (tables.HISTORY_KEYS, tables.HISTORY_VALUES, tables.HISTORY_ACCOUNTS):
                sql = f"DELETE FROM {table.sql_name} WHERE account_id = ?"  # noqa: S608
                connection.execute(sql, (HOUSE,))  # as code before the house's history left it
            sql = f"DELETE FROM {tables.HISTORY_START.sql_name} WHERE projection != ?"  # noqa: S608
            connection.execute(sql, (DEFAULT_PROJECTION,))
        with ViewDatabase.open(store_url) as database:
            assert not history.covers(database, third, HOUSE)
            ProjectionRunner(database, AdoptedPolicies.of(policy)).follow(store)
            assert database.history_start() == 0
            assert database.history_start(history.house_start(DEFAULT_PROJECTION)) == third
            assert history.covers(database, third - 1)
            assert not history.covers(database, third - 1, HOUSE)
            assert not history.covers(database, third, FEES)
            compare_history_with_replay(
                store, database, policy, _sample_seqs(store.last_seq(), third)
            )


@pytest.mark.parametrize("interval", [500, 0])  # 0: the first day's close, a statement open
def test_a_report_as_of_before_the_stored_views_starts_from_a_kept_state(
    store_url: str,
    policy: Policy,
    entries: list[JournalEntry],
    monkeypatch: pytest.MonkeyPatch,
    interval: int,
) -> None:
    closes = [entry.seq for entry in entries if entry.type == "day_closed"]
    interval = interval or closes[0]
    monkeypatch.setattr(views, "projection_state_interval_events", interval)
    kept_at: list[int | None] = []
    kept_at_or_before = resume.kept_at_or_before

    def noted(*args: Any) -> Any:
        found = kept_at_or_before(*args)
        kept_at.append(None if found is None else found[0].last_seq)
        return found

    with LedgerStore.open(store_url) as store:
        last = store.last_seq()
        # It keeps a state every interval.
        views.live_views(store, store_url, AdoptedPolicies.of(policy)).close()
        monkeypatch.setattr(resume, "kept_at_or_before", noted)
        around = {interval - 1, interval, interval + 1, *closes, *(c + 1 for c in closes)}
        seqs = sorted({*around, *random.Random(3).sample(range(1, last), 8), last - 1} - {last})
        for seq in seqs:
            with (
                views.views_at(
                    store, AdoptedPolicies.of(policy), seq, stored_url=store_url
                ) as from_kept,
                views.views_at(store, AdoptedPolicies.of(policy), seq) as from_seq_1,
            ):
                assert views.snapshot(from_kept) == views.snapshot(from_seq_1), seq
    assert kept_at == [(seq // interval) * interval or None for seq in seqs]


def test_a_kept_state_not_of_this_journal_is_not_used(
    store_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "projection_state_interval_events", 500)
    with LedgerStore.open(store_url) as store:
        with views.live_views(store, store_url, AdoptedPolicies.of(policy)) as stored:
            found = stored.snapshot_at_or_before(1_000)
            assert found is not None
            assert found[0] == 1_000
            stored.save_snapshot(500, found[1])  # the state at 1,000 kept as if at 500
            assert resume.kept_at_or_before(stored, store, AdoptedPolicies.of(policy), 999) is None
        with (
            views.views_at(
                store, AdoptedPolicies.of(policy), 700, stored_url=store_url
            ) as from_seq_1,
            views.views_at(store, AdoptedPolicies.of(policy), 700) as expected,
        ):
            assert views.snapshot(from_seq_1) == views.snapshot(expected)


def test_scratch_views_in_memory_keep_no_history(store_url: str, policy: Policy) -> None:
    with LedgerStore.open(store_url) as store, ViewDatabase.open("sqlite:///:memory:") as scratch:
        ProjectionRunner(scratch, AdoptedPolicies.of(policy)).follow(store, until_seq=100)
        assert scratch.history_start() is None
        assert not history.covers(scratch, 50)


def _stored_views_until(store: LedgerStore, store_url: str, policy: Policy, seq: int) -> None:
    """Views stored next to the journal up to `seq`, their state saved (`ledger report`)."""
    with ViewDatabase.open(store_url) as database:
        runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
        runner.follow(store, until_seq=seq)
        resume.save(database, runner.state, runner.name)


def test_a_tail_answers_as_the_replay_does_for_every_account(
    store: LedgerStore, policy: Policy
) -> None:
    half, last = store.last_seq() // 2, store.last_seq()
    tail = HistoryTail.begin(store, half)  # from the nearest snapshot: no views needed
    assert tail is not None
    assert [tail.reaches(s) for s in (half - 1, half, last)] == [False, True, True]
    tail.book_at(store, "C1", half + 1)  # the first read follows the journal to its end
    assert tail.last_seq == last
    assert tail.database.history_start() == half
    seqs = _sample_seqs(last, half)
    assert compare_history_with_replay(store, tail.database, policy, seqs, platform=True) > 2_000
    tail.close()


def test_a_tail_begins_only_near_a_snapshot_of_this_code(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = store.snapshot_at_or_before(snapshots.CODE_DIGEST, store.last_seq())
    assert found is not None  # the writer took snapshots
    snapshot_seq = found[0]
    monkeypatch.setattr(tail_module, "tail_events_max", 10)
    tail = HistoryTail.begin(store, snapshot_seq + 10)
    assert tail is not None
    tail.close()
    # Further on, the book would be a replay of more events than the tail holds.
    assert HistoryTail.begin(store, snapshot_seq + 11) is None


@pytest.fixture
def no_replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`reporting.book_as_of` fails the test: every read must come from a history."""

    def replay(store: LedgerStore, as_of: str | None) -> Book:
        raise AssertionError(f"replayed for as_of {as_of}")

    monkeypatch.setattr(reporting, "book_as_of", replay)
    yield
    for tail in api_as_of._history_tails.values():
        tail.close()
    api_as_of._history_tails.clear()
    for views_open in api_as_of._history_views.values():
        views_open.close()
    api_as_of._history_views.clear()
    api_as_of._tails_refused.clear()
    api_as_of._last_replayed.clear()


def _replayed_margin(store: LedgerStore, policy: Policy, account_id: str, seqs: list[int]) -> Any:
    return {
        seq: reporting.margin_view(snapshots.book_at(store, seq), policy, account_id)
        for seq in seqs
    }


@pytest.mark.usefixtures("no_replay")
def test_as_of_reads_past_the_stored_views_replay_nothing(
    store_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LedgerStore.open(store_url) as store:
        third, last = store.last_seq() // 3, store.last_seq()
        seqs = [third, third + 1, (third + last) // 2, last]
        client = sorted(a.account_id for a in snapshots.book_at(store, third).clients())[0]
        replayed = _replayed_margin(store, policy, client, seqs)
        house = _replayed_margin(store, policy, HOUSE, [third - 1, *seqs])
        _stored_views_until(store, store_url, policy, third)
        monkeypatch.setitem(
            api_as_of._worker, api_as_of._OPENED, (store, adopted_policies(store), store_url)
        )
        api_as_of._follow_tail(store, store_url)  # a worker's start
        tail = api_as_of._history_tails[store_url]
        assert (tail.start, tail.last_seq) == (third, last)
        for seq in seqs:
            assert api_as_of.account_document(str(seq), client, "margin") == replayed[seq]
            assert api_as_of.account_document(str(seq), HOUSE, "margin") == house[seq]
        # Before the tail: the house from the stored history; another platform account
        # (the stored history leaves it out) replays.
        assert api_as_of.account_document(str(third - 1), HOUSE, "margin") == house[third - 1]
        with pytest.raises(AssertionError, match=f"replayed for as_of {third - 1}"):
            api_as_of.account_document(str(third - 1), FEES, "margin")
        # Views further behind than a tail holds: the tail holds the journal's latest
        # events; between the views and its start a read replays from the nearest snapshot.
        # A bound leaving seqs between the views' tail and one from `last - bound`, and a
        # snapshot within it before `last - bound` (else no tail could begin there).
        bound = (last - third) // 2 - 1
        found = store.snapshot_at_or_before(snapshots.CODE_DIGEST, last - bound)
        assert found is not None
        assert last - bound - found[0] <= bound
        monkeypatch.setattr(tail_module, "tail_events_max", bound)
        with pytest.raises(AssertionError, match=f"replayed for as_of {third + bound + 1}"):
            api_as_of.account_document(str(third + bound + 1), client, "margin")
        assert api_as_of.account_document(str(last), client, "margin") == replayed[last]
        assert api_as_of.account_document(str(last), HOUSE, "margin") == house[last]
        assert api_as_of._history_tails[store_url].start == last - bound
        # A worker starting with the views further behind begins its tail there too.
        api_as_of._history_tails.pop(store_url).close()
        api_as_of._follow_tail(store, store_url)
        tail = api_as_of._history_tails[store_url]
        assert (tail.start, tail.last_seq) == (last - bound, last)


@pytest.mark.usefixtures("no_replay")
def test_as_of_reads_without_stored_views_come_from_the_tail(
    store_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LedgerStore.open(store_url) as store:
        last = store.last_seq()
        seqs = [1, last // 2, last]
        client = sorted(a.account_id for a in snapshots.book_at(store, seqs[1]).clients())[0]
        replayed = _replayed_margin(store, policy, client, seqs[1:])
        house = _replayed_margin(store, policy, HOUSE, seqs)
        monkeypatch.setitem(
            api_as_of._worker, api_as_of._OPENED, (store, adopted_policies(store), store_url)
        )
        api_as_of._follow_tail(store, store_url)  # no views: the tail holds the journal
        assert api_as_of._history_tails[store_url].start == 1
        for seq in seqs[1:]:
            assert api_as_of.account_document(str(seq), client, "margin") == replayed[seq]
        for seq in seqs:
            assert api_as_of.account_document(str(seq), HOUSE, "margin") == house[seq]


def test_replayed_reads_move_the_last_replayed_book_forward(
    store_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LedgerStore.open(store_url) as store:
        start = store.last_seq() // 4
        far = start + 300 + snapshot_interval_events + 1
        seqs = [start, start + 700, start + 300, far, far + 5]
        house = _replayed_margin(store, policy, HOUSE, seqs)
        replays: list[str | None] = []
        replay = reporting.book_as_of

        def counted(store: LedgerStore, as_of: str | None) -> Book:
            replays.append(as_of)
            return replay(store, as_of)

        monkeypatch.setattr(reporting, "book_as_of", counted)
        monkeypatch.setattr(api_as_of, "_from_history", lambda *_: None)  # no history reaches
        monkeypatch.setitem(
            api_as_of._worker, api_as_of._OPENED, (store, adopted_policies(store), store_url)
        )
        try:
            for seq in seqs:
                assert api_as_of.account_document(str(seq), HOUSE, "margin") == house[seq]
        finally:
            api_as_of._last_replayed.clear()
        # On from the last replayed book within the snapshot interval; back, or further
        # on, a replay from the nearest snapshot.
        assert replays == [str(start), str(start + 300), str(far)]


def test_views_read_a_reversals_original_from_the_store_and_keep_no_other(
    policy: Policy,
) -> None:
    s = Scenario()
    s.perp_long()
    s.perp_buy("C1", "p2", "0.2", "61000", fee="1")
    s.send("trade_busted", trade_id="p2", reason="off-market price")
    s.send("deposit", account_id="C1", asset="USD", amount="5000", reference="bank-1")
    s.send("deposit_returned", reference="bank-1", reason="returned by the bank")
    assert [len(s.events(t)) for t in ("trade_reversed", "deposit_reversed")] == [1, 1]
    with ViewDatabase.open("sqlite:///:memory:") as database:
        runner = ProjectionRunner(database, AdoptedPolicies.of(policy))
        runner.follow(s.store)
        assert set(runner.state.book.trades) == {"p2"}  # not p1: only what was reversed
        assert set(runner.state.book.deposits) == {"bank-1"}
        records = [entry.record for entry in s.store.iter_journal()]
        # An exported journal has no store behind it: its book keeps every original.
        with views.views_from_records(records, AdoptedPolicies.of(policy), 3) as exported:
            assert views.snapshot(database) == views.snapshot(exported)
