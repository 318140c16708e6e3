"""Whatever arrives, the ledger never crashes, and what it refuses changes no balance."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import InboxItem
from tests.ledger_scenario import Scenario, balances_by_asset


def mostly(
    valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """24 draws in 25 from `valid`, so that decisions run, not only the decoder."""
    return st.integers(min_value=0, max_value=24).flatmap(lambda n: valid if n else hostile)


HOSTILE_IDS = st.sampled_from(
    ["C1\x00", "C\x07", "\x1b[2JC1", "C\u202e1", "C\u200b1", "C1\u2028", "Cafe\u0301"]
)
ACCOUNTS = mostly(
    st.sampled_from(["C1", "C2", "R1"]),
    st.sampled_from(["GHOST", "platform:house", "platform:insurance", ""]) | HOSTILE_IDS,
)
ASSETS = mostly(st.sampled_from(["USD", "BTC"]), st.sampled_from(["ETH", "SEHK:0700", "DOGE"]))
MARKETS = mostly(st.just("BTC-PERP"), st.sampled_from(["ETH-PERP", "SOL-PERP"]))
figures = mostly(
    st.decimals(min_value=0, max_value=200_000, places=2, allow_nan=False).map(
        lambda d: format(d, "f")
    ),
    st.one_of(
        st.sampled_from(["-3", "1e3", "NaN", "0.123456789", "1000000000000000000"]),
        st.integers(min_value=-5, max_value=10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.none(),
    ),
)
quantities = mostly(
    st.decimals(min_value=0, max_value=5, places=4, allow_nan=False).map(lambda d: format(d, "f")),
    figures,
)
times = st.integers(min_value=0, max_value=4 * 24 * 60).map(
    lambda m: (datetime(2026, 11, 24, tzinfo=UTC) + timedelta(minutes=m)).isoformat()
)
record_fields: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "account_opened": {
        "account_id": ACCOUNTS,
        "investor_class": mostly(st.sampled_from(["professional", "retail"]), st.just("pro")),
        "credit_limit": figures,
    },
    "deposit": {
        "account_id": ACCOUNTS,
        "asset": ASSETS,
        "amount": figures,
    },
    "withdrawal_requested": {
        "account_id": ACCOUNTS,
        "asset": ASSETS,
        "amount": figures,
    },
    "loan_draw_requested": {"account_id": ACCOUNTS, "amount": figures},
    "loan_repayment": {"account_id": ACCOUNTS, "amount": figures},
    "spot_trade": {
        "account_id": ACCOUNTS,
        "trade_id": st.text(max_size=3),
        "symbol": mostly(st.just("BTC/USD"), st.sampled_from(["ETH/USD", "USD/BTC", "BTCUSD"])),
        "side": mostly(st.sampled_from(["buy", "sell"]), st.just("hold")),
        "quantity": quantities,
        "price": figures,
        "fee": figures,
    },
    "perp_trade": {
        "account_id": ACCOUNTS,
        "trade_id": st.text(max_size=3),
        "market": MARKETS,
        "side": st.sampled_from(["buy", "sell"]),
        "quantity": quantities,
        "price": figures,
        "fee": figures,
    },
    "mark_price": {
        "instrument": mostly(st.sampled_from(["BTC", "BTC-PERP"]), ASSETS | MARKETS),
        "price": mostly(st.integers(min_value=20_000, max_value=90_000).map(str), figures),
    },
    "funding_rate": {
        "market": MARKETS,
        "rate": mostly(st.sampled_from(["0.0001", "-0.0002", "0"]), figures),
        "funding_time": times,
    },
    "day_closed": {
        "business_date": mostly(st.just("2026-11-24"), st.sampled_from(["2026-11-31", "24/11"]))
    },
}


@st.composite
def inbox_records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([*record_fields, "teleport"]))
    fields = record_fields.get(kind, {})
    record: dict[str, Any] = {
        "event_id": draw(mostly(st.uuids().map(str), st.sampled_from(["e1", "e2"]) | HOSTILE_IDS)),
        "type": kind,
        "occurred_at": draw(times),
    }
    for name, strategy in fields.items():
        if draw(st.integers(min_value=0, max_value=40)):  # now and then a field is missing
            record[name] = draw(strategy)
    if not draw(st.integers(min_value=0, max_value=30)):
        record["surprise"] = 1
    return json.dumps(record).encode()


def _state(scenario: Scenario) -> object:
    book = scenario.app.book
    return copy.deepcopy(
        (
            {a.account_id: (a.balances, a.loan, a.positions) for a in book.accounts.values()},
            book.marks,
        )
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(inbox_records(), min_size=1, max_size=40))
def test_hostile_streams_never_crash_and_refusals_change_nothing(records: list[bytes]) -> None:
    s = Scenario()
    s.mark("BTC", "60000")
    s.mark("BTC-PERP", "60000")
    for account, investor_class in (
        ("C1", "professional"),
        ("C2", "professional"),
        ("R1", "retail"),
    ):
        s.open(account, investor_class=investor_class)
        s.deposit(account, "USD", "100000")
        s.deposit(account, "BTC", "1")
    refused = len(s.rejects())
    for offset, value in enumerate(records):
        before = _state(s)
        outcome = s.app.process([InboxItem(value, None, "hostile", 0, offset)])
        assert outcome.accepted + outcome.duplicates + outcome.refused == 1
        refused += outcome.refused
        if outcome.refused and not outcome.journal:
            assert _state(s) == before, value
        for asset, total in balances_by_asset(s.app):
            assert total == 0, (asset, value)
    assert len(s.rejects()) == refused


# -- poison among valid records ------------------------------------------------------


def _valid_deposit(number: int, cents: int) -> tuple[bytes, Decimal]:
    amount = Decimal(cents).scaleb(-2)
    record = {
        "type": "deposit",
        "event_id": f"valid-{number}",
        "occurred_at": "2026-11-24T01:00:00Z",
        "account_id": "C1",
        "asset": "USD",
        "amount": format(amount, "f"),
    }
    return json.dumps(record).encode(), amount


def _deep(depth: int) -> bytes:
    return b'{"pad":' + b"[" * depth + b"]" * depth + b',"type":"deposit"}'


def _duplicated(number: int, cents: int) -> bytes:
    raw, _ = _valid_deposit(number, cents)
    return raw[:-1] + b', "amount": "1000000.00"}'


def _hostile_id(number: int, account: str) -> bytes:
    record = json.loads(_valid_deposit(number, 100)[0])
    record["account_id"] = account
    return json.dumps(record).encode()


poison_kinds = st.one_of(
    st.integers(min_value=65, max_value=3_000).map(lambda d: ("too_deep", _deep(d))),
    st.integers(min_value=1, max_value=10**6).map(lambda c: ("duplicate_key", _duplicated(0, c))),
    HOSTILE_IDS.map(lambda account: ("invalid_identifier", _hostile_id(0, account))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(
        st.one_of(st.integers(min_value=1, max_value=10**6), poison_kinds), min_size=1, max_size=60
    )
)
def test_poison_records_book_nothing_and_every_valid_record_around_them_books(
    stream: list[int | tuple[str, bytes]],
) -> None:
    s = Scenario()
    s.open("C1")
    items: list[InboxItem] = []
    expected_total = Decimal(0)
    expected_refusals: list[str] = []
    for offset, entry in enumerate(stream):
        if isinstance(entry, int):
            raw, amount = _valid_deposit(offset, entry)
            expected_total += amount
        else:
            reason_code, raw = entry
            raw = raw.replace(b'"valid-0"', f'"poison-{offset}"'.encode())
            expected_refusals.append(reason_code)
        items.append(InboxItem(raw, None, "hostile", 0, offset))
    outcome = s.app.process(items)  # one batch: a poison record must not stop it
    assert outcome.accepted == len(stream) - len(expected_refusals)
    rejects = s.rejects()
    assert [r["reason_code"] for r in rejects] == expected_refusals
    assert all(r["event_id"] is None or r["event_id"].startswith("poison-") for r in rejects)
    assert s.app.book.accounts["C1"].balance("USD") == expected_total
