"""The simulator: deterministic, well-formed where it means to be, and realistic enough."""

from __future__ import annotations

import hashlib
from collections import Counter
from decimal import Decimal
from functools import cache

import msgspec
import pytest

from app.simulation import (
    INSURANCE_ACCOUNT,
    Malformation,
    SimulatedRecord,
    malformed_value,
    simulate,
    simulate_labelled,
)
from ledger.inbox import (
    AccountOpened,
    DayClosed,
    FundingRate,
    InboxRecordType,
    MarkPrice,
    PerpTrade,
    SpotTrade,
    TradeBusted,
    decode_inbox,
)
from ledger.policy import load_policy
from ledger.rejections import Refusal
from tests.inbox_reference import inbox_digest

POLICY = load_policy(None)


@cache
def run(seed: int, accounts: int, days: int) -> tuple[SimulatedRecord, ...]:
    return tuple(simulate_labelled(seed, accounts, days))


@cache
def decoded(seed: int, accounts: int, days: int) -> tuple[InboxRecordType, ...]:
    return tuple(
        decode_inbox(record.value, POLICY)
        for record in run(seed, accounts, days)
        if record.malformation is None
    )


def fingerprint(values: list[bytes]) -> str:
    return hashlib.sha256(b"\n".join(values)).hexdigest()


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert fingerprint(list(simulate(11, 8, 2))) == fingerprint(list(simulate(11, 8, 2)))


def test_another_seed_gives_other_bytes() -> None:
    assert fingerprint(list(simulate(11, 8, 2))) != fingerprint(list(simulate(12, 8, 2)))


def test_simulate_yields_the_labelled_values_one_object_each() -> None:
    values = list(simulate(3, 10, 2))
    assert values == [record.value for record in run(3, 10, 2)]
    assert all(not value.endswith(b"\n") for value in values)


def test_every_well_formed_record_decodes() -> None:
    records = run(5, 40, 3)
    well_formed = [record for record in records if record.malformation is None]
    assert len(well_formed) > 1_000
    for record in well_formed:
        decode_inbox(record.value, POLICY)  # raises Refusal if one does not decode
    # Duplicates and conflicting repeats are malformed on purpose yet decode.
    repeats = [r for r in records if r.malformation is not None and r.malformation.decodes]
    assert repeats, "the run holds no repeat that decodes"
    for record in repeats:
        decode_inbox(record.value, POLICY)


def test_the_first_record_seeds_the_insurance_fund() -> None:
    first = decoded(5, 40, 3)[0]
    assert first.__struct_config__.tag == "deposit"
    assert getattr(first, "account_id", None) == INSURANCE_ACCOUNT
    assert getattr(first, "amount", None) == Decimal("5000000.00")


def test_records_come_in_occurred_at_order() -> None:
    moments = [record.occurred_at for record in decoded(5, 40, 3)]
    assert moments == sorted(moments)


@pytest.mark.parametrize("days", [1, 2, 3, 5])
def test_the_crash_takes_btc_below_three_quarters_of_its_first_mark(days: int) -> None:
    btc = [
        record.price
        for record in decoded(9, 2, days)
        if isinstance(record, MarkPrice) and record.instrument == "BTC"
    ]
    eth = [
        record.price
        for record in decoded(9, 2, days)
        if isinstance(record, MarkPrice) and record.instrument == "ETH"
    ]
    assert min(btc) < Decimal("0.75") * btc[0]
    assert min(eth) < Decimal("0.85") * eth[0]
    assert btc[-1] > min(btc), "the crash recovers in part"


def test_every_instrument_has_a_mark_before_any_client_record() -> None:
    marked: set[str] = set()
    for record in decoded(5, 40, 3):
        if isinstance(record, MarkPrice):
            marked.add(record.instrument)
        elif getattr(record, "account_id", INSURANCE_ACCOUNT) != INSURANCE_ACCOUNT:
            break
    assert marked == {"BTC", "ETH", "BTC-PERP", "ETH-PERP", "SEHK:0700"}


def test_volumes_are_in_the_expected_ranges() -> None:
    accounts, days = 40, 3
    records = decoded(5, accounts, days)
    kinds = Counter(type(record) for record in records)
    clients = sum(
        1
        for record in records
        if getattr(record, "account_id", None) not in {None, INSURANCE_ACCOUNT}
    )
    assert 15 * accounts * days <= clients <= 60 * accounts * days
    assert 4 * 1_440 * days <= kinds[MarkPrice] <= 5 * 1_440 * days + 1
    assert kinds[FundingRate] == 2 * 3 * days
    assert kinds[DayClosed] == days
    assert kinds[AccountOpened] == accounts
    assert kinds[SpotTrade] > accounts * days * 5
    assert kinds[PerpTrade] > accounts * days * 5


def test_clients_are_mostly_professional_and_some_retail_try_perpetuals() -> None:
    records = decoded(5, 200, 3)
    classes = Counter(r.investor_class for r in records if isinstance(r, AccountOpened))
    assert 0.75 < classes["professional"] / 200 < 0.95
    retail = {
        r.account_id
        for r in records
        if isinstance(r, AccountOpened) and r.investor_class == "retail"
    }
    assert any(isinstance(r, PerpTrade) and r.account_id in retail for r in records)


def test_perpetual_opens_lean_long() -> None:
    """Positions opened from flat are mostly longs, so the crash hurts."""
    sizes: dict[tuple[str, str], Decimal] = {}
    opens: Counter[str] = Counter()
    for record in decoded(5, 200, 3):
        if isinstance(record, PerpTrade):
            key = (record.account_id, record.market)
            if not sizes.get(key):
                opens[record.side] += 1
            signed = record.quantity if record.side == "buy" else -record.quantity
            sizes[key] = sizes.get(key, Decimal(0)) + signed
    assert opens["buy"] > 2 * opens["sell"]


def test_malformed_records_are_refused_with_their_reason() -> None:
    records = run(5, 200, 3)
    seen: dict[str, str] = {}
    kinds: Counter[Malformation] = Counter()
    for record in records:
        kind = record.malformation
        if kind is None:
            event = decode_inbox(record.value, POLICY)
            seen.setdefault(event.event_id, inbox_digest(event))
            continue
        kinds[kind] += 1
        if not kind.decodes:
            with pytest.raises(Refusal) as refused:
                decode_inbox(record.value, POLICY)
            assert refused.value.reason_code == kind.reason_code, record.value
            continue
        event = decode_inbox(record.value, POLICY)
        assert event.event_id in seen, "a repeat names an event_id seen before"
        same = seen[event.event_id] == inbox_digest(event)
        assert same is (kind is Malformation.DUPLICATE)
    assert set(kinds) == set(Malformation), kinds
    client_records = len(records) - sum(
        1 for r in records if b'"mark_price"' in r.value or b'"funding_rate"' in r.value
    )
    assert 0.0005 < sum(kinds.values()) / client_records < 0.005


@pytest.mark.parametrize("kind", list(Malformation))
def test_each_malformation_spoils_a_deposit_as_labelled(kind: Malformation) -> None:
    record = {
        "type": "deposit",
        "event_id": "e-1",
        "occurred_at": "2026-11-02T00:00:00Z",
        "account_id": "C000001",
        "asset": "USD",
        "amount": "125.50",
    }
    good = msgspec.json.encode(record)
    value = malformed_value(kind, dict(record), "amount")
    if kind.decodes:
        repeat = decode_inbox(value, POLICY)
        original = decode_inbox(good, POLICY)
        assert repeat.event_id == original.event_id
        assert (inbox_digest(repeat) == inbox_digest(original)) is (kind is Malformation.DUPLICATE)
    else:
        with pytest.raises(Refusal) as refused:
            decode_inbox(value, POLICY)
        assert refused.value.reason_code == kind.reason_code


def test_no_day_is_closed_on_a_weekend_so_monday_closes_three_days() -> None:
    closed = [r.business_date for r in decoded(5, 3, 9) if isinstance(r, DayClosed)]
    # From Monday 2026-11-02: Saturday the 7th and Sunday the 8th pass unclosed.
    assert [d.isoformat() for d in closed] == [
        "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06",
        "2026-11-09", "2026-11-10",
    ]  # fmt: skip


def test_the_venue_busts_a_spot_sale_or_two_ten_minutes_after_it() -> None:
    records = decoded(5, 40, 3)
    sales = {r.trade_id: r for r in records if isinstance(r, SpotTrade) and r.side == "sell"}
    busts = [r for r in records if isinstance(r, TradeBusted)]
    assert 1 <= len(busts) <= 2
    for bust in busts:
        sale = sales[bust.trade_id]
        assert (bust.occurred_at - sale.occurred_at).total_seconds() == 600


def test_a_run_needs_a_day() -> None:
    with pytest.raises(ValueError, match="days >= 1"):
        list(simulate(1, 1, 0))
