"""The book: every account's state in memory, changed only by applying journal events.

Decisions and replay call the same `Book.apply`, so a replayed book equals the live one.
Every booking is a balanced set of postings: for each asset the balances of all ledger
accounts, the external custody account included, sum to zero at all times.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, DefaultContext, Inexact
from typing import Any, Literal, assert_never

import msgspec

from ledger import journal_events as je
from ledger import risk
from ledger.inbox import Side
from ledger.invariants import InvariantViolation, present, require
from ledger.money import REPORTING_ASSET, USD_SCALE, ZERO, quantize

HOUSE = "platform:house"
LIQUIDATION = "platform:liquidation"
INSURANCE_FUND = "platform:insurance"
FEES = "platform:fees"
LENDING = "platform:lending"
INTEREST_INCOME = "platform:interest_income"
PERP_SETTLEMENT = "platform:perp_settlement"
BAD_DEBT = "platform:bad_debt"
CUSTODY = "external:custody"
PLATFORM_ACCOUNTS = (
    HOUSE,
    LIQUIDATION,
    INSURANCE_FUND,
    FEES,
    LENDING,
    INTEREST_INCOME,
    PERP_SETTLEMENT,
    BAD_DEBT,
    CUSTODY,
)
_PLATFORM = frozenset(PLATFORM_ACCOUNTS)
# Upstream may fund these platform accounts with deposits; every other use is the ledger's.
DEPOSITABLE_PLATFORM_ACCOUNTS = frozenset({HOUSE, INSURANCE_FUND})
RESERVED_PREFIXES = ("platform:", "external:")
# A posting's two entries are computed in the context postings always used (Python's
# default: 28 digits, nothing else sets one), with an inexact result trapped: so they are
# equal and opposite unless the trap fires, which one method call tells where recomputing
# both differences and comparing them took four `Decimal` operations a posting (about 4% of
# a replay, docs/performance.md).
_POSTING_CONTEXT = DefaultContext.copy()
_POSTING_CONTEXT.traps[Inexact] = True
_subtract, _add = _POSTING_CONTEXT.subtract, _POSTING_CONTEXT.add


def is_reserved(account_id: str) -> bool:
    return account_id.startswith(RESERVED_PREFIXES)


class Position(msgspec.Struct, frozen=True, gc=False):
    """A perpetual position, replaced whole when it changes: a frozen Struct, built in C (a
    dataclass's `__init__` was about a twentieth of applying a perpetual trade), encoded in
    a snapshot as the dataclass was (a map of its two fields), shared by a scratch copy as
    every frozen record is; it holds only decimals, so the collector need not track it."""

    size: Decimal
    entry_price: Decimal


# What a margin call answers: equity below the maintenance requirement, or a margin loan
# drawn for a client debit past one of the account's lending limits.
EQUITY_CALL_TRIGGER: je.MarginCallTrigger = "below_maintenance_requirement"


@dataclass
class OpenMarginCall:
    call_id: str
    issued_at: str
    deadline: datetime
    amount: Decimal
    trigger: je.MarginCallTrigger = EQUITY_CALL_TRIGGER


@dataclass
class LiquidationLot:
    """What one step of a liquidation left the venue to execute in one instrument.

    The platform's liquidation account took `remaining` over at `takeover_price`; each
    venue fill naming the liquidation (and each auto-deleveraging of it) moves `remaining`
    toward 0. `remaining` is signed like the step's quantity (a closed long is positive: the
    liquidation account holds it long and must sell). For collateral, `remaining_cost` is
    the USD the liquidation account paid for what remains, so that the last fill settles
    the exact cents paid."""

    liquidation_id: str
    account_id: str  # the liquidated account
    instrument: str
    kind: je.LiquidationStepKind  # the step that took it over: close_position, sell_collateral
    remaining: Decimal
    takeover_price: Decimal
    remaining_cost: Decimal = ZERO

    @property
    def closing_side(self) -> Side:
        """The side of the liquidation account's trade that executes this lot."""
        return "sell" if self.remaining > ZERO else "buy"


class BookedTrade(msgspec.Struct, frozen=True, array_like=True):
    """What reversing a client trade (a bust) needs, kept per trade instead of its whole
    journal event: the store's trades table holds one per client trade ever booked (see
    `Book.trades`), so its ids, hashes and timestamps would be most of the table."""

    seq: int
    account_id: str
    type: Literal["spot_trade_booked", "perp_trade_booked"]
    instrument: str  # the spot symbol or the perpetual market
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    quote_amount: Decimal = ZERO  # spot: the USD that moved
    realized_pnl: Decimal = ZERO  # perpetual: what the trade realised
    size_after: Decimal = ZERO  # perpetual: the client's position right after the trade
    entry_price_after: Decimal = ZERO
    size_before: Decimal = ZERO  # perpetual: the position it changed (an exact reversal)
    entry_price_before: Decimal = ZERO

    @property
    def perpetual(self) -> bool:
        return self.type == "perp_trade_booked"


_encode_trade = msgspec.msgpack.Encoder().encode
decode_trade = msgspec.msgpack.Decoder(BookedTrade).decode


def principal_at_end_of(day_ends: Mapping[str, Decimal], day: str) -> Decimal:
    """The loan principal at the end of the ISO date `day` (a day since the last close, or
    the last close's own), from an account's `principal_day_ends`: the latest day-end at or
    before it, else none lent."""
    found = ZERO
    for moved, principal in day_ends.items():  # in date order
        if moved > day:
            break
        found = principal
    return found


@dataclass
class Account:
    account_id: str
    investor_class: str
    credit_limit: Decimal = ZERO
    balances: dict[str, Decimal] = field(default_factory=dict)
    loan_principal: Decimal = ZERO
    loan_interest: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    margin_call: OpenMarginCall | None = None
    related_group: str | None = None  # the group of related clients it belongs to
    daily_statements_waived: bool = False  # a professional investor's opt-out
    # The loan principal at the end of each UTC date on which it moved since the last day
    # closed, and at the end of that day (its key): what each calendar day's interest
    # accrues on (`principal_at_end_of`). A zero left at a close is dropped.
    principal_day_ends: dict[str, Decimal] = field(default_factory=dict)

    @property
    def is_client(self) -> bool:
        return not is_reserved(self.account_id)

    @property
    def loan(self) -> Decimal:
        return self.loan_principal + self.loan_interest

    def balance(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)

    def principal_at_end_of(self, day: str) -> Decimal:
        return principal_at_end_of(self.principal_day_ends, day)

    def close_principal_days(self, business_date: str) -> None:
        """At the close of `business_date`: its day-end principal stands for every day
        before it from now on; later days (inputs dated after it) stay."""
        kept = {d: p for d, p in self.principal_day_ends.items() if d > business_date}
        closing = self.principal_at_end_of(business_date)
        self.principal_day_ends = {business_date: closing, **kept} if closing else kept

    def interest_first(self, amount: Decimal) -> tuple[Decimal, Decimal]:
        """How a loan reduction splits: accrued interest first, then principal."""
        interest = min(amount, self.loan_interest)
        return interest, amount - interest

    def reduce_loan(self, amount: Decimal) -> tuple[Decimal, Decimal]:
        """Settle accrued interest first, then principal; returns (interest, principal)."""
        interest, principal = self.interest_first(amount)
        require(principal <= self.loan_principal, "a loan reduction exceeds the loan")
        self.loan_interest -= interest
        self.loan_principal -= principal
        return interest, principal

    def holdings(self) -> risk.AccountHoldings:
        return risk.AccountHoldings(
            balances=self.balances,
            loan=self.loan,
            positions=tuple(
                risk.PositionHolding(market=market, size=p.size, entry_price=p.entry_price)
                for market, p in sorted(self.positions.items())
            ),
        )


@dataclass
class Book:
    """The whole ledger's state; `apply` is the only way to change it."""

    accounts: dict[str, Account] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    clock: datetime | None = None
    # The writer's book only: the inputs it applied since its last store transaction (event
    # id -> input digest). The store keeps every input seen (`LedgerStore.inputs_seen`); a
    # reader's book (views, queries, audit) keeps none: None.
    new_inputs: dict[str, str] | None = None
    last_seq: int = 0
    last_hash: str = "0" * 64
    policy_version: str = ""
    policy_digest: str = ""
    # The firm's total of margin loans (every client's principal and accrued interest) and
    # the interest part of it, each kept as the loans move (`_check_total_loans`).
    total_loans: Decimal = ZERO
    total_loan_interest: Decimal = ZERO
    business_date: str = ""
    # liquidation_id -> instrument -> what is left to execute, executed lots included.
    liquidation_lots: dict[str, dict[str, LiquidationLot]] = field(default_factory=dict)
    # Client accounts whose USD went below zero, with the journal event that took it there
    # (its type and seq); the same decision finances each on the margin loan (DebitFinanced).
    overdrawn: dict[str, tuple[str, int]] = field(default_factory=dict)
    related_groups: dict[str, set[str]] = field(default_factory=dict)  # group -> accounts
    # When each mark was observed (its age decides whether a margin decision may use it).
    mark_times: dict[str, datetime] = field(default_factory=dict)
    # Accounts whose margin decision waits for fresh marks, with the stale instruments.
    waiting: dict[str, list[str]] = field(default_factory=dict)
    # Of those, the accounts whose waiting decision includes a limit call: it is taken when
    # the wait ends, as right after the financed debit that called for it.
    limit_calls_waiting: set[str] = field(default_factory=set)
    # Client trades by trade_id (each an encoded `BookedTrade`, decoded only when a bust
    # asks for it) and client deposits by reference, for busts and returns, with the ids
    # already reversed (each is reversed at most once). A reader's book (`keeps_originals`
    # False: views, queries, audit, read from a store) keeps none on booking: only the
    # original of each reversal it applies, read from the journal at the reversal's
    # `original_seq` just before (`remember_original`). The writer's book keeps neither:
    # the store's trades and deposits tables have them. Its `trades` and `deposits` hold
    # only the originals of the busts and returns it is deciding (the batch's one lookup)
    # or applying, and `new_trades` and `new_deposits` those it booked since its last store
    # transaction, for the store (a trade as its seq and encoded `BookedTrade`).
    keeps_originals: bool = True
    trades: dict[str, bytes] = field(default_factory=dict)
    new_trades: dict[str, tuple[int, bytes]] | None = None
    busted: set[str] = field(default_factory=set)
    deposits: dict[str, je.DepositCredited] = field(default_factory=dict)
    new_deposits: dict[str, je.DepositCredited] | None = None
    returned: set[str] = field(default_factory=set)
    # (market, funding_time) of every funding settled: each interval settles once.
    funding_settled: set[tuple[str, str]] = field(default_factory=set)
    _applying: je.JournalEvent | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for account_id in PLATFORM_ACCOUNTS:
            self.accounts.setdefault(account_id, Account(account_id, "platform"))

    def account(self, account_id: str) -> Account:
        return self.accounts[account_id]

    def lot(self, liquidation_id: str, instrument: str) -> LiquidationLot | None:
        """What liquidation `liquidation_id` took over in `instrument`, if anything."""
        return self.liquidation_lots.get(liquidation_id, {}).get(instrument)

    def lots(self) -> list[LiquidationLot]:
        """Every liquidation lot, executed ones included, by liquidation id and instrument."""
        return [
            lot
            for liquidation_id in sorted(self.liquidation_lots)
            for _, lot in sorted(self.liquidation_lots[liquidation_id].items())
        ]

    def booked_trade(self, trade_id: str) -> BookedTrade | None:
        """The client trade booked under `trade_id`, if any (busted or not): of those the
        book keeps, then of those it booked since its last store transaction (a writer)."""
        encoded = self.trades.get(trade_id)
        if encoded is None and self.new_trades is not None and trade_id in self.new_trades:
            encoded = self.new_trades[trade_id][1]
        return None if encoded is None else decode_trade(encoded)

    def booked_deposit(self, reference: str) -> je.DepositCredited | None:
        """The client deposit booked under `reference`, if any (returned or not): of those
        the book keeps, then of those it booked since its last store transaction."""
        original = self.deposits.get(reference)
        if original is None and self.new_deposits is not None:
            original = self.new_deposits.get(reference)
        return original

    def _keep_trade(self, trade_id: str, seq: int, encoded: bytes) -> None:
        """Keep a client trade's encoded `BookedTrade` (`_encoded_spot_trade` and
        `_encoded_perp_trade`) where this book keeps them."""
        # The first booking under an id is the one reversed (so the store keeps the first).
        if self.new_trades is not None:
            if trade_id not in self.new_trades:
                self.new_trades[trade_id] = (seq, encoded)
        elif trade_id not in self.trades:
            self.trades[trade_id] = encoded

    def remember_original(
        self, original: je.JournalEventType, reversal: je.TradeReversed | je.DepositReversed
    ) -> None:
        """A reader's book: keep the original that `reversal`, about to be applied, reverses
        (the journal's record at its `original_seq`). A perpetual position before the trade
        is the one the reversal restores (its `size_after`, `entry_price_after`)."""
        require(original.seq == reversal.original_seq, "a reversal's original is another seq")
        if isinstance(reversal, je.DepositReversed):
            deposit = reversal.reference
            if not (isinstance(original, je.DepositCredited) and original.reference == deposit):
                raise InvariantViolation(f"deposit {deposit} reversed, never booked there")
            self.deposits.setdefault(deposit, original)
            return
        match original:
            case je.SpotTradeBooked(trade_id=reversal.trade_id):
                encoded = _encoded_spot_trade(
                    original, present(original.account_id, "a trade's account")
                )
            case je.PerpTradeBooked(trade_id=reversal.trade_id):
                encoded = _encoded_perp_trade(
                    original,
                    present(original.account_id, "a trade's account"),
                    present(reversal.size_after, "a perpetual reversal's size"),
                    present(reversal.entry_price_after, "a perpetual reversal's entry price"),
                )
            case _:
                raise InvariantViolation(f"trade {reversal.trade_id} reversed, never booked there")
        self.trades.setdefault(reversal.trade_id, encoded)

    def clients(self) -> list[Account]:
        return [a for a in self.accounts.values() if a.is_client]

    # -- postings -------------------------------------------------------------

    def post(self, asset: str, amount: Decimal, debit: str, credit: str) -> None:
        """Move `amount` of `asset` from `debit` to `credit`: one balanced posting pair.

        Checked on every posting: the two entries are equal and opposite (no rounding
        took a digit), and no client account holds less than nothing of an asset other
        than USD (a USD debit is financed on the margin loan in the same decision)."""
        accounts = self.accounts
        source, target = accounts[debit].balances, accounts[credit].balances
        if source is target:  # the house paying itself funding: nothing moves
            source.setdefault(asset, ZERO)
            return
        try:
            source_after = _subtract(source.get(asset, ZERO), amount)
            target_after = _add(target.get(asset, ZERO), amount)
        except Inexact:
            # `require` called only on a break: its call and arguments cost every posting.
            require(
                False, "posting %s %s from %s to %s does not balance", amount, asset, debit, credit
            )
        # A check per account only for a balance below zero, not of a platform account
        # (the house is often short): the comparisons and a set lookup first.
        source_short = source_after < ZERO and debit not in _PLATFORM
        target_short = target_after < ZERO and credit not in _PLATFORM
        if asset != REPORTING_ASSET:
            if source_short or target_short:
                self._refuse_negative_asset(asset, ((debit, source_after), (credit, target_after)))
            source[asset], target[asset] = source_after, target_after
            return
        source[asset], target[asset] = source_after, target_after
        if source_short or self.overdrawn:
            self._watch_overdraft(debit, source_after)
        if target_short or self.overdrawn:
            self._watch_overdraft(credit, target_after)

    @staticmethod
    def _refuse_negative_asset(asset: str, balances: tuple[tuple[str, Decimal], ...]) -> None:
        for account_id, balance in balances:
            require(
                balance >= ZERO or is_reserved(account_id),
                "%s would hold %s %s: a client holds no negative asset but USD",
                account_id,
                balance,
                asset,
            )

    def _watch_overdraft(self, account_id: str, usd: Decimal) -> None:
        """Keep `overdrawn` to the clients whose USD is negative (platform accounts may be)."""
        if usd >= ZERO:
            if self.overdrawn:
                self.overdrawn.pop(account_id, None)
            return
        if account_id in self.overdrawn or is_reserved(account_id):
            return
        event = present(self._applying, "a posting outside Book.apply")
        tag = type(event).__struct_config__.tag
        self.overdrawn[account_id] = (str(tag), event.seq)

    def reduce_loan(self, account: Account, amount: Decimal) -> tuple[Decimal, Decimal]:
        """`Account.reduce_loan`, with the firm's total of margin loans kept with it (the
        whole amount: interest settled leaves the total as principal repaid does); the
        caller posts the principal and checks the total (`_check_total_loans`)."""
        interest, principal = account.reduce_loan(amount)
        self.total_loans -= amount
        self.total_loan_interest -= interest
        self._note_principal(account)
        return interest, principal

    def _check_total_loans(self) -> None:
        """The firm's total of margin loans, checked where a loan moves (docs/risk-model.md
        "The firm's total of margin loans") without summing every account: it must be the
        principal lent out, which the lending account's USD witnesses (every principal lent
        is posted from it, every principal repaid or written off back to it), plus the
        interest outstanding. A movement that moves the total by other than the loan it
        moves breaks this at once; a loan changed outside these methods is found by the
        close's whole sum (`_close_day`)."""
        principal = -self.accounts[LENDING].balance(REPORTING_ASSET)
        if self.total_loans != principal + self.total_loan_interest:
            # `require` called only on a break: its call and arguments cost every movement.
            require(
                False,
                "the firm's total of margin loans %s differs from the principal lent %s plus "
                "the interest outstanding %s",
                self.total_loans,
                principal,
                self.total_loan_interest,
            )

    def _note_principal(self, account: Account) -> None:
        """The principal at the end of the applied event's day, so far: its UTC date, or the
        first day not closed yet when that date is closed already (a close never reopens),
        or the last day noted when that is later (the ledger clock never goes back; a what-if
        on a reader's book, which has no clock, decides at the epoch)."""
        event = present(self._applying, "a loan moved outside Book.apply")
        day = event.recorded_at[:10]
        if self.business_date and day <= self.business_date:
            day = (date.fromisoformat(self.business_date) + timedelta(days=1)).isoformat()
        ends = account.principal_day_ends
        if ends:
            day = max(day, next(reversed(ends)))
        ends[day] = account.loan_principal

    def repay_loan(self, account: Account, amount: Decimal) -> None:
        interest, principal = self.reduce_loan(account, amount)
        self.post(REPORTING_ASSET, interest, account.account_id, INTEREST_INCOME)
        self.post(REPORTING_ASSET, principal, account.account_id, LENDING)
        self._check_total_loans()

    def _lend(self, account: Account, amount: Decimal) -> None:
        account.loan_principal += amount
        self.total_loans += amount
        self._note_principal(account)
        self.post(REPORTING_ASSET, amount, LENDING, account.account_id)
        self._check_total_loans()

    def _accrue_interest(self, account: Account, amount: Decimal) -> None:
        """Interest is capitalised: it is part of the client's loan, so of the firm's total."""
        account.loan_interest += amount
        self.total_loans += amount
        self.total_loan_interest += amount
        self._check_total_loans()

    def _close_day(self, business_date: str) -> None:
        """Close the principals' days; check the firm's total of margin loans and its
        interest, which each loan movement keeps incrementally (and checks against each
        other), against the sums over the clients' loans once a day (a whole pass over the
        accounts, which the close makes anyway)."""
        self.business_date = business_date
        loans = interest = ZERO
        for account in self.accounts.values():
            if account.principal_day_ends:
                account.close_principal_days(business_date)
            loans += account.loan
            interest += account.loan_interest
        require(
            loans == self.total_loans and interest == self.total_loan_interest,
            "the firm's total of margin loans %s (interest %s) differs from the sum of the "
            "loans %s (interest %s)",
            self.total_loans,
            self.total_loan_interest,
            loans,
            interest,
        )

    def _finance_debit(self, event: je.DebitFinanced) -> None:
        account = self._account_of(event)
        amount = event.amount
        require(
            account.account_id in self.overdrawn and amount == -account.balance(REPORTING_ASSET),
            f"{account.account_id}: a financed debit differs from its USD shortfall",
        )
        self._lend(account, amount)

    def trade_position(
        self, account_id: str, market: str, quantity: Decimal, price: Decimal
    ) -> Decimal:
        """Change a position by a signed quantity at a price; returns the realised PnL booked."""
        account = self.accounts[account_id]
        held = account.positions.get(market)
        effect = risk.trade_realisation(
            held.size if held else ZERO, held.entry_price if held else ZERO, quantity, price
        )
        self.set_position(account, market, effect.new_size, effect.new_entry_price)
        realised = quantize(effect.realised_pnl, USD_SCALE)
        self.post(REPORTING_ASSET, realised, PERP_SETTLEMENT, account_id)
        return realised

    @staticmethod
    def set_position(account: Account, market: str, size: Decimal, entry_price: Decimal) -> None:
        if size.is_zero():
            account.positions.pop(market, None)
        else:
            account.positions[market] = Position(size, entry_price)

    # -- apply ------------------------------------------------------------------

    def apply(self, event: je.JournalEventType) -> None:
        """Apply one journal event: the next seq, linked to the last record's hash."""
        last_hash = self.last_hash
        if not (
            event.seq == self.last_seq + 1
            and event.prev_hash == last_hash
            and len(event.hash) == len(last_hash)
        ):  # one test per event; which link broke is told only when one did
            require(
                event.seq == self.last_seq + 1,
                "journal seq %s follows %s",
                event.seq,
                self.last_seq,
            )
            require(False, "journal seq %s breaks the hash chain", event.seq)
        self._applying = event
        _SHORTCUTS.get(type(event), Book._apply_body)(self, event)
        self._applying = None  # only postings inside apply read it; a snapshot holds none
        if self.new_inputs is not None and event.input_digest is not None:  # a writer
            self.new_inputs[event.causation_id] = event.input_digest
        self.last_seq = event.seq
        self.last_hash = event.hash

    def _apply_body(self, event: je.JournalEventType) -> None:  # noqa: PLR0912, PLR0915  # one arm per type
        # A class pattern is an isinstance test, tried in order, and `isinstance` of a Struct
        # that is not one costs ~150 ns (its metaclass): the most frequent first (in the
        # simulated week), the three `_SHORTCUTS` take (they never come here) last.
        match event:
            case je.DepositCredited():
                self._apply_deposit(event)
            case je.WithdrawalApproved():
                self.post(event.asset, event.amount, self._id(event), CUSTODY)
            case je.LoanRepaid():
                self.repay_loan(self._account_of(event), event.amount)
            case je.LoanDrawn():
                self._lend(self._account_of(event), event.amount)
            case je.LoanDrawRejected() | je.WithdrawalRejected() | je.LiquidationTriggered():
                pass
            case je.InterestAccrued():
                self._accrue_interest(self._account_of(event), event.amount)
            case je.CreditLimitSet():
                self._account_of(event).credit_limit = event.credit_limit
            case je.AccountOpened():
                self._open_account(event)
            case je.MarginDecisionWaiting():
                self._apply_waiting(event)
            case je.FundingSettled():
                self._apply_funding(event)
            case je.DebitFinanced():
                self._finance_debit(event)
            case je.MarginCallIssued():
                self._account_of(event).margin_call = OpenMarginCall(
                    event.call_id,
                    event.recorded_at,
                    _parse_time(event.deadline),
                    event.amount,
                    event.trigger,
                )
            case je.MarginCallCleared():
                self._account_of(event).margin_call = None
            case je.LiquidationCompleted():
                self._apply_liquidation(event)
            case je.DayClosed():
                self._close_day(event.business_date)
            case je.TradeReversed():
                self._reverse_trade(event)
            case je.InsuranceFundDrawn():
                self.post(REPORTING_ASSET, event.amount, INSURANCE_FUND, self._id(event))
            case je.LiquidationFilled():
                self._apply_fill(event)
            case je.AutoDeleveraged():
                self._apply_auto_deleveraging(event)
            case je.BadDebtRecorded():
                self._apply_bad_debt(event)
            case je.DepositReversed():
                self._reverse_deposit(event)
            case je.RelatedGroupSet():
                self._apply_related_group(self._account_of(event), event.group_id)
            case je.DailyStatementsSet():
                self._account_of(event).daily_statements_waived = event.daily_statements == "waived"
            case je.PolicyAdopted():
                self.policy_version, self.policy_digest = event.version, event.digest
            case je.PerpTradeBooked():
                self._apply_perp_trade(event)
            case je.SpotTradeBooked():
                self._apply_spot_trade(event)
            case je.MarkPriceApplied():
                self._apply_mark(event)
            case _:
                assert_never(event)

    def _apply_bad_debt(self, event: je.BadDebtRecorded) -> None:
        _, principal = self.reduce_loan(self._account_of(event), event.loan_written_off)
        self.post(REPORTING_ASSET, principal, BAD_DEBT, LENDING)
        self._check_total_loans()
        self.post(REPORTING_ASSET, event.cash_written_off, BAD_DEBT, self._id(event))

    def _apply_related_group(self, account: Account, group_id: str | None) -> None:
        previous = account.related_group
        if previous is not None:
            members = self.related_groups[previous]
            members.discard(account.account_id)
            if not members:
                del self.related_groups[previous]
        if group_id is not None:
            self.related_groups.setdefault(group_id, set()).add(account.account_id)
        account.related_group = group_id

    def group_loans(self, group_id: str) -> Decimal:
        """Every member's loan, interest included."""
        return sum((self.accounts[a].loan for a in self.related_groups[group_id]), ZERO)

    def _open_account(self, event: je.AccountOpened) -> None:
        account_id = present(event.account_id, "account_opened without an account_id")
        require(account_id not in self.accounts, "account %s opened twice", account_id)
        self.accounts[account_id] = Account(account_id, event.investor_class, event.credit_limit)

    def _apply_waiting(self, event: je.MarginDecisionWaiting) -> None:
        account_id = self._id(event)
        if event.stale_marks:
            self.waiting[account_id] = list(event.stale_marks)
            if event.limit_call:
                self.limit_calls_waiting.add(account_id)
        else:
            self.waiting.pop(account_id, None)
            self.limit_calls_waiting.discard(account_id)

    def _apply_mark(self, event: je.MarkPriceApplied) -> None:
        self.marks[event.instrument] = event.price
        self.mark_times[event.instrument] = _parse_time(event.observed_at or event.recorded_at)

    def _apply_funding(self, event: je.FundingSettled) -> None:
        self.funding_settled.add((event.market, event.funding_time))
        for payment in event.payments:
            self.post(REPORTING_ASSET, payment.amount, payment.account_id, HOUSE)

    def _apply_deposit(self, event: je.DepositCredited) -> None:
        account_id = self._id(event)
        self.post(event.asset, event.amount, CUSTODY, account_id)
        if event.reference is not None and self.keeps_originals and not is_reserved(account_id):
            # The first booking under a reference is the one a return reverses.
            kept = self.deposits if self.new_deposits is None else self.new_deposits
            kept.setdefault(event.reference, event)

    def _reverse_deposit(self, event: je.DepositReversed) -> None:
        original = present(
            self.booked_deposit(event.reference), f"deposit {event.reference} never booked"
        )
        require(
            event.reference not in self.returned
            and (original.account_id, original.asset, original.amount)
            == (event.account_id, event.asset, event.amount),
            f"deposit {event.reference} reversed other than it was booked",
        )
        self.returned.add(event.reference)
        self.post(event.asset, event.amount, self._id(event), CUSTODY)

    def _reverse_trade(self, event: je.TradeReversed) -> None:
        original = present(
            self.booked_trade(event.trade_id), f"trade {event.trade_id} reversed, never booked"
        )
        require(
            event.trade_id not in self.busted and original.seq == event.original_seq,
            f"trade {event.trade_id} reversed twice or other than it was booked",
        )
        self.busted.add(event.trade_id)
        account_id = self._id(event)
        if not original.perpetual:
            base, quantity = original.instrument.split("/")[0], original.quantity
            quote = original.quote_amount
            if original.side == "buy":
                self.post(base, quantity, account_id, HOUSE)
                self.post(REPORTING_ASSET, quote, HOUSE, account_id)
            else:
                self.post(base, quantity, HOUSE, account_id)
                self.post(REPORTING_ASSET, quote, account_id, HOUSE)
        else:
            account = self.accounts[account_id]
            self.set_position(
                account, original.instrument, original.size_before, original.entry_price_before
            )
            realised = original.realized_pnl
            self.post(REPORTING_ASSET, realised, account_id, PERP_SETTLEMENT)
            signed = original.quantity * (1 if original.side == "buy" else -1)
            house = self.trade_position(HOUSE, original.instrument, signed, original.price)
            require(
                event.house_realized_pnl is not None and house == event.house_realized_pnl,
                f"trade {event.trade_id}: the house's reversal realised other PnL",
            )
        self.post(REPORTING_ASSET, original.fee, FEES, account_id)

    def _apply_spot_trade(self, event: je.SpotTradeBooked) -> None:
        base = event.symbol.split("/")[0]
        account_id = self._id(event)
        if self.keeps_originals:
            self._keep_trade(event.trade_id, event.seq, _encoded_spot_trade(event, account_id))
        quantity, quote = event.quantity, event.quote_amount
        if event.side == "buy":
            self.post(base, quantity, HOUSE, account_id)
            self.post(REPORTING_ASSET, quote, account_id, HOUSE)
        else:
            self.post(base, quantity, account_id, HOUSE)
            self.post(REPORTING_ASSET, quote, HOUSE, account_id)
        self.post(REPORTING_ASSET, event.fee, account_id, FEES)

    def _apply_perp_trade(self, event: je.PerpTradeBooked) -> None:
        account = self._account_of(event)
        if self.keeps_originals and not account.account_id.startswith(RESERVED_PREFIXES):
            held = account.positions.get(event.market)
            encoded = _encoded_perp_trade(
                event,
                account.account_id,
                held.size if held else ZERO,
                held.entry_price if held else ZERO,
            )
            self._keep_trade(event.trade_id, event.seq, encoded)
        self.set_position(account, event.market, event.size_after, event.entry_price_after)
        self.post(REPORTING_ASSET, event.realized_pnl, PERP_SETTLEMENT, account.account_id)
        self.post(REPORTING_ASSET, event.fee, account.account_id, FEES)

    def _apply_liquidation_step(self, account: Account, step: je.LiquidationStep) -> None:
        quantity, price = step.quantity, step.price
        if step.kind == "close_position":
            # The platform's liquidation account takes the position over at the mark.
            realised = self.trade_position(account.account_id, step.instrument, -quantity, price)
            require(realised == step.proceeds, "a liquidation close realised other PnL")
            self.trade_position(LIQUIDATION, step.instrument, quantity, price)
            self.post(REPORTING_ASSET, step.fee, account.account_id, INSURANCE_FUND)
        elif step.kind == "sell_collateral":
            self.post(step.instrument, quantity, account.account_id, LIQUIDATION)
            self.post(REPORTING_ASSET, step.proceeds, LIQUIDATION, account.account_id)
        else:
            require(step.kind == "cash_to_loan", f"unknown liquidation step {step.kind}")
        self.repay_loan(account, step.loan_repaid)

    def _apply_liquidation(self, event: je.LiquidationCompleted) -> None:
        account = self._account_of(event)
        for step in event.steps:
            self._apply_liquidation_step(account, step)
            if step.kind != "cash_to_loan":
                self._open_lot(event, step)

    def _open_lot(self, event: je.LiquidationCompleted, step: je.LiquidationStep) -> None:
        lots = self.liquidation_lots.setdefault(event.liquidation_id, {})
        require(
            step.instrument not in lots,
            f"liquidation {event.liquidation_id} took {step.instrument} over twice",
        )
        lots[step.instrument] = LiquidationLot(
            liquidation_id=event.liquidation_id,
            account_id=self._id(event),
            instrument=step.instrument,
            kind=step.kind,
            remaining=step.quantity,
            takeover_price=step.price,
            remaining_cost=step.proceeds if step.kind == "sell_collateral" else ZERO,
        )

    def _apply_fill(self, event: je.LiquidationFilled) -> None:
        lot = self.liquidation_lots[event.liquidation_id][event.instrument]
        quantity = event.quantity
        remaining = lot.remaining - quantity if lot.remaining > ZERO else lot.remaining + quantity
        require(
            remaining == event.remaining_after
            and abs(remaining) < abs(lot.remaining)
            and remaining * lot.remaining >= ZERO,
            f"fill {event.trade_id} does not reduce liquidation lot {lot.liquidation_id}",
        )
        lot.remaining = remaining
        if event.takeover_cost is not None:
            lot.remaining_cost -= event.takeover_cost
        self.post(REPORTING_ASSET, event.insurance_fund_paid, LIQUIDATION, INSURANCE_FUND)

    def _apply_auto_deleveraging(self, event: je.AutoDeleveraged) -> None:
        winner = self._id(event)
        # `size_reduced` is the signed change of the winner's position (+ buys back a short).
        reduced, price = event.size_reduced, event.bankruptcy_price
        lot = self.lot(event.liquidation_id, event.market)
        if lot is not None:  # the liquidation account's lot shrinks by what the winner took
            lot.remaining -= reduced
        # The winner's position shrinks toward zero at the bankruptcy price; the liquidation
        # account, which holds the bankrupt side, takes the other side of that trade.
        self.trade_position(winner, event.market, reduced, price)
        self.trade_position(LIQUIDATION, event.market, -reduced, price)
        self.post(REPORTING_ASSET, event.absorbed, LIQUIDATION, event.bankrupt_account_id)

    def _id(self, event: je.JournalEvent) -> str:
        account_id = event.account_id
        if account_id is None or account_id not in self.accounts:
            raise InvariantViolation(f"{type(event).__name__} for unknown account {account_id}")
        return account_id

    def _account_of(self, event: je.JournalEvent) -> Account:
        account = self.accounts.get(event.account_id)  # type: ignore[arg-type]  # None: below
        if account is None:
            raise InvariantViolation(
                f"{type(event).__name__} for unknown account {event.account_id}"
            )
        return account


# The match of `_apply_body` says how each event applies; the most frequent three are
# looked up by exact type first: a class pattern is an isinstance test, and isinstance of a
# Struct that is not of the class costs ~150 ns (its metaclass's __instancecheck__), which
# was 4% of a replay into every view (docs/performance.md).
_SHORTCUTS: dict[type, Callable[[Book, Any], None]] = {
    je.PerpTradeBooked: Book._apply_perp_trade,
    je.SpotTradeBooked: Book._apply_spot_trade,
    je.MarkPriceApplied: Book._apply_mark,
}


# A kept trade is encoded from the tuple of its `BookedTrade` fields, in their order: the
# same bytes (an array-like Struct is the array of its fields; a Decimal is written as its
# text), at about half the cost of building the Struct and encoding it, and a spot trade's
# five perpetual figures, always zero, are written from their text (a Decimal's text is
# most of an encode's cost). tests/unit/test_book_trades.py holds the bytes equal.
_ZERO_TEXT = str(ZERO)


def _encoded_spot_trade(event: je.SpotTradeBooked, account_id: str) -> bytes:
    """The encoded `BookedTrade` of a client's spot trade."""
    zero = _ZERO_TEXT
    return _encode_trade(
        (
            event.seq,
            account_id,
            "spot_trade_booked",
            event.symbol,
            event.side,
            event.quantity,
            event.price,
            event.fee,
            event.quote_amount,
            zero,  # realized_pnl
            zero,  # size_after
            zero,  # entry_price_after
            zero,  # size_before
            zero,  # entry_price_before
        )
    )


def _encoded_perp_trade(
    event: je.PerpTradeBooked, account_id: str, size_before: Decimal, entry_price_before: Decimal
) -> bytes:
    """The encoded `BookedTrade` of a client's perpetual trade, which changed the position
    `size_before` at `entry_price_before` (what its reversal restores)."""
    return _encode_trade(
        (
            event.seq,
            account_id,
            "perp_trade_booked",
            event.market,
            event.side,
            event.quantity,
            event.price,
            event.fee,
            _ZERO_TEXT,  # quote_amount
            event.realized_pnl,
            event.size_after,
            event.entry_price_after,
            size_before,
            entry_price_before,
        )
    )


# Times parsed, kept for the next events: most marks come in runs observed at one instant
# (three in four in the simulated week), a cache hit costs a third of a parse.
parsed_times_kept_max = 256
_parse_time = functools.lru_cache(maxsize=parsed_times_kept_max)(datetime.fromisoformat)
