"""The risk model of docs/risk-model.md, checked against figures a risk officer can work out
by hand.

Every scenario uses the demonstration policy (ledger/policies/demo.toml):
haircuts (initial / maintenance / liquidation) USD 0/0/0, HKD 0.05/0.03/0.02,
BTC 0.70/0.60/0.50, ETH 0.75/0.65/0.55, SEHK:* 0.40/0.30/0.20, USDT not listed (1/1/1);
BTC-PERP initial margin 10%, maintenance tiers
    notional <= 1,000,000:   5%   - 0
    notional <= 5,000,000:   7.5% - 25,000
    above:                  10%   - 150,000
loan interest 8% a year over 365 days.
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.money import DECIMAL_CONTEXT, ENTRY_PRICE_SCALE, quantize
from ledger.policy import load_policy
from ledger.risk import (
    AccountHoldings,
    MarginStatus,
    MissingMark,
    PositionHolding,
    daily_interest,
    funding_payments,
    lending_value,
    maintenance_margin,
    margin_call_amount,
    margin_figures,
    trade_realisation,
)

POLICY = load_policy()
BTC_PERP = POLICY.market("BTC-PERP")
D = Decimal


def account(
    balances: dict[str, str], loan: str = "0", positions: tuple[tuple[str, str, str], ...] = ()
) -> AccountHoldings:
    return AccountHoldings(
        balances={asset: D(amount) for asset, amount in balances.items()},
        loan=D(loan),
        positions=tuple(PositionHolding(m, D(size), D(entry)) for m, size, entry in positions),
    )


def marks(**by_instrument: str) -> dict[str, Decimal]:
    """Marks by keyword; `SEHK_0700` stands for `SEHK:0700`, `BTC_PERP` for `BTC-PERP`."""
    renamed = {
        k.replace("SEHK_", "SEHK:").replace("_PERP", "-PERP"): v for k, v in by_instrument.items()
    }
    return {instrument: D(price) for instrument, price in renamed.items()}


# --- Valuation --------------------------------------------------------------------------

MIXED = account(
    {"USD": "10000", "BTC": "0.5", "ETH": "4", "SEHK:0700": "100", "USDT": "1000"}, loan="8000"
)
MIXED_MARKS = marks(BTC="60000", ETH="2500", SEHK_0700="50", USDT="1")


def test_valuation_of_a_mixed_account() -> None:
    figures = margin_figures(MIXED, MIXED_MARKS, POLICY)
    # market value: USD 10,000 + BTC 0.5 * 60,000 = 30,000 + ETH 4 * 2,500 = 10,000
    #               + SEHK:0700 100 * 50 = 5,000 + USDT 1,000 * 1 = 1,000        = 56,000
    assert figures.market_value == D(56_000)
    # eligible collateral: all but USDT                                         = 55,000
    assert figures.eligible_collateral_value == D(55_000)
    # equity: 56,000 - loan 8,000                                               = 48,000
    assert figures.loan == D(8_000)
    assert figures.unrealized_pnl == 0
    assert figures.equity == D(48_000)
    # H_initial:     30,000 * 0.70 + 10,000 * 0.75 + 5,000 * 0.40 + 1,000 * 1 = 31,500
    # H_maintenance: 30,000 * 0.60 + 10,000 * 0.65 + 5,000 * 0.30 + 1,000     = 27,000
    # H_liquidation: 30,000 * 0.50 + 10,000 * 0.55 + 5,000 * 0.20 + 1,000     = 22,500
    assert figures.haircut_initial == D(31_500)
    assert figures.haircut_maintenance == D(27_000)
    assert figures.haircut_liquidation == D(22_500)
    # no positions: the requirements are the haircuts
    assert figures.initial_requirement == D(31_500)
    assert figures.maintenance_requirement == D(27_000)
    assert figures.liquidation_requirement == D(22_500)
    # excess 48,000 - 27,000 = 21,000; available 48,000 - 31,500 = 16,500
    assert figures.excess == D(21_000)
    assert figures.available == D(16_500)
    # margin level 48,000 / 27,000 = 1.777...; ltv 8,000 / 55,000 = 0.14545454|54...
    assert str(figures.margin_level) == "1.77777778"
    assert str(figures.ltv) == "0.14545455"
    assert figures.status is MarginStatus.HEALTHY
    assert figures.positions == ()


def test_figures_do_not_depend_on_the_callers_decimal_context() -> None:
    expected = margin_figures(MIXED, MIXED_MARKS, POLICY)
    with localcontext() as narrow:
        narrow.prec = 3
        assert margin_figures(MIXED, MIXED_MARKS, POLICY) == expected


def test_a_usd_mark_is_ignored_and_zero_balances_need_no_mark() -> None:
    holdings = account({"USD": "100", "ETH": "0"})
    figures = margin_figures(holdings, marks(USD="2"), POLICY)
    assert figures.market_value == D(100)


def test_a_held_asset_without_a_mark_is_missing_mark() -> None:
    with pytest.raises(MissingMark) as caught:
        margin_figures(account({"USD": "1", "BTC": "0.1"}), {}, POLICY)
    assert caught.value.args[0] == "BTC"
    assert isinstance(caught.value, KeyError)


def test_a_position_without_a_mark_is_missing_mark() -> None:
    holdings = account({"USD": "1000"}, positions=(("BTC-PERP", "1", "60000"),))
    with pytest.raises(MissingMark, match="BTC-PERP"):
        margin_figures(holdings, {}, POLICY)


def test_a_negative_balance_counts_in_value_but_carries_no_haircut() -> None:
    # BTC -0.1 at 60,000 = -6,000 of market value; haircuts only on b > 0
    figures = margin_figures(account({"USD": "10000", "BTC": "-0.1"}), marks(BTC="60000"), POLICY)
    assert figures.market_value == D(4_000)
    assert figures.eligible_collateral_value == D(10_000)
    assert figures.haircut_initial == 0


def test_margin_level_is_null_when_the_maintenance_requirement_is_zero() -> None:
    figures = margin_figures(account({"USD": "500"}), {}, POLICY)
    assert figures.maintenance_requirement == 0
    assert figures.margin_level is None
    assert figures.ltv == D("0E-8")  # no loan against 500 of collateral


def test_ltv_is_null_without_eligible_collateral() -> None:
    # USDT is not eligible: 1,000 USDT with a 100 loan has no eligible collateral
    figures = margin_figures(account({"USDT": "1000"}, loan="100"), marks(USDT="1"), POLICY)
    assert figures.eligible_collateral_value == 0
    assert figures.ltv is None
    # equity 1,000 - 100 = 900 against an ineligible haircut of 1: 1,000
    assert figures.maintenance_requirement == D(1_000)
    assert figures.status is MarginStatus.LIQUIDATING
    assert margin_figures(account({}), {}, POLICY).ltv is None


# --- Status and margin calls -------------------------------------------------------------


@pytest.mark.parametrize(
    ("loan", "status", "call"),
    [
        # BTC 1 at 10,000: MR = 6,000, LR = 5,000; E = 10,000 - loan
        ("3000", MarginStatus.HEALTHY, "-1000"),  # E 7,000 > MR
        ("4000", MarginStatus.HEALTHY, "0"),  # E 6,000 = MR: healthy
        ("4500", MarginStatus.MARGIN_CALL, "500"),  # E 5,500: call for 6,000 - 5,500
        ("5000", MarginStatus.MARGIN_CALL, "1000"),  # E 5,000 = LR: still a margin call
        ("5000.01", MarginStatus.LIQUIDATING, "1000.01"),  # E below LR
    ],
)
def test_status_follows_equity_against_the_requirements(
    loan: str, status: MarginStatus, call: str
) -> None:
    figures = margin_figures(account({"BTC": "1"}, loan=loan), marks(BTC="10000"), POLICY)
    assert figures.maintenance_requirement == D(6_000)
    assert figures.liquidation_requirement == D(5_000)
    assert figures.status is status
    assert margin_call_amount(figures) == D(call)


def test_a_call_amount_is_rounded_up_to_the_cent() -> None:
    # 0.3 BTC at 9,999.99: value 2,999.997, MR = 0.6 x 2,999.997 = 1,799.9982; loan 1,500:
    # E = 1,499.997; MR - E = 300.0012, asked as 300.01 (half-even would ask 300.00,
    # leaving the client 0.12 cents short after paying it).
    figures = margin_figures(account({"BTC": "0.3"}, loan="1500"), marks(BTC="9999.99"), POLICY)
    assert figures.maintenance_requirement - figures.equity == D("300.0012")
    assert margin_call_amount(figures) == D("300.01")


# --- Positions and the tiered maintenance margin --------------------------------------------


def test_requirements_of_a_perpetual_long() -> None:
    holdings = account({"USD": "20000", "BTC": "1"}, positions=(("BTC-PERP", "2", "50000"),))
    figures = margin_figures(holdings, marks(BTC="60000", BTC_PERP="60000"), POLICY)
    (position,) = figures.positions
    assert position.unrealized_pnl == D(20_000)  # 2 * (60,000 - 50,000)
    assert position.notional == D(120_000)  # |2| * 60,000
    assert position.initial_margin == D(12_000)  # 120,000 * 10%
    assert position.maintenance_margin == D(6_000)  # 120,000 * 5% - 0
    assert position.mark_price == D(60_000)
    # E = 20,000 + 60,000 (BTC) + 20,000 (PnL) = 100,000
    assert figures.equity == D(100_000)
    # IR = 60,000 * 0.70 + 12,000 = 54,000; MR = 36,000 + 6,000; LR = 30,000 + 6,000
    assert figures.initial_requirement == D(54_000)
    assert figures.maintenance_requirement == D(42_000)
    assert figures.liquidation_requirement == D(36_000)
    assert figures.available == D(46_000)


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        ("0", "0"),
        ("500000", "25000"),  # 500,000 * 5%
        ("1000000", "50000"),  # boundary, tier 1: 1,000,000 * 5% - 0
        ("1000000.01", "50000.00075"),  # tier 2: 1,000,000.01 * 7.5% - 25,000
        ("3000000", "200000"),  # 3,000,000 * 7.5% - 25,000
        ("5000000", "350000"),  # boundary, tier 2: 375,000 - 25,000
        ("5000000.01", "350000.001"),  # tier 3: 500,000.001 - 150,000
        ("10000000", "850000"),  # 1,000,000 - 150,000
    ],
)
def test_tiered_maintenance_margin(notional: str, expected: str) -> None:
    assert maintenance_margin(D(notional), BTC_PERP) == D(expected)


@pytest.mark.parametrize("market", ["BTC-PERP", "ETH-PERP"])
def test_maintenance_margin_is_continuous_at_every_boundary(market: str) -> None:
    tiers = POLICY.market(market).tiers
    assert len(tiers) >= 2, "no boundary to check"
    for below, above in itertools.pairwise(tiers):
        assert below.up_to is not None
        n = below.up_to
        assert n * below.maintenance_rate - below.maintenance_amount == (
            n * above.maintenance_rate - above.maintenance_amount
        )


# --- Liquidation price ---------------------------------------------------------------------


def single_perp(cash: str, size: str, entry: str) -> AccountHoldings:
    return account({"USD": cash}, positions=(("BTC-PERP", size, entry),))


def liquidation_price(
    holdings: AccountHoldings, prices: dict[str, Decimal], market: str
) -> Decimal | None:
    """The liquidation price `margin_figures` gives `market`'s position. A position's own
    mark does not enter it (every other mark held constant), so where `prices` has no mark
    for a position its entry price stands in."""
    entries = {p.market: p.entry_price for p in holdings.positions}
    figures = margin_figures(holdings, {**entries, **prices}, POLICY)
    return next((p.liquidation_price for p in figures.positions if p.market == market), None)


def test_liquidation_price_of_a_long_with_usd_collateral() -> None:
    # Cash c, long s at entry e, tier 1 (rate r = 0.05, amount 0). At mark P:
    #   E = c + s (P - e),  LR = s P r.   E = LR  <=>  P = (s e - c) / (s (1 - r))
    #                                              = e - (c - s e r) / (s (1 - r))
    # c = 10,000, s = 1, e = 60,000:  P = 50,000 / 0.95 = 52,631.578947368421...
    holdings = single_perp("10000", "1", "60000")
    price = liquidation_price(holdings, {}, "BTC-PERP")
    closed_form = (Fraction(1) * 60_000 - 10_000) / (Fraction(1) * (1 - Fraction("0.05")))
    assert price == D("52631.57894737")
    assert price == quantize(D(closed_form.numerator) / D(closed_form.denominator), 8)
    # the same price whatever the position's own mark
    for mark in ("40000", "60000", "90000"):
        figures = margin_figures(holdings, marks(BTC_PERP=mark), POLICY)
        assert figures.positions[0].liquidation_price == price


def test_liquidation_price_of_a_short_with_usd_collateral() -> None:
    # Short s < 0: E = c + s (P - e), LR = |s| P r.  P = (s e - c) / (s (1 + r))
    # c = 10,000, s = -1, e = 60,000:  P = (-60,000 - 10,000) / (-1.05) = 66,666.6666...
    price = liquidation_price(single_perp("10000", "-1", "60000"), {}, "BTC-PERP")
    assert price == D("66666.66666667")


def test_liquidation_price_in_the_second_tier() -> None:
    # s = 20, e = 60,000, c = 175,000. Tier 2 (7.5%, 25,000) holds notional 20 P when
    # 50,000 < P <= 250,000:  175,000 + 20 (P - 60,000) = 1.5 P - 25,000
    #   18.5 P = 1,000,000  =>  P = 54,054.054054...  (notional 1,081,081: in tier 2).
    # Tier 1 would give 19 P = 1,025,000, P = 53,947.37, notional 1,078,947: not in tier 1.
    price = liquidation_price(single_perp("175000", "20", "60000"), {}, "BTC-PERP")
    assert price == D("54054.05405405")


def test_liquidation_price_exactly_on_a_tier_boundary() -> None:
    # c = 250,000: tier 1 gives 19 P = 950,000, tier 2 gives 18.5 P = 925,000: both P = 50,000,
    # notional 1,000,000, the boundary (MM is continuous there).
    price = liquidation_price(single_perp("250000", "20", "60000"), {}, "BTC-PERP")
    assert price == D("50000.00000000")


def test_liquidation_price_with_spot_collateral_and_a_loan() -> None:
    # BTC 1 at 60,000 (liquidation haircut 50%), ETH-free, loan 40,000, long 1 BTC-PERP at 60,000.
    # Holding the BTC mark constant: C = 60,000 - 40,000 = 20,000, K = 30,000.
    #   20,000 + (P - 60,000) = 30,000 + 0.05 P  =>  0.95 P = 70,000  =>  P = 73,684.2105...
    holdings = account({"BTC": "1"}, loan="40000", positions=(("BTC-PERP", "1", "60000"),))
    assert liquidation_price(holdings, marks(BTC="60000"), "BTC-PERP") == D("73684.21052632")


def test_no_liquidation_price_without_a_positive_solution() -> None:
    # c = s e: P = 0 / 0.95 = 0, not positive; more cash makes it negative.
    assert liquidation_price(single_perp("60000", "1", "60000"), {}, "BTC-PERP") is None
    assert liquidation_price(single_perp("90000", "1", "60000"), {}, "BTC-PERP") is None
    # no position in the market
    assert liquidation_price(single_perp("1000", "1", "60000"), {}, "ETH-PERP") is None


@settings(max_examples=200, deadline=None)
@given(
    cash=st.integers(min_value=0, max_value=10_000_000),
    size_units=st.integers(min_value=-5_000_000, max_value=5_000_000).filter(lambda n: n != 0),
    entry=st.integers(min_value=1_000, max_value=200_000),
)
def test_at_the_liquidation_price_equity_meets_the_liquidation_requirement(
    cash: int, size_units: int, entry: int
) -> None:
    size = D(size_units).scaleb(-4)  # up to 500 BTC, to reach every tier
    holdings = AccountHoldings(
        {"USD": D(cash)}, D(0), (PositionHolding("BTC-PERP", size, D(entry)),)
    )
    price = liquidation_price(holdings, {}, "BTC-PERP")
    if price is None:
        assert size > 0  # a short always has one: P = (|s| e + c) / (|s| (1 + r))
        return
    figures = margin_figures(holdings, {"BTC-PERP": price}, POLICY)
    # P is rounded to 1e-8; E - LR moves by at most |s| (1 + r) per unit of P.
    slack = abs(size) * D("1.1") * D("0.5E-8")
    assert abs(figures.equity - figures.liquidation_requirement) <= slack


# --- Lending value -------------------------------------------------------------------------


def test_lending_value_excludes_cash_and_ineligible_assets() -> None:
    balances = {
        "USD": D(50_000),  # cash: excluded
        "HKD": D(100_000),  # cash: excluded
        "USDT": D(10_000),  # not eligible: excluded
        "BTC": D("0.5"),  # 30,000 * (1 - 0.70) = 9,000
        "ETH": D(4),  # 10,000 * (1 - 0.75) = 2,500
        "SEHK:0700": D(100),  # 5,000 * (1 - 0.40) = 3,000
        "SEHK:0005": D(-10),  # negative: excluded (and needs no mark)
    }
    value = lending_value(balances, marks(BTC="60000", ETH="2500", SEHK_0700="50"), POLICY)
    assert value == D(14_500)


# --- Funding -------------------------------------------------------------------------------


def test_longs_pay_shorts_when_the_rate_is_positive() -> None:
    # M * f = 60,000 * 0.0001 = 6 per unit
    payments, residue = funding_payments(
        {"b": D(-1), "a": D(2), "c": D(-1), "flat": D(0)}, D(60_000), D("0.0001"), 2
    )
    assert payments == {"a": D(12), "b": D(-6), "c": D(-6)}
    assert list(payments) == ["a", "b", "c"]  # sorted, flat positions left out
    assert residue == 0


def test_shorts_pay_longs_when_the_rate_is_negative_and_the_rounding_goes_to_the_house() -> None:
    # M * f = 60,000 * -0.00001 = -0.6 per unit
    # a long 0.00000003: -0.000000018 -> 0.00 (receives nothing after rounding)
    # b short 0.015:      0.009      -> 0.01 (pays)
    # c short 0.0075:     0.0045     -> 0.00 (half-even)
    payments, residue = funding_payments(
        {"a": D("0.00000003"), "b": D("-0.015"), "c": D("-0.0075")}, D(60_000), D("-0.00001"), 2
    )
    assert payments == {"a": D("0.00"), "b": D("0.01"), "c": D("0.00")}
    assert str(payments["a"]) == "0.00"  # never -0.00
    assert residue == D("-0.01")  # the house is credited the cent


sizes_strategy = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=4),
    st.integers(min_value=-(10**12), max_value=10**12).map(lambda n: D(n).scaleb(-8)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    sizes=sizes_strategy,
    mark=st.integers(min_value=1, max_value=10**13).map(lambda n: D(n).scaleb(-4)),
    rate=st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: D(n).scaleb(-8)),
)
def test_funding_sums_to_zero_with_the_residue(
    sizes: dict[str, Decimal], mark: Decimal, rate: Decimal
) -> None:
    payments, residue = funding_payments(sizes, mark, rate, 2)
    # every open position pays or receives, flat ones are left out: the loop below is not
    # over an empty or partial mapping by accident
    assert set(payments) == {account_id for account_id, size in sizes.items() if size}
    with localcontext(DECIMAL_CONTEXT):
        assert sum(payments.values(), D(0)) + residue == 0
        for account_id, amount in payments.items():
            owed = sizes[account_id] * mark * rate
            assert amount == quantize(owed, 2)
            assert amount.as_tuple().exponent == -2
            if owed > 0:
                assert amount >= 0  # pays
            if owed < 0:
                assert amount <= 0  # receives


# --- Interest ------------------------------------------------------------------------------


def test_daily_interest_at_the_demo_rate() -> None:
    # 100,000.00 * 0.08 / 365 = 21.9178... -> 21.92
    assert daily_interest(D("100000.00"), POLICY) == D("21.92")
    assert daily_interest(D(0), POLICY) == D("0.00")


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        # rate 0.073 / 365 = 0.0002 a day
        ("25.00", "0.00"),  # 0.005 -> 0.00 (half to even)
        ("75.00", "0.02"),  # 0.015 -> 0.02
        ("125.00", "0.02"),  # 0.025 -> 0.02
        ("124.99", "0.02"),  # 0.024998 -> 0.02
        ("125.01", "0.03"),  # 0.025002 -> 0.03
    ],
)
def test_daily_interest_rounds_half_to_even(principal: str, expected: str) -> None:
    policy = dataclasses.replace(POLICY, loan_annual_rate=D("0.073"))
    assert daily_interest(D(principal), policy) == D(expected)


# --- Trades on a one-way position --------------------------------------------------------------


def test_open_increase_reduce_close() -> None:
    opened = trade_realisation(D(0), D(0), D(2), D(100))  # buy 2 at 100
    assert (opened.new_size, opened.new_entry_price, opened.realised_pnl) == (D(2), D(100), D(0))
    assert (opened.closed_size, opened.opened_size) == (D(0), D(2))
    increased = trade_realisation(D(2), D(100), D(1), D(130))  # buy 1 more at 130
    assert increased.new_size == 3
    assert increased.new_entry_price == 110  # (2 * 100 + 1 * 130) / 3
    assert increased.realised_pnl == 0
    reduced = trade_realisation(D(3), D(110), D(-1), D(140))  # sell 1 at 140
    assert (reduced.new_size, reduced.new_entry_price) == (D(2), D(110))
    assert reduced.realised_pnl == 30  # 1 * (140 - 110)
    assert (reduced.closed_size, reduced.opened_size) == (D(1), D(0))
    closed = trade_realisation(D(2), D(110), D(-2), D(100))  # sell 2 at 100
    assert (closed.new_size, closed.new_entry_price) == (D(0), D(0))
    assert closed.realised_pnl == -20  # 2 * (100 - 110)


def test_a_short_gains_when_bought_back_lower() -> None:
    effect = trade_realisation(D(-3), D(120), D(1), D(100))  # buy 1 back at 100
    assert effect.closed_size == -1
    assert effect.realised_pnl == 20  # -1 * (100 - 120)
    assert (effect.new_size, effect.new_entry_price) == (D(-2), D(120))


def test_flip_closes_then_opens_at_the_trade_price() -> None:
    effect = trade_realisation(D(2), D(110), D(-5), D(120))  # sell 5 at 120
    assert effect.realised_pnl == 20  # closes 2: 2 * (120 - 110)
    assert (effect.closed_size, effect.opened_size) == (D(2), D(-3))
    assert (effect.new_size, effect.new_entry_price) == (D(-3), D(120))


trades_strategy = st.lists(
    st.tuples(
        st.integers(min_value=-(10**9), max_value=10**9)
        .filter(lambda n: n != 0)
        .map(lambda n: D(n).scaleb(-6)),
        st.integers(min_value=1, max_value=10**10).map(lambda n: D(n).scaleb(-2)),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(trades=trades_strategy, final_mark=st.integers(min_value=1, max_value=10**10))
def test_realised_plus_unrealised_pnl_is_conserved(
    trades: list[tuple[Decimal, Decimal]], final_mark: int
) -> None:
    # Reference: the PnL of a sequence of trades at a final mark X is sum_i q_i * (X - p_i),
    # whatever the bookkeeping; the ledger's view is realised PnL + s * (X - e).
    size, entry, realised = D(0), D(0), D(0)
    for quantity, price in trades:
        effect = trade_realisation(size, entry, quantity, price)
        assert effect.new_size == size - effect.closed_size + effect.opened_size
        with localcontext(DECIMAL_CONTEXT):
            assert effect.realised_pnl == effect.closed_size * (price - entry)
            realised += effect.realised_pnl
        size, entry = effect.new_size, effect.new_entry_price
    mark = Fraction(final_mark)
    reference = sum((Fraction(q) * (mark - Fraction(p)) for q, p in trades), Fraction(0))
    ledger_view = Fraction(realised) + Fraction(size) * (mark - Fraction(entry))
    # exact but for the volume-weighted entry price, kept to ENTRY_PRICE_SCALE places: each
    # rounding moves the entry by at most half a unit there, on a size of at most sum |q|
    traded = sum((abs(Fraction(q)) for q, _ in trades), Fraction(0))
    bound = traded * len(trades) * Fraction(1, 2 * 10**ENTRY_PRICE_SCALE)
    assert abs(ledger_view - reference) <= bound
