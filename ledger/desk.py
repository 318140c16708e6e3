"""The decision context: the book, the policy, the clock, and the journal being written.

Every decision records events through `Desk.record`, which seals the event into the
hash chain and applies it to the book at once, so the next decision (in the same input
or the next) sees its effect exactly as a replay would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from ledger import journal_events as je
from ledger import risk
from ledger.book import Account, Book
from ledger.invariants import InvariantViolation
from ledger.journal import JournalEntry, format_timestamp
from ledger.money import REPORTING_ASSET
from ledger.policy import Policy
from ledger.rejections import ReasonCode, Refusal
from ledger.watchlist import Watchlist


class Common(TypedDict):
    """The fields of `je.JournalEvent` that depend on the input being decided."""

    recorded_at: str
    causation_id: str
    account_id: str | None
    input_digest: str | None


@dataclass
class Desk:
    book: Book
    policy: Policy
    watchlist: Watchlist
    pending: list[JournalEntry] = field(default_factory=list)
    cause: str = ""
    now: datetime | None = None
    now_text: str = ""
    digest: str | None = None  # of the input being decided, until its first event

    def begin(self, event_id: str, occurred_at: datetime, digest: str) -> None:
        """Start deciding one input: the ledger clock never goes backwards."""
        clock = self.book.clock
        self.now = occurred_at if clock is None or occurred_at > clock else clock
        self.book.clock = self.now
        self.now_text = format_timestamp(self.now)
        self.cause = event_id
        self.digest = digest

    def record(self, body: je.JournalEventType) -> je.JournalEventType:
        """Seal `body` as the next journal event and apply it to the book."""
        book = self.book
        seq = book.last_seq + 1
        # The book applies the record as a replay will read it back, figure for figure.
        sealed = je.seal_event(body, seq, book.last_hash)
        event = sealed.event
        book.apply(event)
        self.pending.append(JournalEntry(seq=seq, type=_tag(event), record=sealed.record))
        return event

    def leaves_counterparty_out(self, kind: type[je.JournalEventType]) -> bool:
        """Whether this desk leaves the house's side of a client's trade (its event, of
        type `kind`) out of its book and journal: the ledger's own desks never do; a
        pre-trade check's may (`scratch.ValuingDesk`)."""
        del kind
        return False

    def common(self, account_id: str | None = None) -> Common:
        """The fields every event of the current input carries; the first takes the digest."""
        digest, self.digest = self.digest, None
        # A literal: calling the TypedDict builds the same dict in two and a half times the
        # time, and every journal event asks for one.
        common: Common = {
            "recorded_at": self.now_text,
            "causation_id": self.cause,
            "account_id": account_id,
            "input_digest": digest,
        }
        return common

    def client(self, account_id: str) -> Account | Refusal:
        """The client account `account_id`, or the refusal of an input naming another."""
        account = self.book.accounts.get(account_id)
        if account is None or not account.is_client:
            return Refusal(
                ReasonCode.UNKNOWN_ACCOUNT,
                f"account {account_id!r} is not open: publish its account_opened first",
            )
        return account

    def figures(
        self, account: Account, *, with_positions: bool = False
    ) -> risk.MarginFigures | Refusal:
        """The account's risk figures at the current marks, or the refusal of a decision
        that needs them while an asset it holds has no mark. Decisions read the account's
        figures only; `with_positions` adds each position's (without liquidation prices)."""
        try:
            # Decisions never use a liquidation price: it is solved for queries and reports.
            return risk.margin_figures(
                account.holdings(),
                self.book.marks,
                self.policy,
                with_liquidation_prices=False,
                with_positions=with_positions,
            )
        except risk.MissingMark as missing:
            return Refusal(
                ReasonCode.NO_MARK_PRICE,
                f"{missing.args[0]} has no mark_price yet, so account "
                f"{account.account_id} cannot be valued: publish a mark first",
            )

    def inputs(self, account: Account, figures: risk.MarginFigures) -> je.DecisionInputs:
        """What a decision on `account` was taken on, for the journal."""
        holdings = account.holdings()
        return je.DecisionInputs(
            holdings=je.Holdings(
                balances=dict(sorted(holdings.balances.items())),
                loan=holdings.loan,
                positions=[
                    je.PositionHolding(
                        market=p.market,
                        size=p.size,
                        entry_price=p.entry_price,
                    )
                    for p in holdings.positions
                ],
            ),
            marks=self.held_marks(account),
            policy_version=self.policy.version,
            figures=figures_record(figures),
        )

    def stale_marks(self, account: Account) -> list[str]:
        """The instruments the account holds whose mark is older than the policy's
        `mark_max_age_minutes` at the ledger clock: no margin decision may use them."""
        clock = self.book.clock
        if clock is None:
            return []
        oldest = clock - timedelta(minutes=self.policy.mark_max_age_minutes)
        times = self.book.mark_times
        held = [a for a, b in account.balances.items() if a != REPORTING_ASSET and b] + list(
            account.positions
        )
        return sorted(i for i in held if i in times and times[i] < oldest)

    def held_marks(self, account: Account) -> dict[str, Decimal]:
        """The marks of every asset and market the account holds, as the journal writes them."""
        held = sorted(
            [a for a in account.balances if a != REPORTING_ASSET] + list(account.positions)
        )
        marks = self.book.marks
        return {i: marks[i] for i in held if i in marks}


def figures_record(figures: risk.MarginFigures) -> je.Figures:
    return je.Figures(
        market_value=figures.market_value,
        unrealized_pnl=figures.unrealized_pnl,
        loan=figures.loan,
        equity=figures.equity,
        initial_requirement=figures.initial_requirement,
        maintenance_requirement=figures.maintenance_requirement,
        liquidation_requirement=figures.liquidation_requirement,
        excess=figures.excess,
        available=figures.available,
        margin_level=figures.margin_level,
        ltv=figures.ltv,
        status=figures.status,
    )


# Each event type's tag, looked up once: `Desk.record` names the type of every event.
_TAGS: dict[type[je.JournalEventType], str] = {}


def _tag(event: je.JournalEventType) -> str:
    kind = type(event)
    tag = _TAGS.get(kind)
    if tag is None:
        found = kind.__struct_config__.tag
        if not isinstance(found, str):
            raise InvariantViolation(
                f"{kind.__name__} has no string tag: every journal event has one"
            )
        tag = _TAGS[kind] = found
    return tag
