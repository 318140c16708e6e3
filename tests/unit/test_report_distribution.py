"""The HTML report's margin-level distribution: an account called or liquidated during an
interval counts in that band, the samples run in time order, and the last one (the
period's end) agrees with the margin-clients view."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal

from app import html_report
from ledger import journal_events as je
from ledger.journal import JournalEntry
from ledger.policy import Policy
from ledger.store import LedgerStore
from tests.unit.test_projections import entries, journal_db, policy  # the simulated journal

__all__ = ["entries", "journal_db", "policy"]  # fixtures used below
LIQUIDATING = html_report.BAND_LABELS.index("liquidating")
MARGIN_CALL = html_report.BAND_LABELS.index("margin call")


def _interval_end(at: datetime) -> datetime:
    return html_report._floor(at, html_report.SAMPLE_INTERVAL) + html_report.SAMPLE_INTERVAL


def test_liquidated_accounts_count_in_their_interval(
    entries: list[JournalEntry], policy: Policy
) -> None:
    facts = html_report.collect_facts(entries, policy)
    liquidated: defaultdict[datetime, set[str]] = defaultdict(set)
    for entry in entries:
        event = je.decode_journal_record(entry.record)
        if isinstance(event, je.LiquidationTriggered):
            at = html_report.parse_moment(event.recorded_at)
            liquidated[_interval_end(at)].add(event.account_id or "")
    assert liquidated, "the simulated crash liquidates"
    by_end = {sample.at: sample for sample in facts.samples}
    for end, accounts in liquidated.items():
        if end in by_end:  # not the period's end, which shows the state then
            assert by_end[end].bands[LIQUIDATING] == len(accounts), end
    assert any(s.bands[MARGIN_CALL] > 0 for s in facts.samples)


def test_samples_run_in_time_order_and_end_on_the_views(
    entries: list[JournalEntry], policy: Policy, journal_db: object
) -> None:
    facts = html_report.collect_facts(entries, policy)
    moments = [sample.at for sample in facts.samples]
    assert moments == sorted(set(moments))
    last = facts.samples[-1]
    assert last.at == html_report.parse_moment(
        je.decode_journal_record(entries[-1].record).recorded_at
    )
    with LedgerStore.open(f"sqlite:///{journal_db}") as store:
        views = html_report.projection_views(store, policy, len(entries))
    statuses = Counter(str(row["status"]) for row in views["margin-clients"])
    assert last.bands[LIQUIDATING] == statuses["liquidating"]
    assert last.bands[MARGIN_CALL] == statuses["margin_call"]


def test_round_axis_steps() -> None:
    assert html_report._round_step(Decimal(100), 4) == Decimal(50)
    assert html_report._round_step(Decimal(23456), 5) == Decimal(5000)
    assert html_report._round_step(Decimal(37), 4) == Decimal(10)
    assert html_report._round_step(Decimal("0.9"), 4) == Decimal("0.5")
