"""The risk officer's report: one self-contained HTML file with inline SVG charts.

One pass over the journal (`collect_facts`) replays a `Book` and notes what a risk officer
looks at: the BTC mark, every margin call and liquidation with its insurance-fund draw and
bad debt, and every half hour the distribution of client margin levels. `render_report`
draws that as SVG built here (no script, no network, no font download) with the
regulatory views of `projections/` as tables. The same facts feed `ledger demo`'s printed
summary.

Every figure is a `Decimal`; chart coordinates too (one decimal place of a pixel).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from app import stress_output
from ledger import journal_events as je
from ledger import risk, stress
from ledger.adopted_policies import AdoptedPolicies
from ledger.book import LIQUIDATION, Account, Book
from ledger.journal import JournalEntry
from ledger.money import DECIMAL_CONTEXT, USD_SCALE, ZERO, Rounding, format_decimal, quantize
from ledger.policy import Policy
from ledger.rejections import decode_reject_record
from ledger.store import LedgerStore
from projections.figures import ScaleOf, readable
from projections.tables import TABLES_BY_VIEW
from projections.views import document, views_at

SAMPLE_INTERVAL = timedelta(minutes=30)
MARK_INSTRUMENT = "BTC"
# Margin level bands of the distribution chart, lowest first: (label, lower bound, colour).
HEALTHY_BANDS: tuple[tuple[str, Decimal, str], ...] = (
    ("1.00-1.25", Decimal("1.00"), "#f2c14e"),
    ("1.25-1.50", Decimal("1.25"), "#c9d86a"),
    ("1.50-2.00", Decimal("1.50"), "#8cc17a"),
    (">= 2.00", Decimal("2.00"), "#3f8f5f"),
)
MARGIN_CALL_COLOUR = "#e07b39"
LIQUIDATING_COLOUR = "#c0392b"
BAND_LABELS = ("liquidating", "margin call", *(band[0] for band in HEALTHY_BANDS))
BAND_COLOURS = (LIQUIDATING_COLOUR, MARGIN_CALL_COLOUR, *(band[2] for band in HEALTHY_BANDS))
# Upper bounds 5%, 10%, ... 60%: the demonstration policy lends at most 30% of BTC's value
# and liquidates a BTC-only account near 50%, so finer buckets below 60% say more.
LTV_BUCKET_EDGES = tuple(Decimal(n) / 100 for n in range(5, 65, 5))
LTV_BUCKET_LABELS = (*(f"<{int(e * 100)}%" for e in LTV_BUCKET_EDGES), ">=60%")
CRASH_LOOKBACK = timedelta(hours=12)  # "before the fall": BTC's high in this window before its low
TABLE_ROWS_MAX = 40  # rows of a view shown in the report; the API returns them all
# The report's stress ladder: the demo's crash assets falling together (docs/risk-tools.md).
REPORT_LADDER = "BTC=-5%..-60%,ETH=-5%..-60%"
REPORT_LADDER_STEP_PERCENT = Decimal(5)


@dataclass
class MarginCallRow:
    call_id: str
    account_id: str
    issued_at: str
    amount: Decimal
    deadline: str
    outcome: str = "open"  # "met" or "liquidated" once cleared
    cleared_at: str | None = None


@dataclass
class LiquidationRow:
    liquidation_id: str
    account_id: str
    triggered_at: str
    trigger: str
    equity_before: Decimal
    btc_mark: Decimal | None
    steps: int = 0
    closed_notional: Decimal = ZERO
    realized_pnl: Decimal = ZERO  # the positions closed
    collateral_sold: Decimal = ZERO
    insurance_drawn: Decimal = ZERO
    auto_deleveraged: Decimal = ZERO
    bad_debt: Decimal = ZERO
    fills: int = 0  # the venue's executions of the liquidation
    fills_paid_to_fund: Decimal = ZERO  # their gains, paid into the insurance fund
    fills_drawn_from_fund: Decimal = ZERO  # their losses, drawn from it


@dataclass(frozen=True)
class MarginSample:
    """Client accounts per margin level band (`BAND_LABELS` order) and per LTV bucket
    (`LTV_BUCKET_LABELS` order, borrowers only) at one moment."""

    at: datetime
    bands: tuple[int, ...]
    ltv: tuple[int, ...]


@dataclass
class JournalFacts:
    book: Book = field(default_factory=Book)
    type_counts: Counter[str] = field(default_factory=Counter)
    marks: list[tuple[datetime, Decimal]] = field(default_factory=list)
    samples: list[MarginSample] = field(default_factory=list)
    margin_calls: dict[str, MarginCallRow] = field(default_factory=dict)
    liquidations: dict[str, LiquidationRow] = field(default_factory=dict)
    # Accounts called or liquidated since the last sample: a liquidation restores an
    # account within its decision, so the state at a sample moment alone would miss it.
    called_since_sample: set[str] = field(default_factory=set)
    liquidated_since_sample: set[str] = field(default_factory=set)
    # The money model's own figures: client debits drawn on loans, margin decisions that
    # waited for fresh marks, marks that jumped past the policy's alert move, corrections.
    debits_financed: Decimal = ZERO
    stale_mark_waits: int = 0
    mark_alerts: int = 0


def parse_moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def collect_facts(
    entries: Iterable[JournalEntry],
    policy: Policy,
    until: int | datetime | None = None,
    sample_interval: timedelta | None = SAMPLE_INTERVAL,
) -> JournalFacts:
    """Replay `entries` (up to seq or time `until`) and note what the report shows.

    With a `sample_interval`, the margin level distribution is sampled at every multiple
    of it, from the state right before the first event at or after that moment, counting
    an account called or liquidated during the interval in that band; a last sample at the
    period's end (the last event) is the state then, as the views show it.
    """
    facts = JournalFacts()
    next_sample: datetime | None = None
    last_at = datetime.min.replace(tzinfo=UTC)
    for entry in entries:
        event = je.decode_journal_record(entry.record)
        at = parse_moment(event.recorded_at)
        if (isinstance(until, int) and event.seq > until) or (
            isinstance(until, datetime) and at > until
        ):
            break
        if sample_interval is not None:
            if next_sample is None:
                next_sample = _floor(at, sample_interval) + sample_interval
            while at >= next_sample:
                facts.samples.append(_interval_sample(facts, policy, next_sample))
                next_sample += sample_interval
        facts.book.apply(event)
        facts.type_counts[entry.type] += 1
        _note(facts, event, at)
        _note_money_model(facts, event)
        last_at = at
    if sample_interval is not None and facts.samples and last_at > facts.samples[-1].at:
        facts.samples.append(sample_margin_levels(facts.book, policy, last_at))
    return facts


def _interval_sample(facts: JournalFacts, policy: Policy, at: datetime) -> MarginSample:
    sample = sample_margin_levels(
        facts.book, policy, at, facts.called_since_sample, facts.liquidated_since_sample
    )
    facts.called_since_sample.clear()
    facts.liquidated_since_sample.clear()
    return sample


def _floor(moment: datetime, interval: timedelta) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + ((moment - day) // interval) * interval


def _note_money_model(facts: JournalFacts, event: je.JournalEventType) -> None:
    match event:
        case je.MarkPriceApplied() if event.alert:
            facts.mark_alerts += 1
        case je.DebitFinanced():
            facts.debits_financed += event.amount
        case je.MarginDecisionWaiting() if event.stale_marks:
            facts.stale_mark_waits += 1
        case _:
            pass


def _note(facts: JournalFacts, event: je.JournalEventType, at: datetime) -> None:
    match event:
        case je.MarkPriceApplied(instrument=instrument) if instrument == MARK_INSTRUMENT:
            facts.marks.append((at, event.price))
        case je.MarginCallIssued():
            facts.called_since_sample.add(event.account_id or "")
            facts.margin_calls[event.call_id] = MarginCallRow(
                call_id=event.call_id,
                account_id=event.account_id or "",
                issued_at=event.recorded_at,
                amount=event.amount,
                deadline=event.deadline,
            )
        case je.MarginCallCleared():
            call = facts.margin_calls[event.call_id]
            call.outcome, call.cleared_at = event.outcome, event.recorded_at
        case je.LiquidationTriggered():
            facts.liquidated_since_sample.add(event.account_id or "")
            facts.liquidations[event.liquidation_id] = LiquidationRow(
                liquidation_id=event.liquidation_id,
                account_id=event.account_id or "",
                triggered_at=event.recorded_at,
                trigger=event.trigger,
                equity_before=event.inputs.figures.equity,
                btc_mark=facts.book.marks.get(MARK_INSTRUMENT),
            )
        case je.LiquidationCompleted():
            _note_steps(facts.liquidations[event.liquidation_id], event.steps)
        case je.LiquidationFilled():
            row = facts.liquidations[event.liquidation_id]
            row.fills += 1
            row.fills_paid_to_fund += event.insurance_fund_paid
        case je.InsuranceFundDrawn() if event.account_id == LIQUIDATION:
            facts.liquidations[event.liquidation_id].fills_drawn_from_fund += event.amount
        case je.InsuranceFundDrawn():
            facts.liquidations[event.liquidation_id].insurance_drawn += event.amount
        case je.AutoDeleveraged():
            facts.liquidations[event.liquidation_id].auto_deleveraged += event.absorbed
        case je.BadDebtRecorded():
            row = facts.liquidations[event.liquidation_id]
            row.bad_debt += event.loan_written_off + event.cash_written_off
        case _:
            pass


def _note_steps(row: LiquidationRow, steps: Sequence[je.LiquidationStep]) -> None:
    row.steps += len(steps)
    for step in steps:
        if step.kind == "close_position":
            row.closed_notional += abs(step.quantity) * step.price
            row.realized_pnl += step.proceeds
        elif step.kind == "sell_collateral":
            row.collateral_sold += step.proceeds


def client_figures(book: Book, policy: Policy) -> list[tuple[Account, risk.MarginFigures]]:
    """Every client account that can be valued now, with its figures, in account order."""
    valued = []
    for account in sorted(book.clients(), key=lambda a: a.account_id):
        try:
            figures = risk.margin_figures(account.holdings(), book.marks, policy)
        except risk.MissingMark:
            continue
        valued.append((account, figures))
    return valued


def margin_band(figures: risk.MarginFigures) -> int | None:
    """The index in `BAND_LABELS` of an account's margin level; None without a requirement."""
    if figures.status is risk.MarginStatus.LIQUIDATING:
        return 0
    if figures.status is risk.MarginStatus.MARGIN_CALL:
        return 1
    level = figures.margin_level
    if level is None:
        return None
    band = 0
    for index, (_, lower, _) in enumerate(HEALTHY_BANDS):
        if level >= lower:
            band = index
    return 2 + band


def ltv_bucket(ltv: Decimal) -> int:
    """The index in `LTV_BUCKET_LABELS` of a loan-to-value ratio."""
    for index, edge in enumerate(LTV_BUCKET_EDGES):
        if ltv < edge:
            return index
    return len(LTV_BUCKET_EDGES)


def sample_margin_levels(
    book: Book,
    policy: Policy,
    at: datetime,
    called: Set[str] = frozenset(),
    liquidated: Set[str] = frozenset(),
) -> MarginSample:
    """Client accounts per band at `at`: liquidating if in `liquidated`, else under a margin
    call if in `called` or called now, else the band of its margin level now."""
    bands = [0] * len(BAND_LABELS)
    ltv = [0] * len(LTV_BUCKET_LABELS)
    for account, figures in client_figures(book, policy):
        band = margin_band(figures)
        if account.account_id in liquidated:
            band = 0
        elif account.account_id in called and band != 0:
            band = 1
        if band is not None:
            bands[band] += 1
        if figures.ltv is not None and figures.loan > 0:
            ltv[ltv_bucket(figures.ltv)] += 1
    return MarginSample(at=at, bands=tuple(bands), ltv=tuple(ltv))


# -- the summary -------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The figures `ledger demo` prints and the report shows first."""

    accounts: int
    professional_accounts: int
    borrowers: int
    loans_outstanding: Decimal
    open_interest: dict[str, Decimal]  # market -> long size, all accounts
    open_interest_usd: dict[str, Decimal]  # market -> long size at the market's mark
    margin_calls_issued: int
    margin_calls_met: int
    margin_calls_liquidated: int
    margin_calls_open: int
    liquidations: int
    insurance_drawn: Decimal
    auto_deleveraged: Decimal
    bad_debt: Decimal
    venue_fills: int
    fills_paid_to_fund: Decimal
    fills_drawn_from_fund: Decimal
    liquidation_positions: dict[str, Decimal]  # market -> the liquidation account's size
    lots_to_execute: int  # liquidation lots the venue has not fully executed
    debits_financed: int  # client debits beyond cash drawn on margin loans
    debits_financed_usd: Decimal
    client_usd_below_zero: Decimal  # the sum of negative client USD balances: 0
    stale_mark_waits: int  # margin decisions that waited for fresh marks
    mark_alerts: int
    trades_busted: int
    deposits_returned: int
    rejects_by_reason: dict[str, int]
    journal_seq: int
    journal_events: int
    last_hash: str
    first_at: str
    last_at: str
    # The first move of the report's stress ladder at which the insurance fund is exhausted.
    insurance_fund_exhausted_at: str | None


def summarise(
    facts: JournalFacts, rejects_by_reason: Mapping[str, int], ladder: Mapping[str, Any]
) -> Summary:
    book = facts.book
    clients = book.clients()
    calls = list(facts.margin_calls.values())
    liquidations = list(facts.liquidations.values())
    open_interest: dict[str, Decimal] = {}
    for account in book.accounts.values():
        for market, position in account.positions.items():
            long_size = position.size if position.size > 0 else ZERO
            open_interest[market] = open_interest.get(market, ZERO) + long_size
    return Summary(
        accounts=len(clients),
        professional_accounts=sum(1 for a in clients if a.investor_class == "professional"),
        borrowers=sum(1 for a in clients if a.loan > 0),
        loans_outstanding=sum((a.loan for a in clients), ZERO),
        open_interest=dict(sorted(open_interest.items())),
        open_interest_usd={
            m: size * book.marks.get(m, ZERO) for m, size in sorted(open_interest.items())
        },
        margin_calls_issued=len(calls),
        margin_calls_met=sum(1 for c in calls if c.outcome == "met"),
        margin_calls_liquidated=sum(1 for c in calls if c.outcome == "liquidated"),
        margin_calls_open=sum(1 for c in calls if c.outcome == "open"),
        liquidations=len(liquidations),
        insurance_drawn=sum((r.insurance_drawn for r in liquidations), ZERO),
        auto_deleveraged=sum((r.auto_deleveraged for r in liquidations), ZERO),
        bad_debt=sum((r.bad_debt for r in liquidations), ZERO),
        venue_fills=sum(r.fills for r in liquidations),
        fills_paid_to_fund=sum((r.fills_paid_to_fund for r in liquidations), ZERO),
        fills_drawn_from_fund=sum((r.fills_drawn_from_fund for r in liquidations), ZERO),
        liquidation_positions={
            m: p.size for m, p in sorted(book.accounts[LIQUIDATION].positions.items())
        },
        lots_to_execute=sum(1 for lot in book.lots() if lot.remaining),
        debits_financed=facts.type_counts["debit_financed"],
        debits_financed_usd=facts.debits_financed,
        client_usd_below_zero=sum((min(a.balance("USD"), ZERO) for a in clients), ZERO),
        stale_mark_waits=facts.stale_mark_waits,
        mark_alerts=facts.mark_alerts,
        trades_busted=facts.type_counts["trade_reversed"],
        deposits_returned=facts.type_counts["deposit_reversed"],
        rejects_by_reason=dict(sorted(rejects_by_reason.items())),
        journal_seq=book.last_seq,
        journal_events=sum(facts.type_counts.values()),
        last_hash=book.last_hash,
        first_at=_text_at(facts.marks[0][0]) if facts.marks else "",
        last_at=_text_at(facts.marks[-1][0]) if facts.marks else "",
        insurance_fund_exhausted_at=ladder["insurance_fund_exhausted_at"],
    )


def _text_at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def usd(amount: Decimal) -> str:
    """A USD figure for people: rounded to cents, thousands separated."""
    return f"{quantize(amount, USD_SCALE):,}"


# -- the regulatory views (from projections/, as `ledger report VIEW` shows them) ----

Row = dict[str, str | int | None]
# The views the report shows, with the columns a page has room for (the API has them all).
REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "margin-clients": (
        "account_id",
        "investor_class",
        "equity",
        "loan",
        "ltv",
        "maintenance_requirement",
        "margin_level",
        "status",
        "call_amount",
        "call_trigger",  # why: a limit call stands beside a healthy status
        "call_age_hours",
    ),
    "margin-calls": (
        "account_id",
        "issued_at",
        "amount",
        "trigger",
        "deadline",
        "equity_at_issue",
        "maintenance_requirement_at_issue",
        "outcome",
        "closed_at",
    ),
    "liquidations": (
        "liquidation_id",  # replaced by the realised PnL and sales of the liquidation
        "account_id",
        "triggered_at",
        "trigger",
        "equity",
        "loan",
        "closed_notional",
        "fees",
        "equity_after",
        "status_after",
        "insurance_fund_drawn",
        "auto_deleveraged",
        "bad_debt_loan",
        "bad_debt_cash",
        "fills",
        "fills_paid_to_fund",
    ),
    "collateral-concentration": (),
    "perps-exposure": (
        "market",
        "mark_price",
        "long_open_interest",
        "short_open_interest",
        "client_long",
        "client_short",
        "platform_long",
        "platform_short",
        "long_accounts",
        "short_accounts",
        "funding_paid",
        "funding_received",
        "check",
    ),
    "platform-exposure": (),
    "stale-marks": (),
    "client-assets": (),
    "lending-limits": (),
}


def projection_views(store: LedgerStore, policy: Policy, seq: int) -> dict[str, list[Row]]:
    """The report's views right after journal position `seq`, built by projections/."""
    database = views_at(store, AdoptedPolicies.of(policy), seq)  # the demo's one policy
    try:
        views = {}
        for name, columns in REPORT_COLUMNS.items():
            rows = document(database, TABLES_BY_VIEW[name])["rows"]
            views[name] = [{c: row[c] for c in columns or row} for row in rows]
    finally:
        database.close()
    views["margin-clients"].sort(key=_weakest_first)
    return views


def _weakest_first(row: Row) -> tuple[bool, Decimal, str]:
    level = row.get("margin_level")
    return (
        level is None,
        Decimal(str(level)) if level is not None else ZERO,
        str(row["account_id"]),
    )


# -- drawing ------------------------------------------------------------------------

CHART_WIDTH = 1300
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 80, 1280, 20, 40  # margins in pixels
MARK_POINTS_MAX = 1_500  # points of the mark line; the crash minutes are always kept
PIXEL_SCALE = 1  # SVG coordinates to a tenth of a pixel


@dataclass(frozen=True)
class Scale:
    """A linear map from a value range onto a pixel range (either may run backwards)."""

    low: Decimal
    high: Decimal
    start: Decimal
    end: Decimal

    def __call__(self, value: Decimal) -> Decimal:
        span = self.high - self.low
        if span.is_zero():
            return (self.start + self.end) / 2
        return self.start + (value - self.low) * (self.end - self.start) / span


def px(value: Decimal) -> str:
    return format_decimal(quantize(value, PIXEL_SCALE))


def _seconds(moment: datetime, origin: datetime) -> Decimal:
    return Decimal((moment - origin) // timedelta(seconds=1))


def _time_scale(first: datetime, last: datetime) -> Scale:
    return Scale(ZERO, _seconds(last, first), Decimal(PLOT_LEFT), Decimal(PLOT_RIGHT))


def _time_ticks(first: datetime, last: datetime, x: Scale, height: int) -> list[str]:
    """A vertical grid line and a label every 12 hours of the ledger clock."""
    parts = []
    tick = _floor(first, timedelta(hours=12)) + timedelta(hours=12)
    while tick < last:
        left = px(x(_seconds(tick, first)))
        label = tick.strftime("%d %b %H:%M")
        parts.append(
            f'<line x1="{left}" y1="{PLOT_TOP}" x2="{left}" y2="{height - PLOT_BOTTOM}" '
            'class="grid"/>'
            f'<text x="{left}" y="{height - PLOT_BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{label}</text>'
        )
        tick += timedelta(hours=12)
    return parts


def _round_step(span: Decimal, count: int) -> Decimal:
    """The round step (1, 2 or 5 times a power of ten) that cuts `span` into about `count`."""
    raw = span / count
    power = Decimal(1).scaleb(raw.adjusted())
    return next(power * factor for factor in (1, 2, 5, 10) if raw <= power * factor)


def _places(step: Decimal) -> int:
    """The decimal places a round step needs (0 for 1, 10, 20 ...; 1 for 0.5 ...)."""
    exponent = step.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _value_ticks(y: Scale, count: int, label: str, unit: str) -> list[str]:
    """Grid lines at round values between the scale's ends, and the axis's unit on top."""
    parts = [f'<text x="{PLOT_LEFT}" y="{PLOT_TOP - 6}" class="tick axis-unit">{unit}</text>']
    if y.high <= y.low:
        return parts
    step = _round_step(y.high - y.low, count)
    value = quantize(y.low / step, 0, Rounding.CEILING) * step
    while value <= y.high:
        top = px(y(value))
        shown = quantize(value, _places(step))
        parts.append(
            f'<line x1="{PLOT_LEFT}" y1="{top}" x2="{PLOT_RIGHT}" y2="{top}" class="grid"/>'
            f'<text x="{PLOT_LEFT - 6}" y="{top}" class="tick" text-anchor="end" '
            f'dominant-baseline="middle">{shown:,}{label}</text>'
        )
        value += step
    return parts


def _thin(marks: Sequence[tuple[datetime, Decimal]]) -> list[tuple[datetime, Decimal]]:
    """At most about MARK_POINTS_MAX points: the first, last, lowest and highest of each run."""
    step = max(1, -(-len(marks) // (MARK_POINTS_MAX // 2)))
    kept: list[tuple[datetime, Decimal]] = []
    for start in range(0, len(marks), step):
        run = marks[start : start + step]
        extremes = {min(run, key=lambda m: m[1]), max(run, key=lambda m: m[1])}
        kept.extend(sorted(extremes))
    if marks and kept[-1] != marks[-1]:
        kept.append(marks[-1])
    return kept


def _mark_at(marks: Sequence[tuple[datetime, Decimal]], moment: datetime) -> Decimal | None:
    """The last mark at or before `moment` (marks are in time order)."""
    low, high = 0, len(marks)
    while low < high:
        middle = (low + high) // 2
        if marks[middle][0] <= moment:
            low = middle + 1
        else:
            high = middle
    return marks[low - 1][1] if low else None


def _group_by_minute(moments: Iterable[str]) -> list[tuple[datetime, int]]:
    counts: Counter[datetime] = Counter()
    for text in moments:
        counts[parse_moment(text).replace(second=0, microsecond=0)] += 1
    return sorted(counts.items())


def _marker_radius(count: int) -> Decimal:
    return Decimal(3) + Decimal(count).sqrt(DECIMAL_CONTEXT) * Decimal("1.6")


def mark_chart(facts: JournalFacts) -> str:
    """The BTC mark over time, margin calls (orange) and liquidations (red) on it."""
    height = 420
    marks = facts.marks
    if not marks:
        return '<p class="empty">No BTC mark in the journal.</p>'
    first, last = marks[0][0], marks[-1][0]
    x = _time_scale(first, last)
    low, high = min(m[1] for m in marks), max(m[1] for m in marks)
    pad = (high - low) / 10 or Decimal(1)
    y = Scale(low - pad, high + pad, Decimal(height - PLOT_BOTTOM), Decimal(PLOT_TOP))
    points = " ".join(f"{px(x(_seconds(t, first)))},{px(y(p))}" for t, p in _thin(marks))
    parts = [*_value_ticks(y, 5, "", "USD per BTC"), *_time_ticks(first, last, x, height)]
    parts.append(f'<polyline class="mark-line" points="{points}" data-points="{len(marks)}"/>')
    layers = (
        ("margin-call", [c.issued_at for c in facts.margin_calls.values()], "margin calls"),
        ("liquidation", [r.triggered_at for r in facts.liquidations.values()], "liquidations"),
    )
    for kind, moments, noun in layers:
        for moment, count in _group_by_minute(moments):
            mark = _mark_at(marks, moment + timedelta(minutes=1))
            if mark is None:
                continue
            parts.append(
                f'<circle class="marker {kind}" cx="{px(x(_seconds(moment, first)))}" '
                f'cy="{px(y(mark))}" r="{px(_marker_radius(count))}" data-count="{count}" '
                f'data-at="{moment.isoformat()}"><title>{count} {noun} at '
                f"{_text_at(moment)}, BTC {usd(mark)}</title></circle>"
            )
    return _svg("btc-mark", height, parts)


def _svg(name: str, height: int, parts: Sequence[str]) -> str:
    return (
        f'<svg data-chart="{name}" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        + "".join(parts)
        + "</svg>"
    )


def margin_level_chart(facts: JournalFacts) -> str:
    """Stacked bars: the share of client accounts in each margin level band over time."""
    height = 340
    samples = facts.samples
    if len(samples) < 2:
        return '<p class="empty">Too short a journal for a distribution over time.</p>'
    # Each bar covers the interval that ends at its sample.
    first, last = samples[0].at - SAMPLE_INTERVAL, samples[-1].at
    x = _time_scale(first, last)
    y = Scale(ZERO, Decimal(100), Decimal(height - PLOT_BOTTOM), Decimal(PLOT_TOP))
    parts = [
        *_value_ticks(y, 4, "%", "share of client accounts"),
        *_time_ticks(first, last, x, height),
    ]
    begin = first
    for sample in samples:
        total = sum(sample.bands)
        left = x(_seconds(begin, first))
        width = x(_seconds(sample.at, first)) - left - Decimal("0.5")
        begin = sample.at
        if total == 0:
            continue
        below = ZERO
        for band, count in enumerate(sample.bands):
            if count == 0:
                continue
            share = Decimal(100 * count) / total
            top = y(below + share)
            parts.append(
                f'<rect class="band" x="{px(left)}" y="{px(top)}" width="{px(width)}" '
                f'height="{px(y(below) - top)}" fill="{BAND_COLOURS[band]}" '
                f'data-band="{BAND_LABELS[band]}" data-count="{count}">'
                f"<title>{_text_at(sample.at)}: {count} of {total} accounts "
                f"{BAND_LABELS[band]}</title></rect>"
            )
            below += share
    return _svg("margin-levels", height, parts)


def _sample_at(samples: Sequence[MarginSample], moment: datetime) -> MarginSample:
    return next((s for s in samples if s.at >= moment), samples[-1])


def ltv_series(facts: JournalFacts) -> list[tuple[str, str, MarginSample]]:
    """Before the crash (BTC's high before its low), at BTC's low, and at the end."""
    samples, marks = facts.samples, facts.marks
    if not samples or not marks:
        return []
    low_at, low = min(marks, key=lambda m: (m[1], m[0]))
    before = [m for m in marks if low_at - CRASH_LOOKBACK <= m[0] <= low_at]
    high_at, high = max(before, key=lambda m: (m[1], m[0]))
    return [
        (f"before the fall (BTC {usd(high)})", "#6c8ebf", _sample_at(samples, high_at)),
        (f"at BTC's low ({usd(low)})", LIQUIDATING_COLOUR, _sample_at(samples, low_at)),
        ("at the end", "#444444", samples[-1]),
    ]


def ltv_chart(facts: JournalFacts) -> str:
    """Grouped bars: borrowers per LTV bucket before the fall, at the low, and now."""
    height = 320
    series = ltv_series(facts)
    if not series:
        return '<p class="empty">No borrowers to show.</p>'
    most = max(max(sample.ltv) for _, _, sample in series) or 1
    y = Scale(ZERO, Decimal(most), Decimal(height - PLOT_BOTTOM), Decimal(PLOT_TOP))
    slot = Decimal(PLOT_RIGHT - PLOT_LEFT) / len(LTV_BUCKET_LABELS)
    bar = (slot - 12) / len(series)
    parts = _value_ticks(y, 4, "", "borrowers")
    for bucket, label in enumerate(LTV_BUCKET_LABELS):
        left = PLOT_LEFT + slot * bucket + 6
        parts.append(
            f'<text x="{px(left + slot / 2 - 6)}" y="{height - PLOT_BOTTOM + 16}" '
            f'class="tick" text-anchor="middle">{html.escape(label)}</text>'
        )
        for index, (name, colour, sample) in enumerate(series):
            count = sample.ltv[bucket]
            top = y(Decimal(count))
            parts.append(
                f'<rect class="ltv-bar" x="{px(left + bar * index)}" y="{px(top)}" '
                f'width="{px(bar - 1)}" height="{px(y(ZERO) - top)}" fill="{colour}" '
                f'data-series="{index}" data-bucket="{html.escape(label)}" '
                f'data-count="{count}"><title>{html.escape(name)}: {count} borrowers, LTV '
                f"{html.escape(label)}</title></rect>"
            )
    return _svg("ltv", height, parts)


# -- the page -----------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px 40px;color:#222}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}
.sub{color:#666;margin:0 0 16px}.sub code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.card.alert b{color:#c0392b}
svg{display:block;max-width:100%;height:auto;background:#fcfcfc;border:1px solid #eee}
.grid{stroke:#e6e6e6;stroke-width:1}.tick{font-size:11px;fill:#777}
.mark-line{fill:none;stroke:#1f4e79;stroke-width:1.5}
.marker.margin-call{fill:#e07b39;fill-opacity:.75;stroke:#fff}
.marker.liquidation{fill:#c0392b;fill-opacity:.8;stroke:#fff}
.legend{margin:4px 0 6px;font-size:12px;color:#444}
.legend i{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:-1px}
table{border-collapse:collapse;font-size:12px;margin-top:4px}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.note{color:#777;font-size:12px}.scroll{overflow-x:auto;max-width:100%}
.breaches{color:#c0392b;margin:8px 0}
"""


def _card(name: str, label: str, value: str, alert: bool = False) -> str:
    return (
        f'<div class="card{" alert" if alert else ""}"><b data-figure="{name}">'
        f"{html.escape(value)}</b><span>{html.escape(label)}</span></div>"
    )


def open_interest_text(summary: Summary) -> str:
    """`BTC-PERP 1,671.70 (94,352,123.12 USD), ...`: long contracts, and their value."""
    return (
        ", ".join(
            f"{m} {quantize(size, 2):,} ({usd(summary.open_interest_usd[m])} USD)"
            for m, size in summary.open_interest.items()
        )
        or "none"
    )


# The views whose rows are limits, each with the column that names a row: a row whose
# `status` is none of `within`, `no_limit`, `covered` is a breach the report flags.
LIMIT_VIEWS = {"collateral-concentration": "asset", "lending-limits": "item"}
WITHIN_LIMIT = frozenset({"within", "no_limit", "covered", None})


def limit_breaches(views: Mapping[str, Sequence[Row]]) -> list[str]:
    """`view: row (account) status` for each limit the views show exceeded, in view order."""
    breaches = []
    for view, key in LIMIT_VIEWS.items():
        for row in views[view]:
            if row["status"] not in WITHIN_LIMIT:
                account = row.get("account_id") or row.get("largest_client")
                named = f"{row[key]} ({account})" if account else f"{row[key]}"
                breaches.append(f"{view}: {named} {row['status']}")
    return breaches


def breaches_list(breaches: Sequence[str]) -> str:
    if not breaches:
        return ""
    items = "".join(f"<li>{html.escape(breach)}</li>" for breach in breaches)
    return f'<ul class="breaches" data-figure="breaches">{items}</ul>'


def summary_cards(summary: Summary, breaches: Sequence[str]) -> str:
    open_interest = open_interest_text(summary)
    cards = [
        _card("accounts", "client accounts", f"{summary.accounts:,}"),
        _card(
            "loans_outstanding", "margin loans outstanding (USD)", usd(summary.loans_outstanding)
        ),
        _card("borrowers", "borrowers", f"{summary.borrowers:,}"),
        _card("open_interest", "open interest: long contracts (USD at the mark)", open_interest),
        _card("margin_calls_issued", "margin calls issued", f"{summary.margin_calls_issued:,}"),
        _card("margin_calls_met", "margin calls met", f"{summary.margin_calls_met:,}"),
        _card(
            "liquidations", "liquidations", f"{summary.liquidations:,}", summary.liquidations > 0
        ),
        _card("insurance_drawn", "insurance fund drawn (USD)", usd(summary.insurance_drawn)),
        _card("bad_debt", "bad debt (USD)", usd(summary.bad_debt), summary.bad_debt > 0),
        _card("venue_fills", "venue fills of liquidations", f"{summary.venue_fills:,}"),
        _card(
            "fills_to_fund",
            "fills' results to the fund (USD)",
            f"+{usd(summary.fills_paid_to_fund)} / -{usd(summary.fills_drawn_from_fund)}",
        ),
        _card(
            "lots_to_execute",
            "liquidation lots left to execute",
            f"{summary.lots_to_execute:,}",
            summary.lots_to_execute > 0,
        ),
        _card(
            "debits_financed",
            "client debits beyond cash drawn on margin loans (USD)",
            f"{summary.debits_financed:,}: {usd(summary.debits_financed_usd)}",
        ),
        _card(
            "client_usd_below_zero",
            "client USD below zero",
            usd(summary.client_usd_below_zero),
            summary.client_usd_below_zero < 0,
        ),
        _card(
            "stale_mark_waits",
            "margin decisions that waited for fresh marks",
            f"{summary.stale_mark_waits:,}",
        ),
        _card("mark_alerts", "marks beyond the alert move", f"{summary.mark_alerts:,}"),
        _card(
            "corrections",
            "busted trades / returned deposits reversed",
            f"{summary.trades_busted:,} / {summary.deposits_returned:,}",
        ),
        _card("rejects", "inputs refused", f"{sum(summary.rejects_by_reason.values()):,}"),
        _card(
            "limit_breaches",
            "concentration and lending limits exceeded",
            f"{len(breaches):,}",
            bool(breaches),
        ),
        _card("journal_seq", "journal seq", f"{summary.journal_seq}"),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<i style="background:{c}"></i>{html.escape(t)}' for t, c in items)
        + "</div>"
    )


def with_realized_pnl(rows: Sequence[Row], facts: JournalFacts) -> list[Row]:
    """The liquidations view's rows with the realised PnL of the positions closed and the
    proceeds of the collateral sold, each under its name, in place of their sum."""
    shown = []
    for row in rows:
        liquidation = facts.liquidations[str(row["liquidation_id"])]
        kept = {k: v for k, v in row.items() if k != "liquidation_id"}
        at = list(kept).index("closed_notional") + 1
        items = list(kept.items())
        items[at:at] = [
            ("realized_pnl", format_decimal(liquidation.realized_pnl)),
            ("collateral_sold", format_decimal(liquidation.collateral_sold)),
        ]
        shown.append(dict(items))
    return shown


# Columns the report adds to the views', all USD figures.
ADDED_FIGURES = frozenset({"realized_pnl", "collateral_sold"})


def _kinds(view: str) -> dict[str, str]:
    table = TABLES_BY_VIEW.get(view)
    kinds = {} if table is None else {c.name: c.kind for c in table.columns}
    return {**kinds, **dict.fromkeys(ADDED_FIGURES, "decimal"), "count": "integer"}


def _html_cell(kind: str, column: str, row: Row, scale_of: ScaleOf) -> str:
    value = row.get(column)
    if value is None:
        return "<td></td>"
    if kind == "decimal":
        return f'<td class="n">{html.escape(readable(column, str(value), row, scale_of))}</td>'
    if kind == "integer" and isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def view_table(
    name: str, rows: Sequence[Row], scale_of: ScaleOf, rows_max: int = TABLE_ROWS_MAX
) -> str:
    """A view as a table a person reads: figures at their scale, right-aligned; a heading
    may wrap after an underscore of its name (never inside a word), so that every column
    fits the page."""
    if not rows:
        return f'<p class="note" data-view="{name}" data-rows="0">No rows.</p>'
    columns = list(rows[0])
    kinds = _kinds(name)
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in columns)
    body = []
    for row in rows[:rows_max]:
        cells = [_html_cell(kinds.get(c, "text"), c, row, scale_of) for c in columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    shown = "" if len(rows) <= rows_max else f" (first {rows_max} shown)"
    return (
        f'<p class="note">{len(rows):,} rows{shown}</p><div class="scroll">'
        f'<table data-view="{name}" data-rows="{len(rows)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def stress_ladder(book: Book, policy: Policy) -> dict[str, Any]:
    """`ledger stress --ladder` of the report's moves on the book at the report's end: the
    insurance fund left and the deficit it could not cover at each rung."""
    shocks = stress.parse_ladder(REPORT_LADDER, REPORT_LADDER_STEP_PERCENT)
    return stress_output.ladder_document(stress.ladder(book, policy, shocks))


def stress_section(ladder: Mapping[str, Any], scale_of: ScaleOf) -> str:
    return (
        f"<h2>Stress ladder: {html.escape(REPORT_LADDER)}, "
        f"{REPORT_LADDER_STEP_PERCENT}% apart</h2>"
        '<p class="note">The book at the report\'s end revalued under each move together, '
        "the liquidation logic run on a copy (<code>ledger stress --ladder</code>), nothing "
        "journalled. "
        f"{stress_output.LADDER_LEGEND}</p>" + stress_output.ladder_section(dict(ladder), scale_of)
    )


def render_report(
    summary: Summary,
    facts: JournalFacts,
    views: Mapping[str, Sequence[Row]],
    scale_of: ScaleOf,
    ladder: Mapping[str, Any],
) -> str:
    """The whole report as one HTML document: no script, no external resource."""
    rejects: list[Row] = [
        {"reason_code": r, "count": n} for r, n in summary.rejects_by_reason.items()
    ]
    breaches = limit_breaches(views)
    sections = [
        "<h2>BTC mark, margin calls and liquidations</h2>",
        _legend(
            [
                ("BTC mark", "#1f4e79"),
                ("margin calls issued", MARGIN_CALL_COLOUR),
                ("liquidations", LIQUIDATING_COLOUR),
            ]
        ),
        '<p class="note">A marker\'s area grows with the number of accounts in that minute.</p>',
        mark_chart(facts),
        "<h2>Client margin levels over time (equity / maintenance requirement)</h2>",
        _legend(zip(BAND_LABELS, BAND_COLOURS, strict=True)),
        f'<p class="note">Sampled every {SAMPLE_INTERVAL // timedelta(minutes=1)} minutes: '
        "each bar counts client "
        "accounts at the end of its interval, an account called or liquidated during the "
        "interval in that band; the last bar is the period's end, as the views show it.</p>",
        margin_level_chart(facts),
        "<h2>Loan-to-value of borrowers</h2>",
        _legend((name, colour) for name, colour, _ in ltv_series(facts)),
        ltv_chart(facts),
        stress_section(ladder, scale_of),
    ]
    for name, rows in views.items():
        sections.append(f"<h2>{html.escape(name)}</h2>")
        sections.append(view_table(name, rows, scale_of))
    sections.append("<h2>Refused inputs by reason</h2>")
    sections.append(view_table("rejects", rejects, scale_of))
    title = "Collateral ledger: risk report"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="sub">{summary.first_at} to {summary.last_at} (ledger clock, UTC); '
        f"{summary.journal_events:,} journal events, last seq {summary.journal_seq}, "
        f'last hash <code data-figure="last_hash">{summary.last_hash}</code></p>'
        + summary_cards(summary, breaches)
        + breaches_list(breaches)
        + "".join(sections)
        + "</body></html>"
    )


def rejects_by_reason(store: LedgerStore) -> Counter[str]:
    """How many inputs were refused, per reason code, from the store's rejects."""
    counts: Counter[str] = Counter()
    after = 0
    while records := store.read_rejects(after):
        for record in records:
            head = decode_reject_record(record)
            counts[head.reason_code] += 1
            after = head.number
    return counts


def write_report(store: LedgerStore, policy: Policy, path: Path) -> Summary:
    """Replay the store's journal, write the HTML report to `path`, return the summary."""
    facts = collect_facts(store.iter_journal(), policy)
    ladder = stress_ladder(facts.book, policy)
    summary = summarise(facts, rejects_by_reason(store), ladder)
    views = projection_views(store, policy, summary.journal_seq)
    views["liquidations"] = with_realized_pnl(views["liquidations"], facts)
    page = render_report(summary, facts, views, lambda code: policy.asset(code).scale, ladder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return summary
