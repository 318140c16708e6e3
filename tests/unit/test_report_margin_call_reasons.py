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


def _shown(table: str, view: str, names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The cells `names` of C1's and C2's rows in the HTML of the view's table."""
    shown = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells and cells[0] in ("C1", "C2"):
            by_column = dict(zip(html_report.REPORT_COLUMNS[view], cells, strict=True))
            shown[cells[0]] = tuple(by_column[name] for name in names)
    return shown


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

    def table(view: str) -> str:
        return html_report.view_table(view, views[view], lambda code: policy.asset(code).scale)

    clients = ("status", "equity", "maintenance_requirement", "call_amount", "call_trigger")
    assert _shown(table("margin-clients"), "margin-clients", clients) == {
        "C1": ("healthy", "33,970.00", "32,400.00", "5,030.00", "credit_limit_exceeded"),
        "C2": ("margin_call", "21,000.00", "21,600.00", "600.00", "below_maintenance_requirement"),
    }
    calls = ("amount", "trigger", "equity_at_issue")
    assert _shown(table("margin-calls"), "margin-calls", calls) == {
        "C1": ("5,030.00", "credit_limit_exceeded", "69,970.00"),
        "C2": ("600.00", "below_maintenance_requirement", "21,000.00"),
    }
