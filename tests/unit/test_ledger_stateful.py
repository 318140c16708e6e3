"""Random sequences of deposits, withdrawals and spot trades (some on credit) against a
small reference model."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.ledger_scenario import Scenario, balances_by_asset

ACCOUNTS = ("A", "B")
BTC_MARK = Decimal(60000)
CREDIT_LIMIT = Decimal(1000000)  # the scenario's default
usd_amounts = st.integers(min_value=1, max_value=5_000_000).map(lambda n: Decimal(n).scaleb(-2))
btc_amounts = st.integers(min_value=1, max_value=300_000_000).map(lambda n: Decimal(n).scaleb(-8))


class CashAndCollateral(RuleBasedStateMachine):
    """Without perpetuals and with the account kept healthy, every request has a plain
    answer a model can give; a purchase beyond cash is a margin loan."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Scenario()
        self.ledger.mark("BTC", str(BTC_MARK))
        self.model: dict[tuple[str, str], Decimal] = {}
        self.loans: dict[str, Decimal] = dict.fromkeys(ACCOUNTS, Decimal(0))
        for account in ACCOUNTS:
            self.ledger.open(account)

    def held(self, account: str, asset: str) -> Decimal:
        return self.model.get((account, asset), Decimal(0))

    def move(self, account: str, asset: str, amount: Decimal) -> None:
        self.model[(account, asset)] = self.held(account, asset) + amount

    @rule(account=st.sampled_from(ACCOUNTS), amount=usd_amounts)
    def deposit_usd(self, account: str, amount: Decimal) -> None:
        self.ledger.deposit(account, "USD", format(amount, "f"))
        self.move(account, "USD", amount)

    @rule(account=st.sampled_from(ACCOUNTS), amount=btc_amounts)
    def deposit_btc(self, account: str, amount: Decimal) -> None:
        self.ledger.deposit(account, "BTC", format(amount, "f"))
        self.move(account, "BTC", amount)

    @rule(account=st.sampled_from(ACCOUNTS), amount=usd_amounts)
    def withdraw_usd(self, account: str, amount: Decimal) -> None:
        outcome = self.ledger.send(
            "withdrawal_requested", account_id=account, asset="USD", amount=format(amount, "f")
        )
        # With only cash and BTC held, E - IR after = cash - amount + 0.3 x BTC value - loan.
        cash, btc_value = self.held(account, "USD"), self.held(account, "BTC") * BTC_MARK
        if amount > cash:
            assert outcome.refused_by_reason == {"insufficient_balance": 1}
        elif cash - amount + Decimal("0.3") * btc_value - self.loans[account] < 0:
            assert outcome.refused_by_reason == {"below_initial_requirement": 1}
        else:
            assert outcome.refused == 0
            self.move(account, "USD", -amount)

    @rule(
        account=st.sampled_from(ACCOUNTS),
        quantity=btc_amounts,
        side=st.sampled_from(["buy", "sell"]),
    )
    def trade_btc(self, account: str, quantity: Decimal, side: str) -> None:
        cost = (quantity * BTC_MARK).quantize(Decimal("0.01"))
        shortfall = max(Decimal(0), cost - self.held(account, "USD"))
        if side == "buy" and not self.stays_healthy_within_limits(account, quantity, shortfall):
            return  # margin calls and liquidations are beyond this model
        outcome = self.ledger.send(
            "spot_trade", account_id=account, trade_id=f"t{self.ledger.counter}",
            symbol="BTC/USD", side=side, quantity=format(quantity, "f"), price="60000", fee="0",
        )  # fmt: skip
        if side == "sell" and quantity > self.held(account, "BTC"):
            assert outcome.refused_by_reason == {"insufficient_balance": 1}
            return
        sign = 1 if side == "buy" else -1
        self.move(account, "BTC", sign * quantity)
        self.move(account, "USD", -sign * cost)
        if side == "buy" and shortfall:
            self.move(account, "USD", shortfall)  # drawn on the margin loan
            self.loans[account] += shortfall

    def stays_healthy_within_limits(
        self, account: str, quantity: Decimal, shortfall: Decimal
    ) -> bool:
        """After the buy: E >= MR (0.6 of the BTC value) and the loan within the lending
        value (0.3 of it) and the credit limit. A buy at the mark leaves E unchanged."""
        btc_value = (self.held(account, "BTC") + quantity) * BTC_MARK
        equity = self.held(account, "USD") + self.held(account, "BTC") * BTC_MARK
        loan = self.loans[account] + shortfall
        return (
            equity - self.loans[account] >= Decimal("0.6") * btc_value
            and loan <= Decimal("0.3") * btc_value
            and loan <= CREDIT_LIMIT
        )

    @invariant()
    def balances_match_the_model(self) -> None:
        book = self.ledger.app.book
        for (account, asset), amount in self.model.items():
            assert book.accounts[account].balance(asset) == amount, (account, asset)

    @invariant()
    def loans_match_the_model_and_no_cash_is_negative(self) -> None:
        book = self.ledger.app.book
        for account in ACCOUNTS:
            assert book.accounts[account].loan == self.loans[account], account
            assert book.accounts[account].balance("USD") >= 0, account
        assert self.ledger.events("margin_call_issued") == []

    @invariant()
    def every_asset_sums_to_zero(self) -> None:
        for asset, total in balances_by_asset(self.ledger.app):
            assert total == 0, asset


TestCashAndCollateral = CashAndCollateral.TestCase
TestCashAndCollateral.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
