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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO

from ledger.application import InboxItem, LedgerApplication
from ledger.book import Book, LiquidationLot
from ledger.journal import format_timestamp
from ledger.limits import perp_quantity_decimal_places_max
from ledger.money import USD_SCALE, format_decimal, quantize
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
        for lot in book.lots():
            key = (lot.liquidation_id, lot.instrument)
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
            price = quantize(mark * (1 + sign * slippage), USD_SCALE)
            fills.append((Decimal(part).scaleb(-places), max(price, Decimal("0.01"))))
        return fills

    def _record(
        self, lot: LiquidationLot, due: datetime, quantity: Decimal, price: Decimal
    ) -> bytes:
        fee = quantize(quantity * price * venue_fee_bps / _BPS, USD_SCALE)
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


# The venue reads the ledger's decisions back after every batch of this many records (a
# smaller batch reacts sooner in simulated time but commits more often: 200 keeps the demo
# within a few seconds of deciding without the venue). It prices each fill at the takeover
# mark, so the delay only moves when its fills are recorded, not their prices.
venue_batch_records = 200


class _VenueLoop:
    """Decides records in batches, the venue taking the new liquidations as orders after
    each, and writes every record decided to `out`."""

    def __init__(self, app: LedgerApplication, venue: Venue, out: IO[bytes], name: str) -> None:
        self.app, self.venue, self.out, self.name = app, venue, out, name
        self.batch: list[InboxItem] = []
        self.records = 0

    def add(self, value: bytes) -> None:
        self.records += 1
        self.out.write(value + b"\n")
        self.batch.append(InboxItem(value, None, self.name, None, self.records))
        if len(self.batch) >= venue_batch_records:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.app.process(self.batch)
            self.batch = []
            self.venue.take_orders(self.app.book)


def decide_stream_with_venue(
    app: LedgerApplication,
    stream: Iterable[tuple[datetime, bytes]],
    venue: Venue,
    out: IO[bytes],
    name: str,
) -> int:
    """Decide `stream` ((occurred_at, record) in time order) through `app.process`, as
    `ledger ingest` decides a file, with the venue's fills merged in at their times; every
    record decided, fills included, is written to `out` as a line, so ingesting those lines
    decides the same journal. Returns how many records were decided."""
    loop = _VenueLoop(app, venue, out, name)
    for occurred_at, value in stream:
        for fill in venue.due(occurred_at):
            loop.add(fill)
        loop.add(value)
    loop.flush()
    for fill in venue.due():  # what is still being worked when the stream ends
        loop.add(fill)
    loop.flush()
    return loop.records
