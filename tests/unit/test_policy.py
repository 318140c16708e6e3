"""The policy loader: the demonstration policy, and each rule it refuses to break."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from ledger.policy import (
    INELIGIBLE_HAIRCUT,
    Haircut,
    MaintenanceTier,
    PolicyError,
    UnknownAsset,
    load_policy,
)

FIXTURES = Path(__file__).parent / "policies"
DEMO_TEXT = resources.files("ledger").joinpath("policies", "demo.toml").read_text("utf-8")


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The demo policy with one passage replaced, written to a file."""
    assert old in DEMO_TEXT, old
    path = tmp_path / "variant.toml"
    path.write_text(DEMO_TEXT.replace(old, new, 1), encoding="utf-8")
    return path


def test_demo_policy_loads_with_the_risk_md_example() -> None:
    policy = load_policy()
    assert policy.version == "2026-11-25.1"
    assert policy.va_haircut_floor == Decimal("0.60")
    assert policy.deadline_hours == 24
    assert policy.loan_annual_rate == Decimal("0.08")
    assert policy.loan_day_count == 365
    assert policy.shareholders_funds == Decimal(50_000_000)
    assert policy.max_total_loans_multiple == Decimal(5)
    assert policy.max_client_loan_share == Decimal("0.20")
    assert policy.sale_order == ("BTC", "ETH", "SEHK:*")
    assert set(policy.assets) == {"USD", "HKD", "BTC", "ETH", "SEHK:*"}
    assert policy.assets["BTC"].haircut == Haircut(
        Decimal("0.70"), Decimal("0.60"), Decimal("0.50")
    )
    assert policy.asset("USD").haircut == Haircut(Decimal(0), Decimal(0), Decimal(0))
    btc_perp = policy.market("BTC-PERP")
    assert btc_perp.initial_margin_rate == Decimal("0.10")
    assert btc_perp.liquidation_fee_rate == Decimal("0.005")
    assert btc_perp.settlement_asset == "USD"
    assert btc_perp.tiers == (
        MaintenanceTier(Decimal(1_000_000), Decimal("0.05"), Decimal(0)),
        MaintenanceTier(Decimal(5_000_000), Decimal("0.075"), Decimal(25_000)),
        MaintenanceTier(None, Decimal("0.10"), Decimal(150_000)),
    )
    assert [t.up_to for t in policy.market("ETH-PERP").tiers] == [
        Decimal(500_000),
        Decimal(2_500_000),
        None,
    ]


def test_digest_is_the_sha256_of_the_file_and_changes_with_it(tmp_path: Path) -> None:
    demo = load_policy()
    assert demo.digest == hashlib.sha256(DEMO_TEXT.encode("utf-8")).hexdigest()
    same = tmp_path / "same.toml"
    same.write_text(DEMO_TEXT, encoding="utf-8")
    assert load_policy(same).digest == demo.digest
    changed = load_policy(write_variant(tmp_path, "deadline_hours = 24", "deadline_hours = 12"))
    assert changed.digest != demo.digest
    assert changed.deadline_hours == 12


def test_a_minimal_policy_loads() -> None:
    policy = load_policy(FIXTURES / "minimal.toml")
    assert policy.version == "minimal.1"
    assert policy.markets == {}
    assert policy.sale_order == ()


def test_a_security_matches_its_venue_pattern() -> None:
    policy = load_policy()
    tencent = policy.asset("SEHK:0700")
    assert tencent.code == "SEHK:0700"
    assert tencent.eligible
    assert tencent.scale == 0
    assert tencent.haircut == policy.assets["SEHK:*"].haircut
    assert policy.asset_scale("SEHK:0700") == 0


def test_an_asset_missing_from_the_policy_is_ineligible_with_haircut_one() -> None:
    policy = load_policy()
    usdt = policy.asset("USDT")
    assert not usdt.eligible
    assert usdt.haircut == INELIGIBLE_HAIRCUT
    assert usdt.scale == 6  # from money.DEFAULT_SCALES
    nyse = policy.asset("NYSE:IBM")  # a security of a venue the policy does not list
    assert not nyse.eligible
    assert nyse.scale == 0
    assert nyse.haircut == INELIGIBLE_HAIRCUT


def test_an_unknown_asset_has_no_scale() -> None:
    policy = load_policy()
    assert policy.asset_scale("DOGE") is None
    assert policy.asset_scale("usd") is None
    with pytest.raises(UnknownAsset, match="DOGE"):
        policy.asset("DOGE")


def test_sale_rank_follows_sale_order_then_unlisted_last() -> None:
    policy = load_policy()
    assert policy.sale_rank("BTC") == 0
    assert policy.sale_rank("ETH") == 1
    assert policy.sale_rank("SEHK:0700") == 2
    assert policy.sale_rank("HKD") == 3
    assert policy.sale_rank("USDT") == 3
    held = ["USDT", "SEHK:0005", "HKD", "ETH", "BTC"]
    assert sorted(held, key=lambda a: (policy.sale_rank(a), a)) == [
        "BTC",
        "ETH",
        "SEHK:0005",
        "HKD",
        "USDT",
    ]


@pytest.mark.parametrize(
    ("notional", "rate"),
    [
        ("0", "0.05"),
        ("1000000", "0.05"),  # a boundary belongs to the tier below
        ("1000000.01", "0.075"),
        ("5000000", "0.075"),
        ("5000000.01", "0.10"),
        ("999999999", "0.10"),
    ],
)
def test_tier_holds_the_notional(notional: str, rate: str) -> None:
    assert load_policy().tier("BTC-PERP", Decimal(notional)).maintenance_rate == Decimal(rate)


def test_a_decimal_written_as_a_toml_float_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(FIXTURES / "float_decimal.toml")
    message = str(caught.value)
    assert "float_decimal.toml" in message
    assert "`va_haircut_floor` must be a decimal written as a string" in message
    assert "TOML float 0.6" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'haircut = { initial = "0.70", maintenance = "0.60"',
            'haircut = { initial = "0.70", maintenance = "0.55"',
            "`assets.BTC.haircut.maintenance` is 0.55, below the va_haircut_floor 0.60",
        ),
        (
            '[assets."SEHK:*"]',
            '[assets.SOL]\nscale = 8\nhaircut = { initial = "0.50", maintenance = "0.50", '
            'liquidation = "0.40" }\n\n[assets."SEHK:*"]',
            "`assets.SOL.haircut.initial` is 0.50, below the va_haircut_floor 0.60",
        ),
        (
            '{ up_to = "5000000", maintenance_rate = "0.075"',
            '{ up_to = "900000", maintenance_rate = "0.075"',
            "`markets.BTC-PERP.tiers[1].up_to` is 900000, not above 1000000",
        ),
        (
            '{ up_to = "5000000", maintenance_rate = "0.075", maintenance_amount = "25000" }',
            '{ up_to = "5000000", maintenance_rate = "0.075", maintenance_amount = "20000" }',
            "`markets.BTC-PERP.tiers[1].maintenance_amount` is 20000, but 25000.000 keeps",
        ),
        (
            '{ maintenance_rate = "0.10", maintenance_amount = "150000" },\n]\n\n# Continuity',
            '{ up_to = "9000000", maintenance_rate = "0.10", maintenance_amount = "150000" },'
            "\n]\n\n# Continuity",
            "`markets.BTC-PERP.tiers[2].up_to` must be left out",
        ),
        (
            "deadline_hours = 24\n",
            "",
            "`deadline_hours` is missing",
        ),
        (
            'loan_annual_rate = "0.08"',
            "loan_annual_rate = 0.08",
            "`loan_annual_rate` must be a decimal written as a string",
        ),
        (
            'shareholders_funds = "50000000"',
            "shareholders_funds = 50000000",
            "`shareholders_funds` must be a decimal written as a string",
        ),
        (
            'max_client_loan_share = "0.20"',
            'max_client_loan_share = "2E-1"',
            "`max_client_loan_share` is '2E-1', not a plain decimal number",
        ),
        (
            'initial = "0.40", maintenance = "0.30"',
            'initial = "0.20", maintenance = "0.30"',
            '`assets."SEHK:*".haircut` must have initial >= maintenance >= liquidation',
        ),
        (
            'initial = "0.05", maintenance = "0.03"',
            'initial = "1.05", maintenance = "0.03"',
            "`assets.HKD.haircut.initial` is 1.05, outside [0, 1]",
        ),
        (
            'initial_margin_rate = "0.10"',
            'initial_margin_rate = "0.06"',
            "`markets.BTC-PERP.tiers[1].maintenance_rate` is 0.075, above initial_margin_rate",
        ),
        (
            'maintenance_rate = "0.05",  maintenance_amount = "0"',
            'maintenance_rate = "0",  maintenance_amount = "0"',
            "`markets.BTC-PERP.tiers[0].maintenance_rate` is 0, outside (0, 1)",
        ),
        (
            'sale_order = ["BTC", "ETH", "SEHK:*"]',
            'sale_order = ["BTC", "SOL"]',
            "`sale_order[1]` names 'SOL', which [assets] does not list",
        ),
        (
            'sale_order = ["BTC", "ETH", "SEHK:*"]',
            'sale_order = ["BTC", "BTC"]',
            "`sale_order[1]` names 'BTC' a second time",
        ),
        (
            'max_total_loans_multiple = "5"',
            'max_total_loans_multiple = "6"',
            "`max_total_loans_multiple` is 6, above the SFC's cap of 5",
        ),
        (
            'va_haircut_floor = "0.60"',
            'va_haircut_floor = "0.50"',
            "`va_haircut_floor` is 0.50, below the SFC's 0.60",
        ),
        (
            "deadline_hours = 24",
            'deadline_hours = "24"',
            "`deadline_hours` must be a non-negative TOML integer, found '24'",
        ),
        (
            "[assets.HKD]\nscale = 2",
            "[assets.HKD]\nscale = 2\nhaircutt = 1",
            "`assets.HKD.haircutt` is not a policy key",
        ),
    ],
)
def test_a_broken_rule_is_refused_with_the_key_and_the_file(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write_variant(tmp_path, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert expected in str(caught.value)
    assert str(caught.value).startswith(f"policy file {path}: ")


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("version = \n", encoding="utf-8")
    with pytest.raises(PolicyError, match="is not valid UTF-8 TOML"):
        load_policy(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "absent.toml")
