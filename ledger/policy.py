"""The risk policy (docs/risk-model.md "Policy"): a versioned TOML file loaded into frozen values.

Decimals are written as TOML strings (`"0.60"`) and parsed with `money.parse_decimal_text`;
a TOML number where a decimal belongs is refused, because a binary float cannot hold
`0.1` exactly. Only `deadline_hours`, `loan_day_count` and `scale` are TOML integers.

Every rule of the file is checked here, once, with a `PolicyError` naming the file and
the key, so that the risk formulas (`ledger/risk.py`) can trust what they read:

- haircuts lie in [0, 1] with `initial >= maintenance >= liquidation`;
- the initial and maintenance haircuts of every virtual asset (any asset that is neither
  cash nor a listed security) are at least `va_haircut_floor`, itself at least the SFC's
  60%;
- a market's tiers are ordered by `up_to`, only the last has none, every rate lies in
  (0, 1), `initial_margin_rate` is at least every `maintenance_rate`, the first tier's
  `maintenance_amount` is 0 and each later one keeps the maintenance margin continuous at
  the boundary below it (so the maintenance margin never jumps and never goes negative);
- `sale_order` names assets of the policy, once each, never USD;
- the firm's lending limits are positive, the total-loans multiple at most the SFC's 5;
- the concentration limits, when given, lie in (0, 1].
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from ledger.invariants import require
from ledger.money import (
    DECIMAL_CONTEXT,
    DEFAULT_SCALES,
    ONE,
    REPORTING_ASSET,
    SECURITY_SCALE,
    ZERO,
    format_decimal,
    is_security,
    parse_decimal_text,
)

# Cash: fiat currencies. Not a virtual asset, and never lent against (docs/risk-model.md "Rules").
CASH_ASSETS: frozenset[str] = frozenset({"USD", "HKD"})

# The SFC's framework: virtual-asset collateral haircut at least 60%, and a broker's total
# margin loans at most 5 times its shareholders' funds. A policy may be stricter, never looser.
SFC_VA_HAIRCUT_FLOOR_MIN = Decimal("0.60")
SFC_TOTAL_LOANS_MULTIPLE_MAX = Decimal(5)

asset_scale_max = 18  # decimal places of any asset
tiers_per_market_max = 32

_ASSET_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,11}$")
_SECURITY_PATTERN = re.compile(r"^[A-Z]{2,8}:\*$")  # every security of one venue: `SEHK:*`
_MARKET_CODE = re.compile(r"^[A-Z][A-Z0-9]{0,11}-PERP$")

_TOP_KEYS = frozenset(
    {
        "version",
        "va_haircut_floor",
        "deadline_hours",
        "loan_annual_rate",
        "loan_day_count",
        "shareholders_funds",
        "max_total_loans_multiple",
        "max_client_loan_share",
        "sale_order",
        "assets",
        "markets",
    }
)
# Optional keys: the concentration limits, monitored by the views, never a refusal (a
# deposit is a fact); the market-input guards, with the defaults below (docs/risk-model.md).
_OPTIONAL_TOP_KEYS = frozenset(
    {
        "max_asset_collateral_share",
        "max_client_asset_share",
        "mark_max_age_minutes",
        "mark_alert_move",
        "advances_during_call",
    }
)
MARK_MAX_AGE_MINUTES_DEFAULT = 15
MARK_ALERT_MOVE_DEFAULT = Decimal("0.10")
MAX_FUNDING_RATE_DEFAULT = Decimal("0.0075")
_ASSET_KEYS = frozenset({"scale", "haircut"})
_HAIRCUT_KEYS = frozenset({"initial", "maintenance", "liquidation"})
_MARKET_KEYS = frozenset(
    {"initial_margin_rate", "liquidation_fee_rate", "tiers", "settlement_asset"}
)
_MARKET_OPTIONAL_KEYS = frozenset({"settlement_asset", "max_funding_rate"})
_TIER_KEYS = frozenset({"up_to", "maintenance_rate", "maintenance_amount"})

DEMO_POLICY_NAME = "ledger/policies/demo.toml"


class PolicyError(ValueError):
    """The policy file breaks a rule; the message names the file and the key."""


class UnknownAsset(KeyError):
    """An asset code neither in the policy nor among the assets the ledger knows."""

    def __str__(self) -> str:
        return f"unknown asset {self.args[0]!r}: not in the policy and not a known asset code"


@dataclass(frozen=True)
class Haircut:
    initial: Decimal
    maintenance: Decimal
    liquidation: Decimal


INELIGIBLE_HAIRCUT = Haircut(initial=ONE, maintenance=ONE, liquidation=ONE)


@dataclass(frozen=True)
class AssetPolicy:
    """One asset's rules. `eligible` means listed in the policy (directly or by a pattern);
    an asset missing from the policy is ineligible: haircut 1 at every level."""

    code: str
    scale: int
    haircut: Haircut
    eligible: bool


@dataclass(frozen=True)
class MaintenanceTier:
    """`MM = notional * maintenance_rate - maintenance_amount` for notional in the bracket
    (previous tier's `up_to`, `up_to`]; `up_to` is None for the last tier."""

    up_to: Decimal | None
    maintenance_rate: Decimal
    maintenance_amount: Decimal


@dataclass(frozen=True)
class MarketPolicy:
    market: str
    initial_margin_rate: Decimal
    liquidation_fee_rate: Decimal
    tiers: tuple[MaintenanceTier, ...]
    settlement_asset: str = REPORTING_ASSET
    # A funding rate of larger magnitude is refused `funding_rate_out_of_bounds`.
    max_funding_rate: Decimal = MAX_FUNDING_RATE_DEFAULT

    def tier(self, notional: Decimal) -> MaintenanceTier:
        """The first tier whose bracket holds `notional` (`notional <= up_to`, or the last)."""
        for tier in self.tiers:
            if tier.up_to is None or notional <= tier.up_to:
                return tier
        return self.tiers[-1]  # unreachable for a loaded policy: its last tier has no up_to


@dataclass(frozen=True)
class Policy:
    version: str
    digest: str  # sha256 hex of the file's bytes
    va_haircut_floor: Decimal
    deadline_hours: int
    loan_annual_rate: Decimal
    loan_day_count: int
    shareholders_funds: Decimal
    max_total_loans_multiple: Decimal
    max_client_loan_share: Decimal
    sale_order: tuple[str, ...]
    assets: Mapping[str, AssetPolicy]  # keys as written, patterns (`SEHK:*`) included
    markets: Mapping[str, MarketPolicy]
    # One asset's share of the market value of all clients' collateral, at most; None: none.
    max_asset_collateral_share: Decimal | None = None
    # One client's share of all clients' holdings of one asset, at most; None: no limit.
    max_client_asset_share: Decimal | None = None
    # No margin call or liquidation is decided on a mark older than this (event time).
    mark_max_age_minutes: int = MARK_MAX_AGE_MINUTES_DEFAULT
    # A mark moving more than this fraction from the previous one is journalled as an alert.
    mark_alert_move: Decimal = MARK_ALERT_MOVE_DEFAULT
    # Whether loan draws and withdrawals may be approved while a margin call is open.
    advances_during_call: bool = False
    # The file's bytes, as the writer keeps them in the store when it adopts the policy (the
    # document a reader values that part of the journal with, checked against `digest`).
    document: bytes = field(default=b"", repr=False, compare=False)
    # Resolved lookups by code (patterns and defaults); a memo, not part of the value.
    _resolved: dict[str, AssetPolicy] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def asset(self, code: str) -> AssetPolicy:
        """The asset's policy: the exact key, else a matching pattern (`SEHK:*` matches
        `SEHK:0700`), else ineligible with haircut 1/1/1 and the default scale.

        Raises `UnknownAsset` (a KeyError) when the code is none of these."""
        resolved = self._resolved.get(code)
        if resolved is None:
            resolved = self._resolve(code)
            self._resolved[code] = resolved
        return resolved

    def _resolve(self, code: str) -> AssetPolicy:
        listed = self.assets.get(code)
        if listed is not None:
            return listed
        pattern = _pattern_for(code)
        if pattern is not None and pattern in self.assets:
            return replace(self.assets[pattern], code=code)
        if code in DEFAULT_SCALES:
            return AssetPolicy(code, DEFAULT_SCALES[code], INELIGIBLE_HAIRCUT, eligible=False)
        if is_security(code):
            return AssetPolicy(code, SECURITY_SCALE, INELIGIBLE_HAIRCUT, eligible=False)
        raise UnknownAsset(code)

    def asset_scale(self, code: str) -> int | None:
        """The asset's scale, or None when the asset is unknown to the ledger."""
        try:
            return self.asset(code).scale
        except UnknownAsset:
            return None

    def sale_rank(self, code: str) -> int:
        """Position of the asset in `sale_order` (exact entry first, then its pattern);
        assets not listed rank last (`len(sale_order)`): sort by `(sale_rank, code)`."""
        if code in self.sale_order:
            return self.sale_order.index(code)
        pattern = _pattern_for(code)
        if pattern is not None and pattern in self.sale_order:
            return self.sale_order.index(pattern)
        return len(self.sale_order)

    def market(self, market: str) -> MarketPolicy:
        """The market's policy; raises KeyError for a market the policy does not list."""
        return self.markets[market]

    def tier(self, market: str, notional: Decimal) -> MaintenanceTier:
        """The maintenance tier of `market` whose bracket holds `notional`."""
        return self.markets[market].tier(notional)


def _pattern_for(code: str) -> str | None:
    """The pattern key that would cover `code`: `SEHK:*` for a security `SEHK:0700`."""
    if is_security(code):
        return code.split(":", 1)[0] + ":*"
    return None


def _is_asset_key(code: str) -> bool:
    return (
        _ASSET_CODE.match(code) is not None
        or is_security(code)
        or _SECURITY_PATTERN.match(code) is not None
    )


def is_virtual_asset(code: str) -> bool:
    """Neither cash nor a listed security (nor a pattern of securities)."""
    return not (
        code in CASH_ASSETS or is_security(code) or _SECURITY_PATTERN.match(code) is not None
    )


def load_policy(path: Path | None = None) -> Policy:
    """Load and check a policy file; None loads the shipped demonstration policy."""
    if path is None:
        raw = resources.files("ledger").joinpath("policies", "demo.toml").read_bytes()
        name = DEMO_POLICY_NAME
    else:
        try:
            raw = path.read_bytes()
        except OSError as error:
            msg = f"policy file {path} cannot be read: {error.strerror}."
            raise PolicyError(msg) from error
        name = str(path)
    return parse_policy(raw, name)


def parse_policy(raw: bytes, name: str) -> Policy:
    """Parse the bytes of a policy file; `name` is used in error messages."""
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        msg = f"policy file {name} is not valid UTF-8 TOML: {error}."
        raise PolicyError(msg) from error
    reader = _Reader(name)
    reader.keys(document, "", required=_TOP_KEYS, optional=_OPTIONAL_TOP_KEYS)
    floor = reader.fraction(document, "va_haircut_floor", "")
    if floor < SFC_VA_HAIRCUT_FLOOR_MIN:
        reader.fail("va_haircut_floor", f"is {floor}, below the SFC's {SFC_VA_HAIRCUT_FLOOR_MIN}")
    assets = _assets(reader, document, floor)
    markets = _markets(reader, document, assets)
    policy = Policy(
        version=reader.text(document, "version", ""),
        digest=hashlib.sha256(raw).hexdigest(),
        va_haircut_floor=floor,
        deadline_hours=reader.positive_int(document, "deadline_hours", ""),
        loan_annual_rate=reader.fraction(document, "loan_annual_rate", ""),
        loan_day_count=reader.positive_int(document, "loan_day_count", ""),
        shareholders_funds=reader.positive(document, "shareholders_funds", ""),
        max_total_loans_multiple=reader.positive(document, "max_total_loans_multiple", ""),
        max_client_loan_share=reader.fraction(document, "max_client_loan_share", ""),
        sale_order=_sale_order(reader, document, assets),
        assets=MappingProxyType(assets),
        markets=MappingProxyType(markets),
        max_asset_collateral_share=_optional_share(reader, document, "max_asset_collateral_share"),
        max_client_asset_share=_optional_share(reader, document, "max_client_asset_share"),
        mark_max_age_minutes=reader.positive_int(
            document, "mark_max_age_minutes", "", MARK_MAX_AGE_MINUTES_DEFAULT
        ),
        mark_alert_move=reader.fraction(document, "mark_alert_move", "", MARK_ALERT_MOVE_DEFAULT),
        advances_during_call=reader.boolean(document, "advances_during_call", "", False),
        document=raw,
    )
    if policy.max_total_loans_multiple > SFC_TOTAL_LOANS_MULTIPLE_MAX:
        reader.fail(
            "max_total_loans_multiple",
            f"is {policy.max_total_loans_multiple}, above the SFC's cap of "
            f"{SFC_TOTAL_LOANS_MULTIPLE_MAX}",
        )
    if policy.max_client_loan_share.is_zero():
        reader.fail("max_client_loan_share", "must be greater than 0")
    return policy


def _optional_share(reader: _Reader, document: dict[str, Any], key: str) -> Decimal | None:
    """A limit in (0, 1], or None when the policy leaves it out."""
    if key not in document:
        return None
    share = reader.fraction(document, key, "")
    if share.is_zero():
        reader.fail(key, "must be greater than 0 (leave it out for no limit)")
    return share


def _assets(reader: _Reader, document: dict[str, Any], floor: Decimal) -> dict[str, AssetPolicy]:
    table = reader.table(document, "assets", "")
    if REPORTING_ASSET not in table:
        reader.fail("assets", f"must list {REPORTING_ASSET}, the reporting and loan currency")
    assets: dict[str, AssetPolicy] = {}
    for code, entry in table.items():
        where = f"assets.{_quote(code)}"
        if not _is_asset_key(code):
            reader.fail(where, "is not an asset code, a security (`SEHK:0700`) or `VENUE:*`")
        if not isinstance(entry, dict):
            reader.fail(where, "must be a table with `scale` and `haircut`")
        reader.keys(entry, where, required=_ASSET_KEYS, optional=frozenset())
        scale = reader.integer(entry, "scale", where)
        if scale > asset_scale_max:
            reader.fail(f"{where}.scale", f"is {scale}, above {asset_scale_max}")
        haircut = _haircut(reader, entry, where)
        if is_virtual_asset(code):
            for level in ("initial", "maintenance"):
                value: Decimal = getattr(haircut, level)
                if value < floor:
                    reader.fail(
                        f"{where}.haircut.{level}",
                        f"is {value}, below the va_haircut_floor {floor} that applies to "
                        "every virtual asset",
                    )
        assets[code] = AssetPolicy(code=code, scale=scale, haircut=haircut, eligible=True)
    return assets


def _haircut(reader: _Reader, entry: dict[str, Any], where: str) -> Haircut:
    where = f"{where}.haircut"
    table = reader.table(entry, "haircut", where.rsplit(".", 1)[0])
    reader.keys(table, where, required=_HAIRCUT_KEYS, optional=frozenset())
    initial = reader.fraction(table, "initial", where)
    maintenance = reader.fraction(table, "maintenance", where)
    liquidation = reader.fraction(table, "liquidation", where)
    if not initial >= maintenance >= liquidation:
        reader.fail(
            where,
            f"must have initial >= maintenance >= liquidation, "
            f"found {initial} / {maintenance} / {liquidation}",
        )
    return Haircut(initial=initial, maintenance=maintenance, liquidation=liquidation)


def _markets(
    reader: _Reader, document: dict[str, Any], assets: Mapping[str, AssetPolicy]
) -> dict[str, MarketPolicy]:
    markets: dict[str, MarketPolicy] = {}
    for name, entry in reader.table(document, "markets", "").items():
        where = f"markets.{_quote(name)}"
        if _MARKET_CODE.match(name) is None:
            reader.fail(where, "is not a perpetual market code such as `BTC-PERP`")
        if not isinstance(entry, dict):
            reader.fail(where, "must be a table")
        reader.keys(
            entry,
            where,
            required=_MARKET_KEYS - _MARKET_OPTIONAL_KEYS,
            optional=_MARKET_OPTIONAL_KEYS,
        )
        settlement = entry.get("settlement_asset", REPORTING_ASSET)
        if settlement != REPORTING_ASSET or settlement not in assets:
            reader.fail(
                f"{where}.settlement_asset",
                f"must be {REPORTING_ASSET}: markets are linear, quoted and settled in USD",
            )
        initial_rate = reader.open_rate(entry, "initial_margin_rate", where)
        fee_rate = reader.fraction(entry, "liquidation_fee_rate", where)
        if fee_rate == ONE:
            reader.fail(f"{where}.liquidation_fee_rate", "must be below 1")
        tiers = _tiers(reader, entry, where)
        for index, tier in enumerate(tiers):
            if tier.maintenance_rate > initial_rate:
                reader.fail(
                    f"{where}.tiers[{index}].maintenance_rate",
                    f"is {tier.maintenance_rate}, above initial_margin_rate {initial_rate}",
                )
        markets[name] = MarketPolicy(
            name,
            initial_rate,
            fee_rate,
            tiers,
            settlement,
            max_funding_rate=reader.fraction(
                entry, "max_funding_rate", where, MAX_FUNDING_RATE_DEFAULT
            ),
        )
    return markets


def _tiers(reader: _Reader, entry: dict[str, Any], where: str) -> tuple[MaintenanceTier, ...]:
    raw = entry.get("tiers")
    if not isinstance(raw, list) or not raw or len(raw) > tiers_per_market_max:
        reader.fail(f"{where}.tiers", f"must be a list of 1 to {tiers_per_market_max} tiers")
    tiers: list[MaintenanceTier] = []
    for index, item in enumerate(raw):
        at = f"{where}.tiers[{index}]"
        if not isinstance(item, dict):
            reader.fail(at, "must be a table")
        reader.keys(item, at, required=_TIER_KEYS - {"up_to"}, optional=frozenset({"up_to"}))
        last = index == len(raw) - 1
        if last and "up_to" in item:
            reader.fail(f"{at}.up_to", "must be left out: the last tier has no upper bound")
        if not last and "up_to" not in item:
            reader.fail(f"{at}.up_to", "is missing: only the last tier has no upper bound")
        tier = MaintenanceTier(
            up_to=None if last else reader.positive(item, "up_to", at),
            maintenance_rate=reader.open_rate(item, "maintenance_rate", at),
            maintenance_amount=reader.decimal(item, "maintenance_amount", at),
        )
        if tiers:
            _check_tier_join(reader, tiers[-1], tier, at)
        elif not tier.maintenance_amount.is_zero():
            reader.fail(f"{at}.maintenance_amount", "must be 0 in the first tier")
        tiers.append(tier)
    return tuple(tiers)


def _check_tier_join(
    reader: _Reader, below: MaintenanceTier, tier: MaintenanceTier, at: str
) -> None:
    """Tiers ordered by up_to, and MM continuous at the boundary with the tier below."""
    boundary = below.up_to
    require(boundary is not None, "only the last tier has no up_to")
    if boundary is None:  # pragma: no cover - refused by require just above
        return
    if tier.up_to is not None and tier.up_to <= boundary:
        reader.fail(
            f"{at}.up_to",
            f"is {tier.up_to}, not above {boundary}: tiers must be ordered by increasing up_to",
        )
    with localcontext(DECIMAL_CONTEXT):
        expected = below.maintenance_amount + boundary * (
            tier.maintenance_rate - below.maintenance_rate
        )
    if tier.maintenance_amount != expected:
        reader.fail(
            f"{at}.maintenance_amount",
            f"is {tier.maintenance_amount}, but {format_decimal(expected)} keeps the "
            f"maintenance margin continuous at notional {boundary}",
        )


def _sale_order(
    reader: _Reader, document: dict[str, Any], assets: Mapping[str, AssetPolicy]
) -> tuple[str, ...]:
    raw = document.get("sale_order")
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        reader.fail("sale_order", "must be a list of asset codes written as strings")
    for index, item in enumerate(raw):
        if item not in assets:
            reader.fail(f"sale_order[{index}]", f"names {item!r}, which [assets] does not list")
        if item == REPORTING_ASSET:
            reader.fail(f"sale_order[{index}]", "names USD, which repays the loan without a sale")
        if item in raw[:index]:
            reader.fail(f"sale_order[{index}]", f"names {item!r} a second time")
    return tuple(raw)


def _quote(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else f'"{key}"'


class _Reader:
    """Typed access to the TOML document; every failure is a PolicyError naming the key."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, key: str, problem: str) -> NoReturn:
        msg = f"policy file {self.name}: `{key}` {problem}."
        raise PolicyError(msg)

    def keys(
        self, table: dict[str, Any], where: str, required: frozenset[str], optional: frozenset[str]
    ) -> None:
        for key in sorted(required - table.keys()):
            self.fail(_join(where, key), "is missing")
        for key in sorted(table.keys() - required - optional):
            self.fail(_join(where, key), "is not a policy key")

    def table(self, table: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = table.get(key)
        if not isinstance(value, dict):
            self.fail(_join(where, key), "must be a table")
        return value

    def text(self, table: dict[str, Any], key: str, where: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            self.fail(_join(where, key), "must be a non-empty string")
        return value

    def integer(
        self, table: dict[str, Any], key: str, where: str, default: int | None = None
    ) -> int:
        """A TOML integer >= 0; `default` when the key is absent and a default is given."""
        if default is not None and key not in table:
            return default
        value = table.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(_join(where, key), f"must be a non-negative TOML integer, found {value!r}")
        return value

    def positive_int(
        self, table: dict[str, Any], key: str, where: str, default: int | None = None
    ) -> int:
        value = self.integer(table, key, where, default)
        if value == 0:
            self.fail(_join(where, key), "must be greater than 0")
        return value

    def boolean(self, table: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.fail(_join(where, key), f"must be true or false, found {value!r}")
        return value

    def decimal(self, table: dict[str, Any], key: str, where: str) -> Decimal:
        value = table.get(key)
        if not isinstance(value, str):
            kind = "missing" if value is None else f"the TOML {type(value).__name__} {value!r}"
            self.fail(
                _join(where, key),
                f'must be a decimal written as a string (such as "0.60"), found {kind}',
            )
        try:
            return parse_decimal_text(value)
        except ValueError:
            self.fail(_join(where, key), f"is {value!r}, not a plain decimal number")

    def positive(self, table: dict[str, Any], key: str, where: str) -> Decimal:
        value = self.decimal(table, key, where)
        if value <= ZERO:
            self.fail(_join(where, key), f"is {value}, but must be greater than 0")
        return value

    def fraction(
        self, table: dict[str, Any], key: str, where: str, default: Decimal | None = None
    ) -> Decimal:
        """A decimal in [0, 1]; `default` when the key is absent and a default is given."""
        if default is not None and key not in table:
            return default
        value = self.decimal(table, key, where)
        if not ZERO <= value <= ONE:
            self.fail(_join(where, key), f"is {value}, outside [0, 1]")
        return value

    def open_rate(self, table: dict[str, Any], key: str, where: str) -> Decimal:
        """A decimal in (0, 1)."""
        value = self.decimal(table, key, where)
        if not ZERO < value < ONE:
            self.fail(_join(where, key), f"is {value}, outside (0, 1)")
        return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
