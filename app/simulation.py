"""A realistic inbox stream (docs/cli.md `ledger simulate`): the same bytes for the same seed.

What it writes, in `occurred_at` order, from 2026-11-02T00:00:00Z:

- a USD deposit to `platform:insurance` that seeds the insurance fund;
- marks every minute for BTC, ETH, BTC-PERP and ETH-PERP, and for SEHK:0700 during Hong
  Kong trading hours, from a seeded random walk with a crash in it: on day 2 (the middle
  day of a shorter run) BTC falls about 30% and ETH about 20% in two hours, then recovers
  part of the fall over six hours;
- funding every 8 hours per market and a `day_closed` at every midnight after a weekday:
  no day is closed on Saturday or Sunday, so Monday's close accrues the weekend's interest;
- client accounts `C000001`, … (about 85% professional) that deposit, trade spot and
  perpetuals, draw and repay margin loans and withdraw, sized from a shadow of each
  account so that most requests pass and some do not; retail accounts now and then try
  to open a perpetual position (the ledger refuses it);
- a few venue corrections: every `BUST_EVERY_TRADES`-th trade, when it is a spot sale, is
  busted (`trade_busted`) ten minutes later, at most `BUSTS_MAX` times a run;
- about 0.2% malformed or repeated records (`Malformation`), each labelled in
  `simulate_labelled` with the answer the ledger owes it.

All figures are integers in minor units (cents, 10^-8 of a coin, shares) until they are
written as decimal strings: no float touches a price or an amount.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

from ledger.money import format_decimal
from ledger.policy import load_policy
from ledger.rejections import ReasonCode

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 1_440
FUNDING_INTERVAL_SECONDS = 8 * 3_600
INSURANCE_ACCOUNT = "platform:insurance"
INSURANCE_FUND_CENTS = 5_000_000_00
BUST_EVERY_TRADES = 499  # a spot sale numbered a multiple of this is busted by the venue
BUSTS_MAX = 2
BUST_DELAY_SECONDS = 600
MALFORMED_SHARE_PPM = 2_000  # 0.2% of client records get a malformed twin
PPM = 1_000_000
COIN_UNITS = 10**8  # BTC, ETH and perpetual sizes are written with 8 decimal places

BTC, ETH, TENCENT = "BTC", "ETH", "SEHK:0700"
BTC_PERP, ETH_PERP = "BTC-PERP", "ETH-PERP"
SPOT_SYMBOLS = {BTC: "BTC/USD", ETH: "ETH/USD"}
UNITS_PER_WHOLE = {BTC: COIN_UNITS, ETH: COIN_UNITS, TENCENT: 1}
UNIT_PLACES = {BTC: 8, ETH: 8, TENCENT: 0}

# The demonstration policy's haircuts (ppm of value), with which the shadow accounts size
# their requests as the ledger will judge them.
DEMONSTRATION_POLICY = load_policy(None)
_HAIRCUTS = {asset: DEMONSTRATION_POLICY.asset(asset).haircut for asset in UNITS_PER_WHOLE}
INITIAL_HAIRCUT_PPM = {asset: int(cut.initial * PPM) for asset, cut in _HAIRCUTS.items()}
LIQUIDATION_HAIRCUT_PPM = {asset: int(cut.liquidation * PPM) for asset, cut in _HAIRCUTS.items()}
PERP_MAINTENANCE_PPM = 50_000
SPOT_FEE_PPM = 1_000  # 0.1% of notional
PERP_FEE_PPM = 500

SATURDAY = 5  # date.weekday(): Monday 0 ... Sunday 6

# Order of records that share a second: the platform, marks, funding, day close, clients.
PLATFORM, MARK, FUNDING, DAY_CLOSE, CLIENT = range(5)


class Malformation(Enum):
    """A deliberately bad record, and the reason code the ledger answers it with.

    `decodes` says whether `decode_inbox` accepts it (repeats are well-formed: the ledger
    acknowledges an exact duplicate and refuses a conflicting one against its state)."""

    NUMBER_AMOUNT = ("number_amount", ReasonCode.NUMBER_NOT_STRING, False)
    EXPONENT = ("exponent", ReasonCode.INVALID_DECIMAL, False)
    TOO_MANY_DECIMALS = ("too_many_decimals", ReasonCode.TOO_MANY_DECIMALS, False)
    UNKNOWN_TYPE = ("unknown_type", ReasonCode.UNKNOWN_TYPE, False)
    MISSING_FIELD = ("missing_field", ReasonCode.MISSING_FIELD, False)
    BROKEN_JSON = ("broken_json", ReasonCode.MALFORMED_JSON, False)
    DUPLICATE = ("duplicate", None, True)
    EVENT_ID_CONFLICT = ("event_id_conflict", ReasonCode.EVENT_ID_CONFLICT, True)

    def __init__(self, label: str, reason_code: ReasonCode | None, decodes: bool) -> None:
        self.label = label
        self.reason_code = reason_code
        self.decodes = decodes


@dataclass(frozen=True)
class SimulatedRecord:
    value: bytes
    malformation: Malformation | None


def simulate(seed: int, accounts: int, days: int) -> Iterator[bytes]:
    """Inbox record values (one JSON object each, no newline) in `occurred_at` order."""
    for _, _, _, value, _ in Simulation(seed, accounts, days).records():
        yield value


def simulate_timed(seed: int, accounts: int, days: int) -> Iterator[tuple[datetime, bytes]]:
    """The same records as `simulate`, each with its `occurred_at` (malformed ones too)."""
    for second, _, _, value, _ in Simulation(seed, accounts, days).records():
        yield START + timedelta(seconds=second), value


def simulate_labelled(seed: int, accounts: int, days: int) -> Iterator[SimulatedRecord]:
    """The same records as `simulate`, each with its malformation (None when well-formed)."""
    for _, _, _, value, malformation in Simulation(seed, accounts, days).records():
        yield SimulatedRecord(value, malformation)


def crash_day(days: int) -> int:
    """Day 2 when the run has one, else its middle day."""
    return 2 if days >= 3 else days // 2


def crash_start_minute(days: int) -> int:
    """13:00 UTC (21:00 in Hong Kong) on the crash day, counted from the start."""
    return crash_day(days) * MINUTES_PER_DAY + 13 * 60


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(cents), 100)
    return f"{sign}{whole}.{fraction:02d}"


def units_text(units: int, places: int) -> str:
    """Minor units as a plain decimal with no trailing fractional zeros: 150000000, 8 -> 1.5."""
    if places == 0:
        return str(units)
    whole, fraction = divmod(units, 10**places)
    digits = f"{fraction:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def divide_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, for positive denominators."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def rate_text(rate_ppm: int) -> str:
    """A rate given in millionths, as a plain decimal: 100 -> 0.0001, -50 -> -0.00005."""
    return format_decimal(Decimal(rate_ppm).scaleb(-6).normalize())


def nineteen_places(text: str) -> str:
    """The same figure written with 19 decimal places, more than any scale allows."""
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(18, '0')}1"


# --- the market: marks per minute, in cents -------------------------------------------


@dataclass(frozen=True)
class Crash:
    """A fall to `bottom_ppm` of the lower of the pre-crash and opening prices over
    `fall_minutes`, then a recovery of `recovery_ppm` of the fall over `recovery_minutes`."""

    start_minute: int
    bottom_ppm: int
    recovery_ppm: int = 400_000
    fall_minutes: int = 120
    recovery_minutes: int = 360


def is_hong_kong_trading_minute(minute: int) -> bool:
    """SEHK's sessions, 09:30-12:00 and 13:00-16:00 HKT (01:30-04:00, 05:00-08:00 UTC),
    on weekdays; holidays are not modelled."""
    day, minute_of_day = divmod(minute, MINUTES_PER_DAY)
    return day % 7 < 5 and (90 <= minute_of_day < 240 or 300 <= minute_of_day < 480)


def random_walk(
    rng: random.Random,
    opening_cents: int,
    minutes: int,
    step_ppm: int,
    crash: Crash | None,
    *,
    trading_hours_only: bool = False,
) -> list[int]:
    """Marks in cents per minute: each minute moves by a uniform step of at most `step_ppm`."""
    path = [opening_cents]
    price = opening_cents
    minute = 1
    while minute < minutes:
        if crash is not None and minute == crash.start_minute:
            path.extend(crash_path(rng, price, opening_cents, crash))
            price = path[-1]
            minute = len(path)
            continue
        if not trading_hours_only or is_hong_kong_trading_minute(minute):
            price = max(1, price + divide_half_even(price * rng.randint(-step_ppm, step_ppm), PPM))
        path.append(price)
        minute += 1
    return path[:minutes]


def crash_path(rng: random.Random, before: int, opening: int, crash: Crash) -> list[int]:
    """The crash's marks, with a little noise (never below the bottom, the minimum): a
    one-minute gap that leaves the most leveraged accounts bankrupt before they can be
    liquidated, a slide to the bottom, then a partial recovery."""
    bottom = min(before, opening) * crash.bottom_ppm // PPM
    recovered = bottom + (before - bottom) * crash.recovery_ppm // PPM
    path: list[int] = []
    for step in range(1, crash.fall_minutes + 1):
        level = before - (before - bottom) * fall_share_ppm(step, crash.fall_minutes) // PPM
        path.append(max(bottom, level + level * rng.randint(-1_000, 1_000) // PPM))
    path[-1] = bottom
    for step in range(1, crash.recovery_minutes + 1):
        level = bottom + (recovered - bottom) * step // crash.recovery_minutes
        path.append(max(bottom, level + level * rng.randint(-1_000, 1_000) // PPM))
    return path


def fall_share_ppm(step: int, steps: int) -> int:
    """How much of the fall is done after `step` of `steps` minutes: half in the first
    minute (a gap), the rest in an even slide."""
    if step == 1:
        return 500_000
    return 500_000 + 500_000 * (step - 1) // (steps - 1)


def perpetual_path(rng: random.Random, spot: list[int]) -> list[int]:
    """A perpetual's marks: the spot mark with a small basis, mostly a premium."""
    return [price + divide_half_even(price * rng.randint(-400, 600), PPM) for price in spot]


class MarketPath:
    """Every instrument's mark in cents, minute by minute, for the whole run."""

    def __init__(self, rng: random.Random, days: int) -> None:
        minutes = days * MINUTES_PER_DAY + 1
        start = crash_start_minute(days)
        self.cents: dict[str, list[int]] = {
            BTC: random_walk(rng, 68_000_00, minutes, 1_300, Crash(start, bottom_ppm=700_000)),
            ETH: random_walk(rng, 3_500_00, minutes, 1_600, Crash(start, bottom_ppm=800_000)),
            TENCENT: random_walk(rng, 54_00, minutes, 700, None, trading_hours_only=True),
        }
        self.cents[BTC_PERP] = perpetual_path(rng, self.cents[BTC])
        self.cents[ETH_PERP] = perpetual_path(rng, self.cents[ETH])


# --- the clients: a shadow of each account, to size what it asks for -------------------


@dataclass(slots=True)
class Client:
    """What the simulator believes of one account: enough to size realistic requests.

    It follows its own requests as the ledger would most of the time (and its perpetual
    positions into a liquidation when a mark breaks its margin); it ignores interest and
    funding, so it drifts a little from the ledger, as an upstream system would."""

    account_id: str
    professional: bool
    credit_limit_cents: int
    leverage: int
    opened_second: int
    cash_cents: int = 0
    loan_cents: int = 0
    last_minute: int = 0
    holdings: dict[str, int] = field(default_factory=lambda: {BTC: 0, ETH: 0, TENCENT: 0})
    positions: dict[str, list[int]] = field(
        default_factory=lambda: {BTC_PERP: [0, 0], ETH_PERP: [0, 0]}
    )  # market -> [signed size in 10^-8, entry price in cents]

    def trade_perpetual(self, market: str, delta: int, price: int) -> None:
        """Increase with a volume-weighted entry; reduce, close or flip realising PnL."""
        position = self.positions[market]
        size, entry = position
        if size == 0 or (size > 0) == (delta > 0):
            position[0] = size + delta
            position[1] = (abs(size) * entry + abs(delta) * price) // abs(size + delta)
            return
        closed = min(abs(size), abs(delta))
        direction = 1 if size > 0 else -1
        self.cash_cents += divide_half_even(closed * (price - entry) * direction, COIN_UNITS)
        position[0] = size + delta
        if position[0] == 0:
            position[1] = 0
        elif (position[0] > 0) != (size > 0):
            position[1] = price


def holding_value_cents(asset: str, units: int, marks: dict[str, list[int]], minute: int) -> int:
    return units * marks[asset][minute] // UNITS_PER_WHOLE[asset]


def free_collateral_cents(client: Client, marks: dict[str, list[int]], minute: int) -> int:
    """Equity less the initial requirement, as the demonstration policy would put it."""
    free = client.cash_cents - client.loan_cents
    for asset, units in client.holdings.items():
        if units > 0:
            value = holding_value_cents(asset, units, marks, minute)
            free += value * (PPM - INITIAL_HAIRCUT_PPM[asset]) // PPM
    for market, (size, entry) in client.positions.items():
        if size:
            mark = marks[market][minute]
            free += size * (mark - entry) // COIN_UNITS - abs(size) * mark // COIN_UNITS // 10
    return free


def lending_value_cents(client: Client, marks: dict[str, list[int]], minute: int) -> int:
    """What the account may borrow against its coins and shares (cash is not lent against)."""
    return sum(
        holding_value_cents(asset, units, marks, minute) * (PPM - INITIAL_HAIRCUT_PPM[asset]) // PPM
        for asset, units in client.holdings.items()
        if units > 0
    )


def follow_liquidation(client: Client, marks: dict[str, list[int]], minute: int) -> None:
    """Close the shadow's perpetual positions if the worst marks since its last look
    (`client.last_minute`) broke its liquidation requirement, as the ledger will have."""
    since = client.last_minute
    open_positions = [
        (market, size, entry) for market, (size, entry) in client.positions.items() if size
    ]
    if not open_positions:
        return
    equity = client.cash_cents - client.loan_cents
    requirement = 0
    for asset, units in client.holdings.items():
        if units > 0:
            value = holding_value_cents(asset, units, marks, minute)
            equity += value
            requirement += value * LIQUIDATION_HAIRCUT_PPM[asset] // PPM
    worst: list[tuple[str, int, int]] = []
    for market, size, entry in open_positions:
        window = marks[market][since : minute + 1]
        mark = min(window) if size > 0 else max(window)
        worst.append((market, size, mark))
        equity += size * (mark - entry) // COIN_UNITS
        requirement += abs(size) * mark // COIN_UNITS * PERP_MAINTENANCE_PPM // PPM
    if equity >= requirement:
        return
    for market, size, mark in worst:
        client.trade_perpetual(market, -size, mark)
        client.cash_cents -= abs(size) * mark // COIN_UNITS * 5 // 1_000  # liquidation fee


# --- the stream --------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()
_FIGURE_NAMES = ("amount", "quantity", "credit_limit", "price", "fee")
_MALFORMATIONS = tuple(Malformation)
_NEEDS_FIGURE = frozenset(
    {Malformation.NUMBER_AMOUNT, Malformation.EXPONENT, Malformation.TOO_MANY_DECIMALS}
)
# (sort key: second, order among records of that second, generation number), value, label
Pending = tuple[int, int, int, bytes, Malformation | None]


class Simulation:
    """One seeded run: the market path, the clients, and the records of each day."""

    def __init__(self, seed: int, accounts: int, days: int) -> None:
        if accounts < 0 or days < 1:
            msg = f"a simulation needs accounts >= 0 and days >= 1, not {accounts} and {days}"
            raise ValueError(msg)
        self.rng = random.Random(seed)  # noqa: S311 (a reproducible simulation, not a secret)
        self.days = days
        self.event_prefix = f"sim{seed}-"
        self.events = 0
        self.trades = 0
        self.busts = 0
        self.generated = 0
        self.pending: list[Pending] = []
        self.last_second, self.last_timestamp = -1, ""
        self.dates = [(START + timedelta(days=day)).date().isoformat() for day in range(days + 1)]
        self.market = MarketPath(self.rng, days)
        self.clients = [self.new_client(number) for number in range(1, accounts + 1)]

    def records(self) -> Iterator[Pending]:
        self.emit(
            0,
            PLATFORM,
            "deposit",
            {
                "account_id": INSURANCE_ACCOUNT,
                "asset": "USD",
                "amount": cents_text(INSURANCE_FUND_CENTS),
            },
        )
        for day in range(self.days):
            self.market_day(day)
            for client in self.clients:
                self.client_day(client, day)
            self.pending.sort()
            yield from self.pending
            self.pending = []

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), for bound up to 2^32 (faster than randrange)."""
        return (self.rng.getrandbits(32) * bound) >> 32

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]."""
        return low + self.below(high - low + 1)

    def chance(self, percent: int) -> bool:
        """True `percent` times in a hundred (integers only: no float in the ledger)."""
        return self.rng.getrandbits(32) * 100 < percent << 32

    def timestamp(self, second: int) -> str:
        """RFC 3339 in UTC; the last one is kept, as marks come five to a second."""
        if second != self.last_second:
            day, rest = divmod(second, SECONDS_PER_DAY)
            hours, rest = divmod(rest, 3_600)
            minutes, seconds = divmod(rest, 60)
            self.last_second = second
            self.last_timestamp = f"{self.dates[day]}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"
        return self.last_timestamp

    def next_event_id(self) -> str:
        self.events += 1
        return f"{self.event_prefix}{self.events}"

    def push(self, second: int, priority: int, value: bytes, label: Malformation | None) -> None:
        self.generated += 1
        self.pending.append((second, priority, self.generated, value, label))

    def emit(self, second: int, priority: int, record_type: str, fields: dict[str, Any]) -> None:
        record = {
            "type": record_type,
            "event_id": self.next_event_id(),
            "occurred_at": self.timestamp(second),
            **fields,
        }
        self.push(second, priority, _ENCODER.encode(record), None)
        if priority == CLIENT and self.rng.getrandbits(32) * PPM < MALFORMED_SHARE_PPM << 32:
            self.malformed_twin(second, record)

    def malformed_twin(self, second: int, record: dict[str, Any]) -> None:
        """A bad record next to a good one: the good one keeps the shadow accounts true."""
        kind = self.rng.choice(_MALFORMATIONS)
        figure = next((name for name in _FIGURE_NAMES if name in record), None)
        if figure is None and kind in _NEEDS_FIGURE:
            kind = Malformation.MISSING_FIELD
        twin = dict(record)
        if kind not in {Malformation.DUPLICATE, Malformation.EVENT_ID_CONFLICT}:
            twin["event_id"] = self.next_event_id()
        self.push(second, CLIENT, malformed_value(kind, twin, figure), kind)

    # --- the market's records ---

    def market_day(self, day: int) -> None:
        marks = self.market.cents
        first = day * MINUTES_PER_DAY
        for minute in range(first, first + MINUTES_PER_DAY):
            second = minute * 60
            for instrument in (BTC, ETH, BTC_PERP, ETH_PERP):
                price = cents_text(marks[instrument][minute])
                self.emit(second, MARK, "mark_price", {"instrument": instrument, "price": price})
            if minute == 0 or is_hong_kong_trading_minute(minute):
                price = cents_text(marks[TENCENT][minute])
                self.emit(second, MARK, "mark_price", {"instrument": TENCENT, "price": price})
        crash_second = crash_start_minute(self.days) * 60
        for interval in range(1, SECONDS_PER_DAY // FUNDING_INTERVAL_SECONDS + 1):
            second = day * SECONDS_PER_DAY + interval * FUNDING_INTERVAL_SECONDS
            # In the day after the crash the perpetuals trade at a discount: shorts pay.
            after_crash = 0 <= second - crash_second < SECONDS_PER_DAY
            for market in (BTC_PERP, ETH_PERP):
                rate = rate_text(100 + self.between(-150, 150) - (300 if after_crash else 0))
                fields = {"market": market, "rate": rate, "funding_time": self.timestamp(second)}
                self.emit(second, FUNDING, "funding_rate", fields)
        if date.fromisoformat(self.dates[day]).weekday() < SATURDAY:
            self.emit(
                (day + 1) * SECONDS_PER_DAY,
                DAY_CLOSE,
                "day_closed",
                {"business_date": self.dates[day]},
            )

    # --- the clients' records ---

    def new_client(self, number: int) -> Client:
        professional = self.chance(85)
        with_credit = professional and self.chance(60)
        if self.chance(80):  # most accounts open in the first hours, before the crash
            opened_second = self.between(60, 6 * 3_600)
        else:
            day = self.below(self.days)
            opened_second = day * SECONDS_PER_DAY + self.between(60, SECONDS_PER_DAY - 1_200)
        return Client(
            account_id=f"C{number:06d}",
            professional=professional,
            credit_limit_cents=self.between(50, 2_000) * 1_000_00 if with_credit else 0,
            leverage=self.between(2, 10),
            opened_second=opened_second,
            last_minute=opened_second // 60,
        )

    def client_day(self, client: Client, day: int) -> None:
        start, end = day * SECONDS_PER_DAY, (day + 1) * SECONDS_PER_DAY
        if client.opened_second >= end:
            return
        if client.opened_second >= start:
            self.open_account(client)
            start = client.opened_second + 900
        count = self.between(24, 66) * (end - start) // SECONDS_PER_DAY
        span, random_bits = end - start, self.rng.getrandbits
        for second in sorted(start + (random_bits(32) * span >> 32) for _ in range(count)):
            self.act(client, second)

    def open_account(self, client: Client) -> None:
        second = client.opened_second
        fields: dict[str, Any] = {
            "account_id": client.account_id,
            "investor_class": "professional" if client.professional else "retail",
        }
        if client.credit_limit_cents:
            fields["credit_limit"] = cents_text(client.credit_limit_cents)
        self.emit(second, CLIENT, "account_opened", fields)
        self.deposit(
            client, second + self.between(30, 600), "USD", self.between(5_000_00, 500_000_00)
        )
        if self.chance(50):
            units = self.between(COIN_UNITS // 10, 5 * COIN_UNITS)
            self.deposit(client, second + self.between(30, 600), BTC, units)
        if self.chance(40):
            self.deposit(
                client,
                second + self.between(30, 600),
                ETH,
                self.between(COIN_UNITS, 60 * COIN_UNITS),
            )
        if self.chance(25):
            self.deposit(client, second + self.between(30, 600), TENCENT, self.between(1, 50) * 100)

    def deposit(self, client: Client, second: int, asset: str, units: int) -> None:
        if asset == "USD":
            client.cash_cents += units
            amount = cents_text(units)
        else:
            client.holdings[asset] += units
            amount = units_text(units, UNIT_PLACES[asset])
        fields = {"account_id": client.account_id, "asset": asset, "amount": amount}
        self.emit(second, CLIENT, "deposit", fields)

    def act(self, client: Client, second: int) -> None:
        """One thing the client does at `second`; when it cannot (nothing to sell, no
        loan to repay), it trades spot instead, and failing that tops up its cash."""
        positions = client.positions
        if positions[BTC_PERP][0] or positions[ETH_PERP][0]:
            follow_liquidation(client, self.market.cents, second // 60)
        client.last_minute = second // 60
        roll = self.below(PPM)
        mix = _PROFESSIONAL_MIX if client.professional else _RETAIL_MIX
        action = next(action for threshold, action in mix if roll < threshold)
        if not action(self, client, second) and not self.spot_trade(client, second):
            self.top_up(client, second)

    def near(self, mark: int, spread_ppm: int) -> int:
        """A traded price within `spread_ppm` of the mark."""
        return mark + divide_half_even(mark * self.between(-spread_ppm, spread_ppm), PPM)

    def spot_trade(self, client: Client, second: int) -> bool:
        base = BTC if self.chance(60) else ETH
        price = self.near(self.market.cents[base][second // 60], 300)
        held = client.holdings[base]
        buying = client.cash_cents >= 100_00 and (held == 0 or self.chance(55))
        if buying:
            quantity = client.cash_cents * self.between(5, 25) // 100 * COIN_UNITS // price
        else:
            quantity = held * self.between(10, 60) // 100
        if quantity <= 0:
            return False
        notional = divide_half_even(quantity * price, COIN_UNITS)
        fee = divide_half_even(quantity * price * SPOT_FEE_PPM, COIN_UNITS * PPM)
        client.cash_cents += -notional - fee if buying else notional - fee
        client.holdings[base] += quantity if buying else -quantity
        self.trades += 1
        fields = {
            "account_id": client.account_id,
            "trade_id": f"{self.event_prefix}T{self.trades}",
            "symbol": SPOT_SYMBOLS[base],
            "side": "buy" if buying else "sell",
            "quantity": units_text(quantity, 8),
            "price": cents_text(price),
            "fee": cents_text(fee),
        }
        self.emit(second, CLIENT, "spot_trade", fields)
        if not buying:
            self.maybe_bust(client, second, fields["trade_id"], (base, quantity, notional, fee))
        return True

    def maybe_bust(
        self, client: Client, second: int, trade_id: str, sale: tuple[str, int, int, int]
    ) -> None:
        """The venue busts a spot sale now and then: the shadow takes it back at once."""
        same_day = second // SECONDS_PER_DAY == (second + BUST_DELAY_SECONDS) // SECONDS_PER_DAY
        if self.trades % BUST_EVERY_TRADES or self.busts >= BUSTS_MAX or not same_day:
            return
        base, quantity, notional, fee = sale
        self.busts += 1
        client.holdings[base] += quantity
        client.cash_cents -= notional - fee
        fields = {"trade_id": trade_id, "reason": "busted by the venue: erroneous price"}
        self.emit(second + BUST_DELAY_SECONDS, CLIENT, "trade_busted", fields)

    def perp_trade(self, client: Client, second: int) -> bool:
        market = BTC_PERP if self.chance(60) else ETH_PERP
        price = self.near(self.market.cents[market][second // 60], 200)
        quantity, buying = self.perp_order(client, market, price, second // 60)
        if quantity <= 0:
            return False
        client.trade_perpetual(market, quantity if buying else -quantity, price)
        fee = divide_half_even(quantity * price * PERP_FEE_PPM, COIN_UNITS * PPM)
        client.cash_cents -= fee
        side = "buy" if buying else "sell"
        self.emit_perp_trade(
            client, second, market=market, side=side, quantity=quantity, price=price, fee=fee
        )
        return True

    def perp_order(self, client: Client, market: str, price: int, minute: int) -> tuple[int, bool]:
        """(quantity in 10^-8, buying?): mostly longs opened at 2-10x the free collateral;
        an open position is increased, reduced, closed, or now and then flipped."""
        size = client.positions[market][0]
        target = max(0, free_collateral_cents(client, self.market.cents, minute)) * client.leverage
        current = abs(size) * price // COIN_UNITS
        roll = self.below(100)
        if size == 0 or (roll < 45 and target > current):
            buying = self.chance(80) if size == 0 else size > 0
            notional = (target - current) * self.between(40, 100) // 100
            return notional * COIN_UNITS // price, buying
        if roll < 75:
            return abs(size) * self.between(20, 70) // 100, size < 0
        if roll < 93:
            return abs(size), size < 0
        return abs(size) + abs(size) * self.between(10, 100) // 100, size < 0

    def emit_perp_trade(
        self,
        client: Client,
        second: int,
        *,
        market: str,
        side: str,
        quantity: int,
        price: int,
        fee: int,
    ) -> None:
        self.trades += 1
        fields = {
            "account_id": client.account_id,
            "trade_id": f"{self.event_prefix}T{self.trades}",
            "market": market,
            "side": side,
            "quantity": units_text(quantity, 8),
            "price": cents_text(price),
            "fee": cents_text(fee),
        }
        self.emit(second, CLIENT, "perp_trade", fields)

    def retail_perp_open(self, client: Client, second: int) -> bool:
        """A retail client tries to open a perpetual position: the ledger refuses it, so the
        shadow account does not change."""
        market = BTC_PERP if self.chance(60) else ETH_PERP
        price = self.near(self.market.cents[market][second // 60], 200)
        quantity = self.between(COIN_UNITS // 100, COIN_UNITS // 2)
        fee = divide_half_even(quantity * price * PERP_FEE_PPM, COIN_UNITS * PPM)
        self.emit_perp_trade(
            client, second, market=market, side="buy", quantity=quantity, price=price, fee=fee
        )
        return True

    def loan_draw(self, client: Client, second: int) -> bool:
        """A draw sized around the lending value left: some exceed it or the credit limit."""
        if client.credit_limit_cents == 0 and self.chance(80):
            return False
        lending = lending_value_cents(client, self.market.cents, second // 60)
        headroom = lending - client.loan_cents
        base = headroom if headroom > 0 else 10_000_00
        amount = max(100_00, base * self.between(20, 120) // 100 // 100 * 100)
        if client.loan_cents + amount <= min(client.credit_limit_cents, lending):
            client.loan_cents += amount
            client.cash_cents += amount
        fields = {"account_id": client.account_id, "amount": cents_text(amount)}
        self.emit(second, CLIENT, "loan_draw_requested", fields)
        return True

    def loan_repayment(self, client: Client, second: int) -> bool:
        """Part or all of the principal; now and then more than is owed (refused)."""
        if client.loan_cents <= 0 or client.cash_cents < 100:
            return False
        if self.chance(5):
            amount = client.loan_cents * 2 + 1_000_00
        else:
            amount = min(client.cash_cents, client.loan_cents * self.between(20, 100) // 100)
            client.loan_cents -= amount
            client.cash_cents -= amount
        if amount <= 0:
            return False
        fields = {"account_id": client.account_id, "amount": cents_text(amount)}
        self.emit(second, CLIENT, "loan_repayment", fields)
        return True

    def withdrawal(self, client: Client, second: int) -> bool:
        """Mostly a part of the cash; sometimes more than the account holds (refused)."""
        coins = [asset for asset in (BTC, ETH) if client.holdings[asset] > 0]
        if coins and self.chance(20):
            asset = self.rng.choice(coins)
            units = client.holdings[asset] * self.between(10, 50) // 100
            amount = units_text(units, UNIT_PLACES[asset])
            client.holdings[asset] -= units
        elif self.chance(15):
            asset, units = (
                "USD",
                max(0, client.cash_cents) * self.between(120, 300) // 100 + 1_000_00,
            )
            amount = cents_text(units)
        else:
            asset, units = "USD", client.cash_cents * self.between(5, 30) // 100
            amount = cents_text(units)
            client.cash_cents -= units
        if units <= 0:
            return False
        fields = {"account_id": client.account_id, "asset": asset, "amount": amount}
        self.emit(second, CLIENT, "withdrawal_requested", fields)
        return True

    def top_up(self, client: Client, second: int) -> bool:
        if self.chance(20):
            units = self.between(COIN_UNITS // 10, 2 * COIN_UNITS)
            self.deposit(client, second, BTC, units)
        else:
            self.deposit(client, second, "USD", self.between(5_000_00, 100_000_00))
        return True

    def credit_limit_change(self, client: Client, second: int) -> bool:
        client.credit_limit_cents = self.between(0, 2_000) * 1_000_00
        fields = {
            "account_id": client.account_id,
            "credit_limit": cents_text(client.credit_limit_cents),
        }
        self.emit(second, CLIENT, "credit_limit_set", fields)
        return True


Action = Callable[[Simulation, Client, int], bool]
# (cumulative share in ppm, action): what a client does on one of its 20-60 actions a day.
_PROFESSIONAL_MIX: tuple[tuple[int, Action], ...] = (
    (420_000, Simulation.perp_trade),
    (820_000, Simulation.spot_trade),
    (870_000, Simulation.loan_draw),
    (910_000, Simulation.loan_repayment),
    (940_000, Simulation.withdrawal),
    (990_000, Simulation.top_up),
    (PPM, Simulation.credit_limit_change),
)
_RETAIL_MIX: tuple[tuple[int, Action], ...] = (
    (3_000, Simulation.retail_perp_open),
    (900_000, Simulation.spot_trade),
    (950_000, Simulation.withdrawal),
    (PPM, Simulation.top_up),
)


def malformed_value(kind: Malformation, twin: dict[str, Any], figure: str | None) -> bytes:
    """The bytes of a record spoiled the way `kind` says (`figure` names its first figure)."""
    match kind:
        case Malformation.NUMBER_AMOUNT if figure is not None:
            twin[figure] = msgspec.Raw(twin[figure].encode())
        case Malformation.EXPONENT if figure is not None:
            twin[figure] = f"{twin[figure]}E0"
        case Malformation.TOO_MANY_DECIMALS if figure is not None:
            twin[figure] = nineteen_places(twin[figure])
        case Malformation.UNKNOWN_TYPE:
            twin["type"] = f"{twin['type']}_v2"
        case Malformation.MISSING_FIELD:
            del twin["account_id"]
        case Malformation.BROKEN_JSON:
            whole = _ENCODER.encode(twin)
            return whole[: len(whole) // 2]
        case Malformation.EVENT_ID_CONFLICT:
            twin["source"] = "resent-with-changes"
            if figure is not None:
                twin[figure] = format_decimal(Decimal(twin[figure]) * 2)
        case _:  # DUPLICATE: the very same bytes again
            pass
    return _ENCODER.encode(twin)
