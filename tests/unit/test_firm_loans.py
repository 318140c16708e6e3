"""The firm's total of margin loans is every client's loan as booked: principal plus the
interest accrued on it (docs/risk-model.md "The firm's total of margin loans"), in the
firm-wide limit check, in `firm_loans_after` and in the `lending-limits` view alike."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from app.cli import main
from ledger import snapshots
from ledger.adopted_policies import AdoptedPolicies
from ledger.application import UndecidableRecord
from ledger.book import Book
from ledger.invariants import InvariantViolation
from ledger.policy import Policy, parse_policy
from projections.explain import explain
from projections.rows import lending_rows
from tests.ledger_scenario import Scenario

DEMO_POLICY = Path(__file__).parents[2] / "ledger" / "policies" / "demo.toml"


@pytest.fixture
def small_firm() -> Policy:
    """The demonstration policy for a firm with 50,000 USD of shareholders' funds, total
    loans at most 2 x 50,000 = 100,000 and one client's at most 1 x 50,000 = 50,000: two
    clients can reach the firm's limit."""
    text = DEMO_POLICY.read_text()
    for key, demo, small in (
        ("shareholders_funds", "50000000", "50000"),
        ("max_total_loans_multiple", "5", "2"),
        ("max_client_loan_share", "0.20", "1"),
    ):
        line = f'{key} = "{demo}"'
        assert line in text
        text = text.replace(line, f'{key} = "{small}"')
    return parse_policy(text.encode(), "small firm")


def _firm_total_row(book: Book, policy: Policy) -> tuple[object, ...]:
    (row,) = [row for row in lending_rows(book, policy) if row[0] == "firm_total_loans"]
    return row


def _two_clients_with_bitcoin(policy: Policy, url: str = "sqlite:///:memory:") -> Scenario:
    """C1 and C2 each hold 3 BTC at 60,000 (lending value 3 x 60,000 x 0.30 = 54,000)."""
    s = Scenario(url, policy=policy)
    s.mark("BTC", "60000")
    for client in ("C1", "C2"):
        s.open(client)
        s.deposit(client, "BTC", "3")
    return s


def _assert_total_is_the_clients_loans(s: Scenario, total: str) -> None:
    book = s.app.book
    assert book.total_loans == sum(a.loan for a in book.clients()) == Decimal(total)
    # A reader's book, replayed from the journal, keeps the same total.
    assert snapshots.book_at(s.store).total_loans == Decimal(total)


def test_the_firm_limit_counts_the_interest_accrued_on_the_clients_loans(
    small_firm: Policy,
) -> None:
    """C1 and C2 each hold 3 BTC at 60,000 (lending value 3 x 60,000 x 0.30 = 54,000).

    C1 draws 50,000 on Tuesday 24 November; that day's close accrues
    50,000 x 0.08 / 365 = 10.9589.. -> 10.96: C1's loan is 50,010.96, the firm's total too.
    C2 then asks for 49,990: the firm's total after it would be 50,010.96 + 49,990
    = 100,000.96, above 100,000: refused (counting principal only, 99,990, it passed).
    49,989.04 brings the total to exactly 100,000.00: approved. C1 repays 1,010.96
    (the 10.96 of interest first, then 1,000 of principal): the total is 98,989.04."""
    s = _two_clients_with_bitcoin(small_firm)
    s.send("loan_draw_requested", account_id="C1", amount="50000")
    _assert_total_is_the_clients_loans(s, "50000")
    s.at(24)
    s.send("day_closed", business_date="2026-11-24")
    (accrued,) = s.events("interest_accrued")
    assert (accrued["account_id"], accrued["amount"]) == ("C1", "10.96")
    _assert_total_is_the_clients_loans(s, "50010.96")
    assert _firm_total_row(snapshots.book_at(s.store), small_firm)[2:4] == (
        "50010.96",
        "100000",
    )

    s.at(25)
    s.mark("BTC", "60000")
    s.send("loan_draw_requested", account_id="C2", amount="49990.00")
    (refused,) = s.events("loan_draw_rejected")
    assert refused["reason_code"] == "firm_lending_limit_exceeded"
    assert (refused["limits"]["firm_loans_after"], refused["limits"]["firm_loans_max"]) == (
        "100000.96",
        "100000",
    )
    (explained,) = explain(s.store, str(refused["seq"]), AdoptedPolicies.of(small_firm))
    assert explained.consistent
    assert "firm's total margin lending limit: 100000.96 ≤ 100000: FAILS" in explained.lines

    s.send("loan_draw_requested", account_id="C2", amount="49989.04")
    drawn = s.events("loan_drawn")[-1]
    assert (drawn["account_id"], drawn["limits"]["firm_loans_after"]) == ("C2", "100000.00")
    _assert_total_is_the_clients_loans(s, "100000.00")
    assert _firm_total_row(snapshots.book_at(s.store), small_firm)[2:] == (
        "100000.00",
        "100000",
        "1.00000000",  # utilisation
        "0.00",  # headroom
        "within",
    )

    s.send("loan_repayment", account_id="C1", amount="1010.96")
    assert s.app.book.accounts["C1"].loan == Decimal("49000.00")
    _assert_total_is_the_clients_loans(s, "98989.04")


def test_a_whole_number_draw_records_its_limits_at_the_cents_as_booked(
    small_firm: Policy,
) -> None:
    """C1 (3 BTC, lending value 54,000) asks for 10000 on no loan: booked 10,000.00, and the
    figures it was decided on are the booked ones, 0 + 10,000.00 = 10,000.00 (they read
    `10000`, which `audit explain`, recomputing from the booked amount, found inconsistent)."""
    s = _two_clients_with_bitcoin(small_firm)
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    (drawn,) = s.events("loan_drawn")
    assert (drawn["amount"], drawn["limits"]["loan_before"]) == ("10000.00", "0")
    assert (drawn["limits"]["loan_after"], drawn["limits"]["firm_loans_after"]) == (
        "10000.00",
        "10000.00",
    )
    (explained,) = explain(s.store, str(drawn["seq"]), AdoptedPolicies.of(small_firm))
    assert explained.consistent, explained.differences


def _drawn_to_the_firm_limit(path: Path, small_firm: Policy) -> tuple[int, int]:
    """C1 draws 50,000 and the close accrues 10.96 on it; C2 draws 49,989.04: the firm's
    total after C2's draw is 50,000 + 10.96 + 49,989.04 = 100,000.00. The store closed;
    returns the seqs of C1's `interest_accrued` and C2's `loan_drawn`."""
    s = _two_clients_with_bitcoin(small_firm, f"sqlite:///{path}")
    s.send("loan_draw_requested", account_id="C1", amount="50000")
    s.at(24)
    s.send("day_closed", business_date="2026-11-24")
    s.at(25)
    s.mark("BTC", "60000")
    s.send("loan_draw_requested", account_id="C2", amount="49989.04")
    drawn = s.events("loan_drawn")[-1]
    assert drawn["limits"]["firm_loans_after"] == "100000.00"
    (accrued,) = s.events("interest_accrued")
    s.store.close()
    return int(accrued["seq"]), int(drawn["seq"])


def _tamper(path: Path, seq: int, old: str, new: str) -> None:
    """Replace `old` by `new` in the journal record at `seq`, as someone with the file might."""
    with sqlite3.connect(path) as connection:
        changed = connection.execute(
            "UPDATE stored_events SET state = replace(state, ?, ?) WHERE originator_version = ?",
            (old.encode(), new.encode(), seq),
        ).rowcount
    assert changed == 1


def test_explain_recomputes_a_draws_firm_total_from_the_journal(
    tmp_path: Path, small_firm: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    """The firm's total before C2's draw is the sum of the clients' loans in the journal:
    C1's 50,000.00 + 10.96 = 50,010.96 (C2 owes nothing yet); after it
    50,010.96 + 49,989.04 = 100,000.00, as recorded: consistent."""
    path = tmp_path / "store.db"
    _, seq = _drawn_to_the_firm_limit(path, small_firm)
    assert main(["--store", f"sqlite:///{path}", "audit", "explain", str(seq)]) == 0
    out = capsys.readouterr().out
    assert (
        f"firm loans before = Σ the clients' loans in the journal before seq {seq} "
        "= 50010.96 (1 borrower)"
    ) in out
    assert "firm loans after = 50010.96 + 49989.04 = 100000.00" in out
    assert "  firm loans after: recorded 100000.00 = journal ✓" in out


class _Tampering(NamedTuple):
    record: str  # "draw": C2's loan_drawn; "interest": C1's interest_accrued
    old: str
    new: str
    recorded: str  # the draw's firm_loans_after, as the journal says
    journal: str  # the clients' loans in the journal before it, plus the draw


@pytest.mark.parametrize(
    "tampering",
    [
        # The draw's own figure forged to the principal-only total, 50,000 + 49,989.04.
        _Tampering("draw", '"firm_loans_after":"100000.00"', '"firm_loans_after":"99989.04"',
                   "99989.04", "100000.00"),
        # The journal's history altered: C1's interest of 10.96 made 0.96, so the clients'
        # loans before the draw are 50,000.96 and after it 50,000.96 + 49,989.04 = 99,990.00.
        _Tampering("interest", '"amount":"10.96"', '"amount":"0.96"', "100000.00", "99990.00"),
    ],
)  # fmt: skip
def test_explain_of_a_draw_says_inconsistent_when_its_firm_total_is_not_the_journals(
    tmp_path: Path,
    small_firm: Policy,
    capsys: pytest.CaptureFixture[str],
    tampering: _Tampering,
) -> None:
    path = tmp_path / "store.db"
    interest_seq, seq = _drawn_to_the_firm_limit(path, small_firm)
    _tamper(path, seq if tampering.record == "draw" else interest_seq, tampering.old, tampering.new)
    assert main(["--store", f"sqlite:///{path}", "audit", "explain", str(seq)]) == 1
    out = capsys.readouterr().out
    assert (
        f"  firm loans after: recorded {tampering.recorded} ≠ journal {tampering.journal} ✗"
    ) in out
    assert f"=> seq {seq}: 1 of " in out


class _Movement(NamedTuple):
    record: dict[str, str]  # the inbox record that moves a loan, after C1's 10,000 draw
    total: str  # the firm's running total after it, one cent off
    principal: str  # the principal lent out after it, as the lending account holds it


@pytest.mark.parametrize(
    "movement",
    [
        # C2 draws 1,000: 10,000 + 1,000 = 11,000.00 lent; the total 11,000.01.
        _Movement({"type": "loan_draw_requested", "account_id": "C2", "amount": "1000"},
                  "11000.01", "11000.00"),
        # C1 repays 1,000 of its 10,000.00 (no interest yet): 9,000.00; the total 9,000.01.
        _Movement({"type": "loan_repayment", "account_id": "C1", "amount": "1000"},
                  "9000.01", "9000.00"),
        # C1 buys 0.2 BTC at 60,000 = 12,000 with the 10,000 USD it drew: the 2,000 short
        # is financed on its loan, 12,000.00 lent; the total 12,000.01.
        _Movement({"type": "spot_trade", "account_id": "C1", "trade_id": "s1",
                   "symbol": "BTC/USD", "side": "buy", "quantity": "0.2", "price": "60000",
                   "fee": "0"},
                  "12000.01", "12000.00"),
    ],
)  # fmt: skip
def test_a_wrong_increment_of_the_firm_total_stops_the_writer_at_the_next_loan_movement(
    small_firm: Policy, movement: _Movement
) -> None:
    """C1 and C2 each hold 3 BTC at 60,000; C1 draws 10,000: 10,000.00 lent, the firm's
    total 10,000.00. A wrong increment then leaves the running total a cent high,
    10,000.01 (as one forgetting or doubling a movement would). The next loan movement
    finds it, in the same input, not at the day's close: the writer stops (an invariant,
    not a refusal) and nothing of the input is stored."""
    s = _two_clients_with_bitcoin(small_firm)
    s.send("loan_draw_requested", account_id="C1", amount="10000")
    book = s.app.book
    assert (book.total_loans, book.total_loan_interest) == (Decimal("10000.00"), Decimal(0))
    journal_before = s.journal()
    book.total_loans += Decimal("0.01")
    fields = dict(movement.record)
    with pytest.raises(UndecidableRecord) as stopped:
        s.send(fields.pop("type"), **fields)
    assert isinstance(stopped.value.__cause__, InvariantViolation)
    assert str(stopped.value.__cause__) == (
        f"the firm's total of margin loans {movement.total} differs from the principal lent "
        f"{movement.principal} plus the interest outstanding 0"
    )
    assert s.journal() == journal_before
    assert s.app.book.total_loans == Decimal("10000.00")  # rebuilt from the journal


def test_the_interest_outstanding_is_kept_with_the_total_and_checked_at_the_close(
    small_firm: Policy,
) -> None:
    """C1 draws 50,000; the close of the 24th accrues 10.96 (50,000 x 0.08 / 365): the
    interest outstanding is 10.96 and the total 50,010.96. C1 repays 1,010.96, interest
    first: 0 of interest, 49,000.00 of principal, the total 49,000.00. A total of interest
    a cent off is found by the next close's whole sum."""
    s = _two_clients_with_bitcoin(small_firm)
    s.send("loan_draw_requested", account_id="C1", amount="50000")
    s.at(24)
    s.send("day_closed", business_date="2026-11-24")
    book = s.app.book
    assert (book.total_loans, book.total_loan_interest) == (
        Decimal("50010.96"),
        Decimal("10.96"),
    )
    s.send("loan_repayment", account_id="C1", amount="1010.96")
    assert (book.total_loans, book.total_loan_interest) == (Decimal("49000.00"), Decimal("0.00"))
    assert snapshots.book_at(s.store).total_loan_interest == 0
    book.total_loan_interest += Decimal("0.01")
    book.total_loans += Decimal("0.01")  # the two kept together: only the close finds them
    s.at(48)
    with pytest.raises(UndecidableRecord) as stopped:
        s.send("day_closed", business_date="2026-11-25")
    assert "(interest 0.01) differs from the sum of the loans 49000.00 (interest 0.00)" in str(
        stopped.value.__cause__
    )


def test_a_wrong_increment_of_the_firm_total_stops_a_liquidations_repayment() -> None:
    """C1 (credit limit 15,000) holds 1 BTC at 60,000 and 10,000 USD and buys 0.5 BTC for
    30,030: 20,030.00 is financed, the loan 5,030 above the limit, a call due in 24 hours.
    With the running total a cent high (20,030.01), the mark at the deadline liquidates:
    0.08383342 BTC sold for 5,030.01 repays the loan to 14,999.99, and that repayment stops
    the writer: the total 20,030.01 - 5,030.01 = 15,000.00 against 14,999.99 lent."""
    s = Scenario()
    s.spot_buy_beyond_cash(credit="15000")
    assert s.app.book.total_loans == Decimal("20030.00")
    s.app.book.total_loans += Decimal("0.01")
    s.at(24)
    with pytest.raises(UndecidableRecord) as stopped:
        s.mark("BTC", "60000")
    assert str(stopped.value.__cause__) == (
        "the firm's total of margin loans 15000.00 differs from the principal lent 14999.99 "
        "plus the interest outstanding 0"
    )
    assert s.events("liquidation_completed") == []
