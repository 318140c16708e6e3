"""Client statements: a hand-computed day, the opt-out, and every client of a simulated run
tied out to `ledger query --as-of` at the period's close."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from app.cli import main
from app.commands import ingest_stream
from app.demo import DEMO_ACCOUNTS, DEMO_DAYS, default_demo_store
from app.simulation import simulate
from ledger import journal_events as je
from ledger import reporting, statements
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import LedgerApplication
from ledger.book import Book
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests.ledger_scenario import Scenario

POLICY = load_policy(None)


def _events(store: LedgerStore) -> Iterator[je.JournalEventType]:
    return (je.decode_journal_record(e.record) for e in store.iter_journal())


def _two_days(s: Scenario) -> None:
    """C1 borrows 15,000 against 1 BTC on the 24th; on the 25th deposits 1,000 USD and
    withdraws 500; BTC marked 60,000 then 50,000. P1 (professional, opted out) and R1
    (retail, idle) are open too."""
    s.mark("BTC", "60000")
    s.open("C1")
    s.open("P1")
    s.send("daily_statements_set", account_id="P1", daily_statements="waived")
    s.open("R1", "retail", "0")
    s.deposit("C1", "BTC", "1")
    s.deposit("P1", "USD", "100")
    s.send("loan_draw_requested", account_id="C1", amount="15000")
    s.at(20)
    s.send("day_closed", business_date="2026-11-24")
    s.at(26)
    s.deposit("C1", "USD", "1000")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="500")
    s.deposit("P1", "USD", "50")
    s.mark("BTC", "50000")
    s.at(44)
    s.send("day_closed", business_date="2026-11-25")


def _daily(s: Scenario, business_date: str) -> list[statements.ClientStatement]:
    closes = statements.find_closes(_events(s.store))
    period = statements.daily_period(closes, date.fromisoformat(business_date))
    return statements.statements(_events(s.store), AdoptedPolicies.of(POLICY), period)


def test_a_daily_statement_gives_balances_movements_loan_and_figures() -> None:
    s = Scenario()
    _two_days(s)
    (c1,) = _daily(s, "2026-11-25")  # P1 opted out, R1 had nothing
    assert c1.opening == {"BTC": Decimal("1.00000000"), "USD": Decimal("15000.00")}
    assert c1.closing == {"BTC": Decimal("1.00000000"), "USD": Decimal("15500.00")}
    moved = [(m.event_type, m.item, m.amount, m.after) for m in c1.movements]
    # Interest each day: 15,000 x 0.08 / 365 = 3.2876... -> 3.29.
    assert moved == [
        ("deposit_credited", "USD", Decimal("1000.00"), Decimal("16000.00")),
        ("withdrawal_approved", "USD", Decimal("-500.00"), Decimal("15500.00")),
        ("interest_accrued", "loan_interest", Decimal("3.29"), Decimal("6.58")),
    ]
    journal = {e["seq"]: e["type"] for e in s.journal()}
    assert all(journal[m.seq] == m.event_type for m in c1.movements)
    assert (c1.loan_principal, c1.loan_interest, c1.interest_accrued) == (
        Decimal("15000.00"),
        Decimal("6.58"),
        Decimal("3.29"),
    )
    # E = 50,000 + 15,500 - 15,006.58 = 50,493.42; MR = 0.6 x 50,000 = 30,000: healthy.
    assert c1.figures is not None
    assert Decimal(c1.figures["equity"]) == Decimal("50493.42")
    assert c1.figures["status"] == "healthy"
    btc = next(h for h in c1.collateral if h["asset"] == "BTC")
    assert (btc["market_value"], btc["haircut_value"]) == (Decimal("50000"), Decimal("15000"))
    assert c1.margin_call is None


def test_an_opted_out_professional_gets_a_monthly_statement_but_no_daily_one() -> None:
    s = Scenario()
    _two_days(s)
    # R1 was opened that day: its opening is activity. P1 waived daily statements.
    assert [c.account_id for c in _daily(s, "2026-11-24")] == ["C1", "R1"]
    closes = statements.find_closes(_events(s.store))
    monthly = statements.statements(
        _events(s.store), AdoptedPolicies.of(POLICY), statements.monthly_period(closes, "2026-11")
    )
    assert [c.account_id for c in monthly] == ["C1", "P1", "R1"]
    p1 = monthly[1]
    assert [(m.event_type, m.amount) for m in p1.movements if m.item == "USD"] == [
        ("deposit_credited", Decimal("100.00")),
        ("deposit_credited", Decimal("50.00")),
    ]
    assert [c.business_date for c in p1.daily_closes] == ["2026-11-24", "2026-11-25"]
    assert [c.equity for c in p1.daily_closes] == [Decimal("100.00"), Decimal("150.00")]


def test_only_a_professional_investor_may_opt_out_of_daily_statements() -> None:
    s = Scenario()
    s.open("R2", "retail", "0")
    refused = s.send("daily_statements_set", account_id="R2", daily_statements="waived")
    assert refused.refused_by_reason == {"not_professional_investor": 1}


def test_a_day_not_closed_has_no_statement() -> None:
    s = Scenario()
    _two_days(s)
    with pytest.raises(statements.StatementError, match="2026-11-26 has no day_closed"):
        _daily(s, "2026-11-26")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("statements") / "ledger.db"
    inbox = b"\n".join(simulate(7, 12, 2))
    with LedgerStore.open(f"sqlite:///{path}") as store:
        ingest_stream(LedgerApplication(store, POLICY), io.BytesIO(inbox), "test")
    return path


def test_every_statement_ties_out_to_ledger_query_at_the_close(simulated: Path) -> None:
    with LedgerStore.open(f"sqlite:///{simulated}") as store:
        closes = statements.find_closes(_events(store))
        assert len(closes) >= 2
        _tie_out_every_client(
            store,
            (
                statements.daily_period(closes, date.fromisoformat(closes[1].business_date)),
                statements.monthly_period(closes, closes[0].business_date[:7]),
            ),
        )


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return default_demo_store(tmp_path_factory.mktemp("demo-statements"))


@pytest.mark.slow
def test_every_client_of_the_demo_ties_out_every_day_and_the_month(demo_store: str) -> None:
    with LedgerStore.open(demo_store) as store:
        closes = statements.find_closes(_events(store))
        assert len(closes) == DEMO_DAYS
        days = [
            statements.daily_period(closes, date.fromisoformat(c.business_date)) for c in closes
        ]
        month = statements.monthly_period(closes, closes[0].business_date[:7])
        tied = _tie_out_every_client(store, (*days, month))
        # Every client of the demo has a monthly statement: each opened an account that month.
        assert len(tied[-1]) == DEMO_ACCOUNTS


def _tie_out_every_client(
    store: LedgerStore, periods: tuple[statements.Period, ...]
) -> list[set[str]]:
    """Each period's statements (every client with activity, a loan or a position in it)
    against `ledger query` as of its close; the accounts tied out, period by period."""
    tied = []
    for period in periods:
        batch = statements.statements(_events(store), AdoptedPolicies.of(POLICY), period)
        book = reporting.book_as_of(store, str(period.closing_seq))
        assert batch
        for statement in batch:
            _ties_out(statement, book)
        tied.append({statement.account_id for statement in batch})
    return tied


def _ties_out(statement: statements.ClientStatement, book: Book) -> None:
    account_id = statement.account_id
    queried = reporting.balances_view(book, POLICY, account_id)["balances"]
    assert {r["asset"]: Decimal(r["balance"]) for r in queried} == statement.closing
    if statement.figures is not None:
        assert statement.figures == reporting.margin_view(book, POLICY, account_id)
    for asset in set(statement.opening) | set(statement.closing):
        moved = sum((m.amount or 0 for m in statement.movements if m.item == asset), Decimal(0))
        opening = statement.opening.get(asset, Decimal(0))
        assert opening + moved == statement.closing.get(asset, Decimal(0)), (account_id, asset)
    loan = book.accounts[account_id]
    assert (statement.loan_principal, statement.loan_interest) == (
        loan.loan_principal,
        loan.loan_interest,
    )


def test_ledger_statements_writes_a_page_per_client_and_the_batch_files(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{simulated}"
    with LedgerStore.open(url) as store:
        first = statements.find_closes(_events(store))[0].business_date
    out = tmp_path / "out"
    assert main(["--store", url, "statements", "daily", "--date", first, "--out", str(out)]) == 0
    pages = sorted(out.glob("statement-*.html"))
    assert pages
    assert f"{len(pages)} daily statements for {first}" in capsys.readouterr().err
    page = pages[0].read_text(encoding="utf-8")
    assert "@page{size:A4" in page
    assert "<script" not in page
    assert "http" not in page  # self-contained: nothing loaded from anywhere
    csv_lines = (out / f"statements-{first}.csv").read_text().splitlines()
    assert csv_lines[0].startswith("period,account_id,section,item,seq")
    pyarrow = pytest.importorskip("pyarrow.parquet")
    table = pyarrow.read_table(out / f"statements-{first}.parquet")
    assert table.num_rows == len(csv_lines) - 1
    assert (
        main(["--store", url, "statements", "daily", "--date", "2030-01-01", "--out", str(out)])
        == 2
    )
