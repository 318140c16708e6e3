"""A ledger whose firm changed its BTC haircuts after its first business day: the writer
decided 2026-11-02 under policy A (the demonstration policy: BTC haircuts 0.70 / 0.60 /
0.50) and, restarted with policy B (`hk-2`: 0.80 / 0.70 / 0.60), 2026-11-03.

C1 deposits 1 BTC (mark 60,000) and draws a 10,000 USD loan; each day close accrues
10,000 * 0.08 / 365 = 2.19 USD of interest; on 2026-11-03 C1 withdraws 100 USD (decided on
B's figures). Journal: seq 1 adopts A, seq 8 is the close of 2026-11-02 (its interest),
seq 9 adopts B, seq 13 is the close of 2026-11-03.
"""

from __future__ import annotations

import json
from pathlib import Path

from ledger.application import InboxItem, LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections import render, views
from projections.database import ViewDatabase
from projections.tables import TABLES

DEMONSTRATION = Path(__file__).resolve().parents[1] / "ledger" / "policies" / "demo.toml"
BTC_HAIRCUTS_A = 'haircut = { initial = "0.70", maintenance = "0.60", liquidation = "0.50" }'
BTC_HAIRCUTS_B = 'haircut = { initial = "0.80", maintenance = "0.70", liquidation = "0.60" }'
LAST_SEQ_UNDER_A = 8
LAST_SEQ = 13

DAY_ONE = [
    {"type": "mark_price", "event_id": "m1", "occurred_at": "2026-11-02T09:00:00Z",
     "instrument": "BTC", "price": "60000"},
    {"type": "account_opened", "event_id": "o1", "occurred_at": "2026-11-02T09:01:00Z",
     "account_id": "C1", "investor_class": "professional", "credit_limit": "1000000"},
    {"type": "deposit", "event_id": "d1", "occurred_at": "2026-11-02T09:02:00Z",
     "account_id": "C1", "asset": "BTC", "amount": "1"},
    {"type": "loan_draw_requested", "event_id": "l1", "occurred_at": "2026-11-02T09:03:00Z",
     "account_id": "C1", "amount": "10000"},
    {"type": "mark_price", "event_id": "m2", "occurred_at": "2026-11-02T16:00:00Z",
     "instrument": "BTC", "price": "60000"},
    {"type": "day_closed", "event_id": "c1", "occurred_at": "2026-11-02T16:01:00Z",
     "business_date": "2026-11-02"},
]  # fmt: skip
DAY_TWO = [
    {"type": "mark_price", "event_id": "m3", "occurred_at": "2026-11-03T16:00:00Z",
     "instrument": "BTC", "price": "60000"},
    {"type": "withdrawal_requested", "event_id": "w1", "occurred_at": "2026-11-03T16:00:30Z",
     "account_id": "C1", "asset": "USD", "amount": "100"},
    {"type": "day_closed", "event_id": "c2", "occurred_at": "2026-11-03T16:01:00Z",
     "business_date": "2026-11-03"},
]  # fmt: skip


def write_policies(folder: Path) -> tuple[Path, Path]:
    """Policy A (the demonstration policy's file) and B (BTC's haircuts raised) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = DEMONSTRATION.read_text(encoding="utf-8")
    assert BTC_HAIRCUTS_A in text
    changed = text.replace(BTC_HAIRCUTS_A, BTC_HAIRCUTS_B)
    changed = changed.replace('version = "2026-11-25.1"', 'version = "hk-2"', 1)
    a, b = folder / "a.toml", folder / "b.toml"
    a.write_text(text, encoding="utf-8")
    b.write_text(changed, encoding="utf-8")
    return a, b


def ingest(url: str, policy_file: Path, records: list[dict[str, str]]) -> None:
    """Decide `records` under `policy_file`, one batch, as a writer started with it."""
    items = [
        InboxItem(value=json.dumps(r).encode(), key=None, topic="t", partition=0, offset=n)
        for n, r in enumerate(records)
    ]
    with LedgerStore.open(url) as store:
        outcome = LedgerApplication(store, load_policy(policy_file)).process(items)
    assert outcome.refused == 0


def two_policy_store(url: str, folder: Path) -> tuple[Path, Path]:
    """The store at `url` ingested under A, then B; returns the files of A and B."""
    a, b = write_policies(folder)
    ingest(url, a, DAY_ONE)
    ingest(url, b, DAY_TWO)
    return a, b


def every_view_text(database: ViewDatabase) -> str:
    """Every view as `ledger report VIEW --format csv` prints it, each under `## VIEW`."""
    return "".join(
        f"## {table.view}\n" + render.render_text(views.document(database, table), table, "csv")
        for table in TABLES
    )
