"""A client statement's open margin call says why it was issued (docs/statements.md, "What
a statement holds"): a call on the credit limit stands on a client whose margin figures
read `healthy`, and the statement names its trigger in the page's sentence and in the
batch line's detail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import get_args

from app import statement_output
from ledger import journal_events as je
from ledger import statements
from ledger.adopted_policies import AdoptedPolicies
from ledger.policy import load_policy
from tests.ledger_scenario import Scenario


def _events(s: Scenario) -> Iterator[je.JournalEventType]:
    return (je.decode_journal_record(e.record) for e in s.store.iter_journal())


def test_a_statements_open_limit_call_names_its_trigger_beside_a_healthy_status() -> None:
    """C1 (credit limit 15,000) finances 20,030 of a 0.5 BTC buy on 2026-11-24: a call of
    20,030 - 15,000 = 5,030.00 on its credit limit. At the day's close the loan is
    20,030 + 20,030 x 0.08 / 365 = 20,030 + 4.39 (4.3901...); equity
    1.5 x 60,000 - 20,034.39 = 69,965.61 above its maintenance requirement 54,000:
    healthy, with the call open."""
    s = Scenario()
    s.spot_buy_beyond_cash(credit="15000")
    s.at(20)
    s.send("day_closed", business_date="2026-11-24")
    closes = statements.find_closes(_events(s))
    period = statements.daily_period(closes, date(2026, 11, 24))
    policies = AdoptedPolicies.of(load_policy(None))
    (c1,) = statements.statements(_events(s), policies, period)

    assert c1.figures is not None
    assert (c1.figures["status"], Decimal(c1.figures["equity"])) == (
        "healthy",
        Decimal("69965.61"),
    )
    assert c1.margin_call is not None
    assert (c1.margin_call["amount"], c1.margin_call["trigger"]) == (
        "5030.00",
        "credit_limit_exceeded",
    )
    (line,) = [
        line for line in statement_output.statement_lines(c1) if line["section"] == "margin_call"
    ]
    assert line["amount"] == "5030.00"
    assert line["detail"] == f"deadline {c1.margin_call['deadline']}, trigger credit_limit_exceeded"
    page = statement_output.statement_html(c1)
    assert (
        f"5030.00 USD, issued {c1.margin_call['issued_at']}, deadline "
        f"{c1.margin_call['deadline']}, because the margin loan exceeded the credit limit "
        "(credit_limit_exceeded)." in page
    )


def test_every_trigger_has_its_sentence() -> None:
    assert set(statement_output.CALL_REASONS) == set(get_args(je.MarginCallTrigger))
