"""One outcome channel: a decision returns Booked, Rejected or Refused; only the inbox
decoder raises a `Refusal` (for a record that is no input at all), and no decision code
catches one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ledger.book import Book
from ledger.decisions import Booked, Refused, Rejected, decide
from ledger.inbox import decode_inbox
from ledger.policy import load_policy
from ledger.rejections import ReasonCode
from ledger.scratch import scratch_desk
from tests.inbox_reference import inbox_digest

REPOSITORY = Path(__file__).resolve().parents[2]
POLICY = load_policy(None)
# The decoder raises for a malformed record; its two callers turn that into a reject.
RAISES_REFUSAL = {"ledger/inbox.py"}
CATCHES_REFUSAL = {"ledger/application.py", "ledger/pretrade.py"}


def _refusal_sites(kind: type[ast.Raise] | type[ast.ExceptHandler]) -> set[str]:
    found = set()
    for path in sorted((REPOSITORY / "ledger").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, kind):
                continue
            named = node.exc if isinstance(node, ast.Raise) else node.type
            if isinstance(named, ast.Call):
                named = named.func
            if isinstance(named, ast.Name) and named.id == "Refusal":
                found.add(str(path.relative_to(REPOSITORY)))
    return found


def test_only_the_inbox_decoder_raises_a_refusal_and_only_its_callers_catch_one() -> None:
    assert _refusal_sites(ast.Raise) == RAISES_REFUSAL
    assert _refusal_sites(ast.ExceptHandler) == CATCHES_REFUSAL


def _decided(book: Book, **record: str) -> Booked | Rejected | Refused:
    fields = {"event_id": f"e{book.last_seq}", "occurred_at": "2026-11-24T03:00:00Z", **record}
    decoded = decode_inbox(json.dumps(fields).encode(), POLICY)
    desk = scratch_desk(book, POLICY)
    desk.begin(decoded.event_id, decoded.occurred_at, inbox_digest(decoded))
    decision = decide(desk, decoded)
    if isinstance(decision, Refused):
        assert desk.pending == []  # nothing recorded for a refused input
    return decision


@pytest.mark.parametrize(
    ("record", "reason_code"),
    [
        ({"type": "deposit", "account_id": "C9", "asset": "USD", "amount": "1"}, "unknown_account"),
        ({"type": "trade_busted", "trade_id": "t-none", "reason": "x"}, "unknown_trade"),
        (
            {"type": "deposit_returned", "reference": "r-none", "reason": "x"},
            "unknown_deposit",
        ),
        (
            {
                "type": "perp_trade",
                "account_id": "C9",
                "market": "BTC-PERP",
                "side": "buy",
                "quantity": "1",
                "price": "60000",
                "fee": "0",
                "trade_id": "t1",
                "liquidation_id": "no-such-liquidation",
            },
            "unknown_liquidation",
        ),
    ],
)
def test_a_helper_that_refuses_returns_its_refusal_through_decide(
    record: dict[str, str], reason_code: str
) -> None:
    decision = _decided(Book(), **record)
    assert isinstance(decision, Refused)
    assert decision.refusal.reason_code is ReasonCode(reason_code)
