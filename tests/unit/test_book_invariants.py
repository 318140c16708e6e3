"""`Book.apply` stops on what only a bug can produce, even under `python -O`."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import msgspec
import pytest

from ledger import journal_events as je
from ledger.book import Book
from ledger.invariants import InvariantViolation
from ledger.journal import seal
from ledger.risk import MarginStatus

AT = "2026-11-24T03:12:00Z"


def _sealed(book: Book, body: je.JournalEventType, seq: int | None = None) -> je.JournalEventType:
    """`body` sealed as the record after the book's last (or at `seq`), read back."""
    sealed = seal(je.journal_body(body), seq or book.last_seq + 1, book.last_hash)
    return je.decode_journal_record(sealed.record)


def _book_with_one_btc() -> Book:
    book = Book()
    opened = je.AccountOpened(
        recorded_at=AT,
        causation_id="open-1",
        account_id="ACC-1",
        investor_class="professional",
        credit_limit=Decimal("0.00"),
    )
    book.apply(_sealed(book, opened))
    book.apply(_sealed(book, _deposit("1", "dep-1")))
    return book


def _deposit(amount: str, causation_id: str) -> je.DepositCredited:
    return je.DepositCredited(
        recorded_at=AT,
        causation_id=causation_id,
        account_id="ACC-1",
        asset="BTC",
        amount=Decimal(amount),
    )


def _withdrawal(amount: str) -> je.WithdrawalApproved:
    figures = je.Figures(
        market_value=Decimal(0),
        unrealized_pnl=Decimal(0),
        loan=Decimal(0),
        equity=Decimal(0),
        initial_requirement=Decimal(0),
        maintenance_requirement=Decimal(0),
        liquidation_requirement=Decimal(0),
        excess=Decimal(0),
        available=Decimal(0),
        margin_level=None,
        ltv=None,
        status=MarginStatus.HEALTHY,
    )
    inputs = je.DecisionInputs(
        holdings=je.Holdings(balances={}, loan=Decimal(0), positions=[]),
        marks={},
        policy_version="test",
        figures=figures,
    )
    return je.WithdrawalApproved(
        recorded_at=AT,
        causation_id="wd-1",
        account_id="ACC-1",
        asset="BTC",
        amount=Decimal(amount),
        inputs_after=inputs,
    )


def test_a_client_never_holds_a_negative_asset_other_than_usd() -> None:
    book = _book_with_one_btc()
    with pytest.raises(InvariantViolation, match=r"ACC-1 would hold -0\.5 BTC"):
        book.apply(_sealed(book, _withdrawal("1.5")))
    book = _book_with_one_btc()
    book.apply(_sealed(book, _withdrawal("1")))
    assert book.accounts["ACC-1"].balance("BTC") == 0


def test_a_posting_that_would_round_a_digit_away_stops_the_book() -> None:
    book = _book_with_one_btc()  # 1 BTC: 1 + 1E-28 needs 29 digits, Python's default keeps 28
    with pytest.raises(InvariantViolation, match=r"posting 1E-28 BTC from external:custody to "):
        book.apply(_sealed(book, _deposit("1E-28", "dep-2")))
    assert book.accounts["ACC-1"].balances["BTC"] == 1  # nothing moved
    assert book.accounts["external:custody"].balances["BTC"] == -1
    book = _book_with_one_btc()
    book.apply(
        _sealed(book, _deposit("0.000000000000000000000000001", "dep-2"))
    )  # 28 digits: exact
    assert str(book.accounts["ACC-1"].balances["BTC"]) == "1.000000000000000000000000001"
    assert str(book.accounts["external:custody"].balances["BTC"]) == (
        "-1.000000000000000000000000001"
    )


def test_a_gap_in_seq_or_a_broken_chain_stops_the_book() -> None:
    book = _book_with_one_btc()
    with pytest.raises(InvariantViolation, match="journal seq 4 follows 2"):
        book.apply(_sealed(book, _withdrawal("0.1"), seq=4))
    unlinked = _sealed(book, _withdrawal("0.1"))
    with pytest.raises(InvariantViolation, match="journal seq 3 breaks the hash chain"):
        book.apply(msgspec.structs.replace(unlinked, prev_hash="f" * 64))


def test_the_checks_hold_under_python_dash_o() -> None:
    program = (
        "from tests.unit.test_book_invariants import _book_with_one_btc, _sealed, _withdrawal\n"
        "book = _book_with_one_btc()\n"
        "try:\n"
        "    book.apply(_sealed(book, _withdrawal('2')))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-O", "-c", program], capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "InvariantViolation"
