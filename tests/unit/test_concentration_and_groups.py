"""Related-client groups under the per-client loan limit, and the concentration limits of the
views, with figures a risk officer checks by hand. Demonstration policy: shareholders' funds
50,000,000, one client (or group) at most 20% = 10,000,000; one asset at most 60% of client
collateral, one client at most 25% of an asset."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.cli import main
from app.html_report import write_report
from ledger.policy import load_policy
from ledger.pretrade import check
from ledger.store import LedgerStore
from projections.rows import concentration_rows, lending_rows
from tests.ledger_scenario import START, Scenario

POLICY = load_policy(None)


def _borrowers(s: Scenario) -> None:
    """A and B, each 400 BTC at 60,000: lending value 400 x 60,000 x 0.30 = 7,200,000."""
    s.mark("BTC", "60000")
    for account in ("A", "B"):
        s.open(account, credit="20000000")
        s.deposit(account, "BTC", "400")


def _group(s: Scenario, account: str, group_id: str | None) -> None:
    s.send("related_group_set", account_id=account, group_id=group_id)


def _draw(s: Scenario, account: str, amount: str) -> list[str]:
    outcome = s.send("loan_draw_requested", account_id=account, amount=amount)
    return sorted(outcome.refused_by_reason)


def _family_on_file(tmp_path: Path) -> tuple[Scenario, str]:
    """A and B of `_borrowers`, both in group family-1, on a store file (for the CLI)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    _borrowers(s)
    _group(s, "A", "family-1")
    _group(s, "B", "family-1")
    return s, url


def test_a_group_is_held_to_one_clients_loan_limit_for_its_total() -> None:
    s = Scenario()
    _borrowers(s)
    _group(s, "A", "family-1")
    _group(s, "B", "family-1")
    assert _draw(s, "A", "6000000") == []
    # Group total 6,000,000 + 4,000,000 = 10,000,000: at the limit, within it.
    assert _draw(s, "B", "4000000") == []
    # One cent more would take the group to 10,000,000.01.
    assert _draw(s, "B", "0.01") == ["group_loan_limit_exceeded"]
    (rejected,) = s.events("loan_draw_rejected")
    assert rejected["group_limit"] == {
        "group_id": "family-1",
        "members": ["A", "B"],
        "group_loans_after": "10000000.01",
        "group_loan_max": "10000000.00",
    }
    assert "related group family-1 (2 accounts)" in rejected["detail"]
    assert s.app.book.accounts["B"].loan == Decimal("4000000.00")
    # Alone, B's 4,000,000.01 is far within its own 10,000,000.
    _group(s, "A", None)
    assert _draw(s, "B", "0.01") == []
    assert s.app.book.related_groups == {"family-1": {"B"}}


def test_joining_a_group_is_recorded_and_never_refused() -> None:
    s = Scenario()
    _borrowers(s)
    assert _draw(s, "A", "7000000") == []
    assert _draw(s, "B", "7000000") == []
    _group(s, "A", "companies-7")
    _group(s, "B", "companies-7")
    (first, second) = s.events("related_group_set")
    assert (first["group_id"], first["previous_group_id"]) == ("companies-7", None)
    assert second["account_id"] == "B"
    # 14,000,000 > 10,000,000: the lending-limits view flags the breach.
    rows = {row[0]: row for row in lending_rows(s.app.book, POLICY)}
    group_row = rows["related_group:companies-7"]
    assert group_row[2:] == (
        "14000000.00",
        "10000000.00",
        "1.40000000",
        "-4000000.00",
        "exceeded",
    )
    assert _draw(s, "A", "1") == ["group_loan_limit_exceeded"]


def test_a_pre_trade_check_refuses_a_draw_that_breaks_the_group_limit() -> None:
    s = Scenario()
    _borrowers(s)
    _group(s, "A", "family-1")
    _group(s, "B", "family-1")
    s.send("loan_draw_requested", account_id="A", amount="7000000")
    record = {
        "type": "loan_draw_requested",
        "event_id": "proposed",
        "occurred_at": START.isoformat(),
        "account_id": "B",
        "amount": "3000000.01",
    }
    result = check(s.app.book, POLICY, "B", json.dumps(record).encode(), store=s.store)
    assert result.refusal is not None
    assert result.refusal.reason_code == "group_loan_limit_exceeded"


def test_the_concentration_view_shows_each_limit_its_figure_and_headroom() -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.open("C1")
    s.open("C2")
    s.deposit("C1", "BTC", "1")
    s.deposit("C2", "USD", "40000")
    rows = {row[0]: row for row in concentration_rows(s.app.book, POLICY)}
    # Client collateral 60,000 (BTC) + 40,000 (USD) = 100,000: BTC 60%, USD 40%.
    # Each asset has one holder: its largest client holds 100% of it, above 25%.
    assert rows["BTC"][5] == "0.60000000"
    assert rows["BTC"][10:] == (
        "0.60",
        "0.00000000",
        "0.25",
        "-0.75000000",
        "client_share_exceeded",
    )
    assert rows["USD"][10:] == (
        "0.60",
        "0.20000000",
        "0.25",
        "-0.75000000",
        "client_share_exceeded",
    )
    # Four more clients with 1 BTC each: 5 BTC = 300,000 of 340,000 (88.2%), 20% each.
    for account in ("C3", "C4", "C5", "C6"):
        s.open(account)
        s.deposit(account, "BTC", "1")
    btc = {row[0]: row for row in concentration_rows(s.app.book, POLICY)}["BTC"]
    assert btc[5] == "0.88235294"
    assert btc[9:] == (
        "0.20000000",
        "0.60",
        "-0.28235294",
        "0.25",
        "0.05000000",
        "asset_share_exceeded",
    )


def test_audit_explain_agrees_with_a_group_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s, url = _family_on_file(tmp_path)
    _draw(s, "A", "7000000")
    _draw(s, "B", "3000000.01")
    (rejected,) = s.events("loan_draw_rejected")
    s.store.close()
    assert main(["--store", url, "audit", "explain", str(rejected["seq"])]) == 0
    printed = capsys.readouterr().out
    assert "related group's loan limit: 10000000.01 ≤ 10000000.00: FAILS" in printed


def _btc_buy(account: str, quantity: str) -> dict[str, str]:
    """A spot buy at 60,000 with no fee: its USD debit is financed on the margin loan."""
    return {
        "account_id": account,
        "trade_id": f"buy-{account}-{quantity}",
        "symbol": "BTC/USD",
        "side": "buy",
        "quantity": quantity,
        "price": "60000",
        "fee": "0",
    }


def _buy_btc(s: Scenario, account: str, quantity: str) -> None:
    s.send("spot_trade", **_btc_buy(account, quantity))


def test_a_financed_debit_is_held_to_the_groups_loan_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s, url = _family_on_file(tmp_path)
    assert _draw(s, "A", "6000000") == []
    # B buys 70 BTC for 70 x 60,000 = 4,200,000 USD it does not hold: financed. Alone B's
    # loan is within every limit (lending value 470 x 60,000 x 0.30 = 8,460,000; one client
    # 10,000,000), but the group's 6,000,000 + 4,200,000 = 10,200,000 is above 10,000,000.
    _buy_btc(s, "B", "70")
    (financed,) = s.events("debit_financed")
    assert (financed["account_id"], financed["amount"]) == ("B", "4200000.00")
    assert financed["limits_broken"] == ["group_loan_limit_exceeded"]
    assert financed["group_limit"] == {
        "group_id": "family-1",
        "members": ["A", "B"],
        "group_loans_after": "10200000.00",
        "group_loan_max": "10000000.00",
    }
    # A fact is booked past the limit; a request is not: no further draw while above it.
    assert s.app.book.accounts["B"].loan == Decimal("4200000.00")
    assert s.app.book.accounts["B"].margin_call is None
    assert _draw(s, "B", "0.01") == ["group_loan_limit_exceeded"]
    s.store.close()
    assert main(["--store", url, "audit", "explain", str(financed["seq"])]) == 0
    printed = capsys.readouterr().out
    assert "related group's loan limit: 10200000.00 ≤ 10000000.00: FAILS" in printed
    assert "limits broken: recorded ['group_loan_limit_exceeded'] = recomputed ✓" in printed


def test_a_financed_debit_outside_any_group_records_no_group_figures() -> None:
    s = Scenario()
    _borrowers(s)
    assert _draw(s, "A", "6000000") == []
    _buy_btc(s, "B", "70")
    (financed,) = s.events("debit_financed")
    assert financed["amount"] == "4200000.00"
    # Canonical JSON leaves out an empty list and an absent group: no limit broken.
    assert "limits_broken" not in financed
    assert "group_limit" not in financed


def test_the_html_report_flags_each_limit_breach(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    _borrowers(s)
    assert _draw(s, "A", "7000000") == []
    assert _draw(s, "B", "7000000") == []
    _group(s, "A", "companies-7")
    _group(s, "B", "companies-7")
    # The group's loans: 14,000,000 > 10,000,000. Client collateral: 800 BTC at 60,000 =
    # 48,000,000 and the 14,000,000 USD drawn, 62,000,000: BTC is 77% of it, above 60%;
    # A and B each hold half the BTC and half the USD, above 25% (A named: the first).
    # The USD cover (14,000,000, no haircut) equals the loans: covered, no breach.
    s.store.close()
    report = tmp_path / "report.html"
    with LedgerStore.open(url) as store:
        write_report(store, POLICY, report)
    page = report.read_text(encoding="utf-8")
    assert '<b data-figure="limit_breaches">3</b>' in page
    assert (
        '<ul class="breaches" data-figure="breaches">'
        "<li>collateral-concentration: BTC (A) asset_share_exceeded,client_share_exceeded</li>"
        "<li>collateral-concentration: USD (A) client_share_exceeded</li>"
        "<li>lending-limits: related_group:companies-7 exceeded</li></ul>"
    ) in page


def _spot_buy(account: str, quantity: str) -> bytes:
    """`_btc_buy` as a proposed inbox record, for a pre-trade check."""
    head = {"type": "spot_trade", "event_id": f"proposed-{quantity}"}
    record = {**head, "occurred_at": START.isoformat(), **_btc_buy(account, quantity)}
    return json.dumps(record).encode()


def test_a_pre_trade_check_refuses_an_order_financed_past_the_group_limit() -> None:
    s = Scenario()
    _borrowers(s)
    _group(s, "A", "family-1")
    _group(s, "B", "family-1")
    assert _draw(s, "A", "6000000") == []
    # 60 BTC at 60,000 = 3,600,000 financed: the group's 9,600,000 stays within 10,000,000.
    within = check(s.app.book, POLICY, "B", _spot_buy("B", "60"), store=s.store)
    assert within.refusal is None
    assert within.would_record == ("spot_trade_booked", "debit_financed")
    # 70 BTC = 4,200,000: the group would reach 10,200,000. The ledger would book the fill
    # (a fact), but the order is refused with the limit it would break.
    past = check(s.app.book, POLICY, "B", _spot_buy("B", "70"), store=s.store)
    assert past.refusal is not None
    assert past.refusal.reason_code == "group_loan_limit_exceeded"
    assert "draw 4200000.00 USD on the margin loan" in past.refusal.detail
    assert s.app.book.accounts["B"].loan == Decimal(0)
