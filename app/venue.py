"""A simulated venue for the demo: it executes every liquidation the ledger decided.

A venue receives the ledger's liquidations as orders: each lot (a position closed or
collateral sold into `platform:liquidation`, with what is left after auto-deleveraging)
is worked in one to three fills a few seconds apart, at the mark the ledger took it over
at with some slippage (mostly against the platform), and a small fee. Each fill is
an ordinary inbox record (`perp_trade`, or a `spot_trade` sale) carrying the
`liquidation_id`, sent back through the same ingest path as everything else, so the
ledger settles its result against the insurance fund and the platform's positions close.

Seeded: the same decisions and seed give the same fills, byte for byte. Figures are
integers in minor units (cents, 10^-8 of a coin, shares) until written as text.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.book import Book, LiquidationLot
from ledger.journal import format_timestamp
from ledger.limits import perp_quantity_decimal_places_max
from ledger.money import format_decimal
from ledger.policy import Policy

fills_per_order_max = 3
fill_spacing_s = 15  # a fill every 15 s or so after the order is taken
slippage_bps_low, slippage_bps_high = -5, 25  # against the platform when positive
venue_fee_bps = 2  # of the fill's notional, charged to the liquidation account
_BPS = 10_000


@dataclass(order=True)
class _Scheduled:
    due: datetime
    number: int
    value: bytes = field(compare=False)


class Venue:
    """Takes the ledger's open liquidation lots as orders and hands back their fills."""

    def __init__(self, seed: int, policy: Policy) -> None:
        self.rng = random.Random(f"venue-{seed}")  # noqa: S311 (a reproducible simulation)
        self.policy = policy
        self.taken: set[tuple[str, str]] = set()
        self.scheduled: list[_Scheduled] = []
        self.fills = 0

    def take_orders(self, book: Book) -> int:
        """Schedule the fills of every lot not ordered before; returns how many lots."""
        assert book.clock is not None  # a liquidation was decided, so the clock has started
        taken = 0
        for key, lot in sorted(book.liquidation_lots.items()):
            if key in self.taken or lot.remaining.is_zero():
                continue
            self.taken.add(key)
            taken += 1
            for number, (quantity, price) in enumerate(self._fills(lot), start=1):
                due = book.clock + timedelta(
                    seconds=fill_spacing_s * number + self.rng.randint(0, 9)
                )
                self.fills += 1
                heapq.heappush(
                    self.scheduled,
                    _Scheduled(due, self.fills, self._record(lot, due, quantity, price)),
                )
        return taken

    def due(self, until: datetime | None = None) -> Iterator[bytes]:
        """The fills due at or before `until` (every one left when None), in time order."""
        while self.scheduled and (until is None or self.scheduled[0].due <= until):
            yield heapq.heappop(self.scheduled).value

    def _places(self, lot: LiquidationLot) -> int:
        if lot.kind == "close_position":
            return perp_quantity_decimal_places_max
        scale = self.policy.asset_scale(lot.instrument)
        assert scale is not None  # the ledger booked the asset: the policy knows it
        return scale

    def _fills(self, lot: LiquidationLot) -> list[tuple[Decimal, Decimal]]:
        """(quantity, price) of each fill: the lot split at random, priced at the mark the
        ledger took it over at, with slippage mostly against the platform (a sale lower, a
        purchase higher), to the cent."""
        mark = lot.takeover_price
        places = self._places(lot)
        units = int(abs(lot.remaining).scaleb(places))
        count = min(units, self.rng.randint(1, fills_per_order_max))
        cuts = sorted(self.rng.sample(range(1, units), count - 1)) if count > 1 else []
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, units], strict=True)]
        sign = -1 if lot.closing_side == "sell" else 1
        fills = []
        for part in parts:
            slippage = Decimal(self.rng.randint(slippage_bps_low, slippage_bps_high)) / _BPS
            price = (mark * (1 + sign * slippage)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
            fills.append((Decimal(part).scaleb(-places), max(price, Decimal("0.01"))))
        return fills

    def _record(
        self, lot: LiquidationLot, due: datetime, quantity: Decimal, price: Decimal
    ) -> bytes:
        fee = (quantity * price * venue_fee_bps / _BPS).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        fields = {
            "event_id": f"venue-fill-{self.fills}",
            "type": "perp_trade" if lot.kind == "close_position" else "spot_trade",
            "occurred_at": format_timestamp(due),
            "source": "venue",
            "account_id": lot.account_id,
            "trade_id": f"V{self.fills}",
        }
        if lot.kind == "close_position":
            fields["market"] = lot.instrument
        else:
            fields["symbol"] = f"{lot.instrument}/USD"
        fields |= {
            "side": lot.closing_side,
            "quantity": format_decimal(quantity),
            "price": format_decimal(price),
            "fee": format_decimal(fee),
            "liquidation_id": lot.liquidation_id,
        }
        return json.dumps(fields, separators=(",", ":")).encode()
