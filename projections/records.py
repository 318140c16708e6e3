"""The records the projection keeps per margin call, liquidation, market and batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ledger import journal_events as je
from ledger.money import ZERO


@dataclass
class CallRecord:
    call_id: str
    account_id: str
    issued_seq: int
    issued_at: str
    amount: Decimal
    deadline: str
    figures: je.Figures
    trigger: je.MarginCallTrigger
    limit: Decimal | None  # the lending limit a limit call's loan exceeded; None: equity's
    outcome: str = "open"
    closed_seq: int | None = None
    closed_at: str | None = None
    liquidation_id: str | None = None


@dataclass
class LiquidationRecord:
    liquidation_id: str
    account_id: str
    triggered_seq: int
    triggered_at: str
    trigger: str
    inputs: je.DecisionInputs
    steps: list[je.LiquidationStep] = field(default_factory=list)
    figures_after: je.Figures | None = None
    insurance_fund_drawn: Decimal = ZERO
    auto_deleveraged: Decimal = ZERO
    bad_debt_loan: Decimal = ZERO
    bad_debt_cash: Decimal = ZERO
    fills: int = 0  # the venue's executions of it
    fills_paid_to_fund: Decimal = ZERO  # their gains; their losses are in insurance_fund_drawn


@dataclass
class FundingTotals:
    paid: Decimal = ZERO
    received: Decimal = ZERO
    residue: Decimal = ZERO


@dataclass
class PendingStatement:
    """A `day_closed` whose input may still record events (interest) after it."""

    business_date: str
    causation_id: str
    closed_seq: int
    closed_at: str


@dataclass
class Touched:
    """What the batch being projected changed: the scopes its writes cover."""

    accounts: set[str] = field(default_factory=set)
    marked: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    liquidations: set[str] = field(default_factory=set)
    statements: set[str] = field(default_factory=set)  # business dates finalised
    any_event: bool = False
