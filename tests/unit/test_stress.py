"""Stress tests and ladders: what a shock would make the ledger do, figures checked by hand,
and proof that a stress books nothing."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app.cli import main
from ledger.policy import load_policy
from ledger.stress import (
    LadderResult,
    ShockError,
    StressResult,
    ladder,
    parse_ladder,
    parse_shock,
    require_known,
    shocked_marks,
    stress,
)
from tests.ledger_scenario import Scenario

POLICY = load_policy(None)


def _stress(s: Scenario, shock: str) -> StressResult:
    """The stress, with proof it changed neither the store nor the ledger's book."""
    seq = s.store.last_seq()
    accounts, marks = copy.deepcopy(s.app.book.accounts), dict(s.app.book.marks)
    result = stress(s.app.book, POLICY, parse_shock(shock))
    assert s.store.last_seq() == seq
    assert (s.app.book.accounts, s.app.book.marks) == (accounts, marks)
    assert result.journal_seq == seq
    return result


def _borrower(s: Scenario) -> None:
    """1 BTC at 60,000, a 15,000 loan withdrawn: E = m - 15,000; IR 0.7m, MR 0.6m, LR 0.5m."""
    s.btc_loan_withdrawn()


def _perp_trader(s: Scenario, fund: str) -> None:
    """10,000 USD and 1 BTC-PERP long at 60,000 (the house short); an insurance fund."""
    s.mark("BTC-PERP", "60000")
    s.deposit("platform:insurance", "USD", fund)
    s.open("T1")
    s.deposit("T1", "USD", "10000")
    s.perp_buy("T1", "t1", "1", "60000")


def test_a_shock_between_liquidation_and_maintenance_calls_without_selling() -> None:
    s = Scenario()
    _borrower(s)
    # -50%: m = 30,000, E = 15,000 = LR (0.5 x 30,000) < MR 18,000: a call, no sale.
    result = _stress(s, "BTC=-50%")
    assert (result.called, result.liquidated) == (["C1"], [])
    assert result.accounts["C1"].equity_at_shock == Decimal("15000")
    assert result.marks == [("BTC", Decimal("60000"), Decimal("30000.0"))]


def test_a_deeper_shock_sells_just_enough_collateral_to_restore_the_initial_requirement() -> None:
    s = Scenario()
    _borrower(s)
    # -55%: m = 27,000, E = 12,000 < LR 13,500: liquidation. Selling q BTC keeps E and cuts
    # IR by 0.7 x 27,000 q: q = (18,900 - 12,000 + 0.005) / 18,900 = 0.36507963 (rounded up).
    result = _stress(s, "BTC=-55%")
    account = result.accounts["C1"]
    assert result.liquidated == ["C1"]
    assert account.collateral_sold == {"BTC": Decimal("0.36507963")}
    # Proceeds 0.36507963 x 27,000 = 9,857.15001 -> 9,857.15, all repaying the loan.
    assert account.sale_proceeds == account.loan_repaid == Decimal("9857.15")
    # E after = 0.63492037 x 27,000 - 5,142.85 = 11,999.99999.
    assert account.equity_after == Decimal("11999.99999")
    assert account.shortfall == 0
    assert result.insurance_fund_drawn == 0
    assert result.bad_debt == 0
    assert result.firm_loans_after == Decimal("5142.85")
    assert result.largest_client_loan_after == ("C1", Decimal("5142.85"))


def test_a_crash_below_the_loan_leaves_bad_debt_for_the_broker() -> None:
    s = Scenario()
    _borrower(s)
    # -80%: m = 12,000, E = -3,000. All the BTC repays 12,000 of the 15,000 loan.
    result = _stress(s, "BTC=-80%")
    account = result.accounts["C1"]
    assert account.collateral_sold == {"BTC": Decimal("1.00000000")}
    assert account.shortfall == Decimal("3000")
    assert account.bad_debt_loan == Decimal("3000.00")
    assert account.bad_debt_cash == 0
    assert result.insurance_fund_drawn == 0
    # A loan shortfall is the broker's credit loss, not the insurance fund's.
    assert result.insurance_fund_sufficient
    assert result.firm_loans_after == 0


def test_a_perp_deficit_draws_the_insurance_fund_and_what_it_cannot_cover_is_deleveraged() -> None:
    s = Scenario()
    _perp_trader(s, fund="1000")
    # BTC=-20% moves BTC-PERP (BTC itself has no mark): M = 48,000, E = 10,000 - 12,000 =
    # -2,000 < LR 2,400. The close realises -12,000; no fee (no equity left). The fund pays
    # 1,000 of the 2,000 deficit; the house's profitable short absorbs the other 1,000.
    result = _stress(s, "BTC=-20%")
    account = result.accounts["T1"]
    assert result.marks == [("BTC-PERP", Decimal("60000"), Decimal("48000.0"))]
    assert account.perps_closed == {"BTC-PERP": Decimal("1")}
    assert account.shortfall == Decimal("2000")
    assert account.insurance_fund_drawn == Decimal("1000.00")
    assert account.auto_deleveraged == Decimal("1000.00")
    assert result.insurance_fund_after == 0
    assert result.uncovered_perps_deficit == Decimal("1000.00")
    assert not result.insurance_fund_sufficient


def test_a_milder_shock_pays_the_liquidation_fee_into_the_fund() -> None:
    s = Scenario()
    _perp_trader(s, fund="1000")
    # -15%: M = 51,000, E = 1,000 < LR 2,550. Close: cash 1,000, fee 0.005 x 51,000 = 255.
    result = _stress(s, "BTC-PERP=-15%")
    account = result.accounts["T1"]
    assert account.liquidation_fees == Decimal("255.00")
    assert account.equity_after == Decimal("745.00")
    assert result.insurance_fund_after == Decimal("1255.00")
    assert result.insurance_fund_sufficient


def test_the_ladder_finds_the_move_that_exhausts_the_insurance_fund() -> None:
    s = Scenario()
    _perp_trader(s, fund="1000")
    result: LadderResult = ladder(s.app.book, POLICY, parse_ladder("BTC=-5%..-25%", Decimal(5)))
    assert [r.shock.label for r in result.rungs] == [
        "BTC=-5%",
        "BTC=-10%",
        "BTC=-15%",
        "BTC=-20%",
        "BTC=-25%",
    ]
    assert [len(r.liquidated) for r in result.rungs] == [0, 0, 1, 1, 1]
    exhausted = result.exhausted_at
    assert exhausted is not None
    assert exhausted.shock.label == "BTC=-20%"


@pytest.mark.parametrize("text", ["BTC=-25%..-5%", "BTC=10%..-10%", "BTC=-5%..-25%,ETH=-25%..-5%"])
def test_a_ladder_toward_zero_is_refused_since_its_first_exhausting_rung_would_mislead(
    text: str,
) -> None:
    """`BTC=-25%..-5%` ran -25% first and named it the move that exhausts the fund when
    -20% already did."""
    with pytest.raises(ShockError, match="a ladder's moves grow away from 0%"):
        parse_ladder(text, Decimal(5))
    rises = parse_ladder("BTC=+5%..+15%", Decimal(5))
    assert [r.label for r in rises] == ["BTC=5%", "BTC=10%", "BTC=15%"]


@pytest.mark.parametrize("step", ["abc", "NaN", "Infinity", "-5", "0"])
def test_a_ladder_step_that_is_no_number_above_0_is_one_line(
    borrower_store: str, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """'abc' said "ledger: [<class 'decimal.ConversionSyntax'>]"."""
    ladder_command = ["--store", borrower_store, "stress", "--ladder", "BTC=-5%..-10%"]
    assert main([*ladder_command, "--step", step]) == 2
    error = capsys.readouterr().err
    assert error == f"ledger: --step {step!r} is not a number of percentage points above 0\n"


@pytest.fixture
def borrower_store(tmp_path: Path) -> str:
    """The URL of a closed SQLite store holding `_borrower`'s book."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    _borrower(s)
    s.store.close()
    return url


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("BTC=-30", "not a move"),
        ("BTC=-100%", "100% or more"),
        ("BTC=-10%,BTC=-20%", "named twice"),
    ],
)
def test_a_shock_written_wrongly_says_how_to_write_it(text: str, says: str) -> None:
    with pytest.raises(ShockError, match=says):
        parse_shock(text)


def test_a_shock_of_a_name_the_ledger_does_not_know_is_refused_not_ignored(
    borrower_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = borrower_store
    for option in (["--shock", "BTC=-30%,XBT=-30%"], ["--ladder", "XBT=-5%..-60%"]):
        assert main(["--store", url, "stress", *option]) == 2
        error = capsys.readouterr().err
        assert "XBT is neither an asset the ledger knows nor a market of the policy" in error
    require_known(POLICY, [parse_shock("BTC=-30%,ETH-PERP=-10%,USD=-1%")])


def test_a_shock_moves_every_mark_before_any_account_is_decided() -> None:
    """C1: 1 BTC at 60,000, a 15,000 loan withdrawn, 0.6 BTC-PERP long at 60,000 (the house
    short), and an insurance fund of 100,000. BTC=-50% moves BTC and BTC-PERP to 30,000.

    Together: U = 0.6 x (30,000 - 60,000) = -18,000, E = 30,000 - 18,000 - 15,000 = -3,000
    < LR (15,000 + 0.05 x 18,000 = 15,900): liquidation. The close realises -18,000.00 with
    no fee (no equity left); all the BTC sells for 30,000.00, 15,000.00 of it repaying the
    loan: USD -18,000 + 30,000 - 15,000 = -3,000, the fund draws 3,000.00.

    It was decided one mark after the other: on BTC alone (BTC-PERP still 60,000) E was
    15,000 < LR 16,800, so C1 was liquidated at the perpetual's old mark (no loss realised,
    a 180.00 fee, 0.29428572 BTC sold) and the 18,000 the position then lost on the
    liquidation account was in no figure of the stress: no shortfall, no draw."""
    s = Scenario()
    s.mark("BTC", "60000")
    s.mark("BTC-PERP", "60000")
    s.deposit("platform:insurance", "USD", "100000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("loan_draw_requested", account_id="C1", amount="15000")
    s.send("withdrawal_requested", account_id="C1", asset="USD", amount="15000")
    s.perp_buy("C1", "t1", "0.6", "60000")
    result = _stress(s, "BTC=-50%")
    account = result.accounts["C1"]
    assert result.liquidated == ["C1"]
    assert account.equity_at_shock == Decimal("-3000")
    assert account.perps_closed == {"BTC-PERP": Decimal("0.6")}
    assert account.liquidation_fees == 0
    assert account.collateral_sold == {"BTC": Decimal("1.00000000")}
    assert (account.sale_proceeds, account.loan_repaid) == (
        Decimal("30000.00"),
        Decimal("15000.00"),
    )
    assert account.shortfall == Decimal("3000")
    assert account.insurance_fund_drawn == Decimal("3000.00")
    assert result.insurance_fund_after == Decimal("97000.00")
    assert result.firm_loans_after == 0


def test_shocking_an_asset_moves_its_market_unless_the_market_is_named() -> None:
    s = Scenario()
    s.mark("BTC", "100")
    s.mark("BTC-PERP", "101")
    both = shocked_marks(s.app.book, POLICY, parse_shock("BTC=-10%"))
    assert both == [("BTC", Decimal("90.0")), ("BTC-PERP", Decimal("90.9"))]
    apart = shocked_marks(s.app.book, POLICY, parse_shock("BTC=-10%,BTC-PERP=-20%"))
    assert apart == [("BTC", Decimal("90.0")), ("BTC-PERP", Decimal("80.8"))]


def test_ledger_stress_prints_json_and_a_ladder_table(
    borrower_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = borrower_store
    assert main(["--store", url, "stress", "--shock", "BTC=-55%", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (one,) = document["stresses"]
    assert one["accounts_liquidated"] == ["C1"]
    assert one["collateral_sold"] == {"BTC": "0.36507963"}
    assert main(["--store", url, "stress", "--ladder", "BTC=-10%..-90%", "--step", "40"]) == 0
    table = capsys.readouterr().out
    assert "BTC=-50%" in table
    assert "insurance fund not exhausted within the ladder" in table


def test_ledger_stress_writes_the_ladder_chart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    _perp_trader(s, fund="1000")
    s.store.close()
    page = tmp_path / "ladder.html"
    arguments = ["stress", "--ladder", "BTC=-5%..-25%", "--html", str(page)]
    assert main(["--store", url, *arguments]) == 0
    text = page.read_text(encoding="utf-8")
    assert 'data-chart="stress-ladder"' in text
    assert "Insurance fund exhausted at BTC=-20%" in text
    assert text.count("<polyline") == 2


def test_the_ladder_chart_reads_its_scale_in_money_and_names_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart's one axis label was the raw top figure ('41576029.70 USD' in the demo's
    report, where every other figure has separators) with no zero and no key to its lines."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    _perp_trader(s, fund="1000")
    s.store.close()
    ladder = ["stress", "--ladder", "BTC=-5%..-25%"]
    assert main(["--store", url, *ladder, "--format", "json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)["ladders"]
    rungs = only["rungs"]
    lines = ("insurance_fund_after", "uncovered_perps_deficit")
    top = max(Decimal(r[name]) for r in rungs for name in lines)
    page = tmp_path / "ladder.html"
    assert main(["--store", url, *ladder, "--html", str(page)]) == 0
    chart = page.read_text(encoding="utf-8").split('data-chart="stress-ladder"')[1]
    ticks = re.findall(r'<text [^>]*class="scale"[^>]*>([^<]*)</text>', chart)
    assert ticks == [f"{top.quantize(Decimal('0.01')):,f} USD", "0 USD"]
    assert ">insurance fund left</text>" in chart
    assert ">deficit it does not cover</text>" in chart


def test_ledger_stress_tables_show_figures_as_ledger_query_does(
    borrower_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stress tables showed money without separators (5526752.14), left-aligned, whole
    numbers without cents (250000000) and the utilisation as a fraction (0.04230174)."""
    url = borrower_store
    assert main(["--store", url, "stress", "--shock", "BTC=-55%", "--format", "json"]) == 0
    (one,) = json.loads(capsys.readouterr().out)["stresses"]
    assert main(["--store", url, "stress", "--shock", "BTC=-55%"]) == 0
    table = capsys.readouterr().out
    limits = one["lending_limits_after"]
    money = f"{Decimal(limits['firm_total_loans_max']).quantize(Decimal('0.01')):,f}"
    assert f" of {money} USD (utilisation " in table
    share = Decimal(limits["firm_utilisation"]) * 100
    assert f"(utilisation {share.quantize(Decimal('0.01')):,f}%)" in table
    header, *_rows = table.split("account_id", 1)[1].splitlines()
    assert header.split()[-1] == "bad_debt_loan"
    assert all(line == line.rstrip() for line in table.splitlines())  # no trailing padding
