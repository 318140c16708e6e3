"""The HTML report's margin tables say why each call was issued (docs/views.md
`margin-clients`): a limit call stands on a client whose status is `healthy`, and its trigger
is the reason a reader of the report has, beside its amount."""

from __future__ import annotations

import html
import re
from pathlib import Path

from app import html_report
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.unit.test_margin_call_triggers import two_calls


def _cells(table: str, account_id: str) -> list[str]:
    """The cells of the account's row in one view table's HTML."""
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells and cells[0] == account_id:
            return cells
    raise AssertionError(f"no row of {account_id}")


def test_the_reports_margin_tables_name_each_calls_trigger_beside_its_amount(
    tmp_path: Path,
) -> None:
    """`two_calls`: C1 (credit limit 15,000) financed 20,030: a call of 5,030.00 on its
    credit limit, healthy at BTC 36,000 (equity 33,970 above 32,400); C2 called for
    600.00 on its equity (21,000 below 21,600)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    two_calls(url)
    policy = load_policy(None)
    with LedgerStore.open(url, read_only=True) as store:
        views = html_report.projection_views(store, policy, store.last_seq())

    def scale_of(code: str) -> int:
        return policy.asset(code).scale

    clients = html_report.view_table("margin-clients", views["margin-clients"], scale_of)
    columns = html_report.REPORT_COLUMNS["margin-clients"]
    c1 = dict(zip(columns, _cells(clients, "C1"), strict=True))
    assert (c1["status"], c1["equity"], c1["maintenance_requirement"]) == (
        "healthy",
        "33,970.00",
        "32,400.00",
    )
    assert (c1["call_amount"], c1["call_trigger"]) == ("5,030.00", "credit_limit_exceeded")
    c2 = dict(zip(columns, _cells(clients, "C2"), strict=True))
    assert (c2["status"], c2["call_amount"], c2["call_trigger"]) == (
        "margin_call",
        "600.00",
        "below_maintenance_requirement",
    )

    calls = html_report.view_table("margin-calls", views["margin-calls"], scale_of)
    columns = html_report.REPORT_COLUMNS["margin-calls"]
    c1 = dict(zip(columns, _cells(calls, "C1"), strict=True))
    assert (c1["amount"], c1["trigger"], c1["equity_at_issue"]) == (
        "5,030.00",
        "credit_limit_exceeded",
        "69,970.00",
    )
    c2 = dict(zip(columns, _cells(calls, "C2"), strict=True))
    assert (c2["amount"], c2["trigger"]) == ("600.00", "below_maintenance_requirement")
