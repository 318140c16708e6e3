"""`ledger audit` and `ledger report`: tamper evidence, replay differences, explain, formats."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sqlite3
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no type information
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import main
from ledger import journal_events as je
from ledger import reporting
from ledger.book import Book
from ledger.invariants import present
from ledger.journal import JournalEntry
from ledger.policy import Policy
from projections.audit import verify_records
from projections.explain import explain_event
from tests.unit.test_projections import (  # the shared simulated journal
    entries,
    journal_db,
    policy,
    store_url,
)

__all__ = ["entries", "journal_db", "policy", "store_url"]  # fixtures used below
tampered_records_max = 400  # the first records of the journal: every type before the crash


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_changing_any_byte_of_any_record_names_that_seq(
    entries: list[JournalEntry], data: st.DataObject
) -> None:
    records = [entry.record for entry in entries[:tampered_records_max]]
    index = data.draw(st.integers(0, len(records) - 1), label="record")
    position = data.draw(st.integers(0, len(records[index]) - 1), label="byte")
    old = records[index][position]
    new = data.draw(st.integers(0, 255).filter(lambda b: b != old), label="new byte")
    tampered = bytearray(records[index])
    tampered[position] = new
    records[index] = bytes(tampered)
    outcome = verify_records(records)
    assert not outcome.ok
    assert outcome.report.first_bad_seq == index + 1
    assert outcome.report.count == index


def test_verify_a_tampered_export_names_the_seq_and_exits_1(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "journal.jsonl"
    assert main(["--store", store_url, "journal", "export", "--out", str(export)]) == 0
    assert main(["--store", store_url, "audit", "verify", "--file", str(export)]) == 0
    assert "journal verified" in capsys.readouterr().out
    lines = export.read_bytes().splitlines()
    lines[41] = lines[41].replace(b'"recorded_at":"2026', b'"recorded_at":"2025', 1)
    export.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["--store", store_url, "audit", "verify", "--file", str(export)]) == 1
    assert "journal broken at seq 42: hash does not recompute" in capsys.readouterr().out


def test_verify_the_store(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", store_url, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("journal verified: ")


def test_replay_prints_the_differences_of_a_tampered_view_and_exits_1(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store_url, "report", "balances", "--format", "csv"]) == 0
    assert main(["--store", store_url, "audit", "replay"]) == 0
    assert "every view is identical" in capsys.readouterr().out
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as connection:
        connection.execute(
            "UPDATE view_balances SET balance = '1' WHERE account_id = 'C000001' AND asset = 'USD'"
        )
    assert main(["--store", store_url, "audit", "replay"]) == 1
    out = capsys.readouterr().out
    assert "balances: 1 rows differ" in out
    assert "C000001, USD: balance: live '1', replay '" in out


def test_explain_a_liquidation_shows_the_arithmetic_and_agrees(
    store_url: str, entries: list[JournalEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = next(
        event
        for event in (je.decode_journal_record(e.record) for e in entries)
        if isinstance(event, je.LiquidationTriggered)
    )
    assert main(["--store", store_url, "audit", "explain", trigger.liquidation_id]) == 0
    out = capsys.readouterr().out
    assert f"seq {trigger.seq} liquidation_triggered" in out
    assert "equity E = market value + unrealised PnL - L = " in out
    assert "figures after, recorded against recomputed:" in out
    assert "differ" not in out


def test_explain_compares_a_decisions_recorded_marks_and_holdings_with_the_journals(
    store_url: str, entries: list[JournalEntry], policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figures that recompute from their recorded inputs prove nothing if the inputs were not
    the journal's: each mark must be the latest applied (seq and observed time shown, fresh
    for a liquidation) and the holdings the account's as booked."""
    events = [je.decode_journal_record(e.record) for e in entries]
    trigger = next(e for e in events if isinstance(e, je.LiquidationTriggered))
    market = trigger.inputs.holdings.positions[0].market
    before = events[: trigger.seq - 1]
    mark = [e for e in before if isinstance(e, je.MarkPriceApplied) and e.instrument == market][-1]
    assert main(["--store", store_url, "audit", "explain", str(trigger.seq)]) == 0
    out = capsys.readouterr().out
    assert f"recorded inputs against the journal before seq {trigger.seq}:" in out
    assert f"  mark {market} {mark.price}: observed " in out
    assert mark.alert  # the crash: the mark that triggered moved past the alert
    moved = f", moved from {mark.previous_price}"
    assert f"(mark_price_applied seq {mark.seq}{moved}), " in out
    assert f"  mark {market}: recorded {mark.price} = journal ✓" in out
    assert f"  mark {market} at most 0:15:00 old: recorded True = journal ✓" in out
    assert f"  holdings of {trigger.account_id}: recorded " in out

    book = Book()
    for event in before:
        book.apply(event)
    book.marks[market] += 1  # a journal whose mark is not the one the decision recorded
    book.accounts[present(trigger.account_id, "")].balances["USD"] += 1
    differences = explain_event(trigger, policy, book_before=book).differences
    assert f"mark {market}: recorded {mark.price}, journal {mark.price + 1}" in differences
    assert sum(d.startswith(f"holdings of {trigger.account_id}: ") for d in differences) == 1
    assert len(differences) == 2  # the figures still recompute from the recorded inputs


def test_explain_exits_1_when_a_decision_used_a_mark_the_journal_did_not_apply(
    store_url: str, entries: list[JournalEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal's mark of the liquidated position's market altered in the store: the
    trigger's figures still recompute from its recorded inputs, its mark is not the
    journal's."""
    events = [je.decode_journal_record(e.record) for e in entries]
    trigger = next(e for e in events if isinstance(e, je.LiquidationTriggered))
    market = trigger.inputs.holdings.positions[0].market
    mark = [
        e
        for e in events[: trigger.seq - 1]
        if isinstance(e, je.MarkPriceApplied) and e.instrument == market
    ][-1]
    altered = mark.price + Decimal("0.01")
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as connection:
        connection.execute(
            "UPDATE stored_events SET state = replace(state, ?, ?) WHERE originator_version = ?",
            (f'"price":"{mark.price}"'.encode(), f'"price":"{altered}"'.encode(), mark.seq),
        )
    assert main(["--store", store_url, "audit", "explain", str(trigger.seq)]) == 1
    out = capsys.readouterr().out
    assert f"  mark {market}: recorded {mark.price} ≠ journal {altered} ✗" in out
    assert f"=> seq {trigger.seq}: 1 of " in out
    assert "recorded figures differ from the recomputed ones or the journal's (✗ above)" in out


def test_explain_of_an_older_store_refuses_a_policy_of_another_version(
    store_url: str, tmp_path: Path, entries: list[JournalEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    """The store keeps the journal's policy now, and a decision is recomputed with it
    whatever file is given; a store written before keeps none, and another file given is
    refused, naming the policy the decision needs (docs/views.md "Policies")."""
    demo = resources.files("ledger").joinpath("policies", "demo.toml").read_text("utf-8")
    other = tmp_path / "other.toml"
    other.write_text(demo.replace('version = "2026-11-25.1"', 'version = "2027-01-01.1"'))
    call = next(e.seq for e in entries if e.type == "margin_call_issued")
    arguments = ["--store", store_url, "--policy", str(other), "audit", "explain", str(call)]
    assert main(arguments) == 0
    assert "policy 2026-11-25.1;" in capsys.readouterr().out
    older = tmp_path / "older.db"
    with (
        sqlite3.connect(store_url.removeprefix("sqlite:///")) as source,
        sqlite3.connect(older) as copy,
    ):
        source.backup(copy)
        copy.execute("DELETE FROM stored_events WHERE topic = 'policy_document'")
    arguments[1] = f"sqlite:///{older}"
    assert main(arguments) == 2
    assert "is under policy 2026-11-25.1 (sha256 " in capsys.readouterr().err


def test_report_formats_keep_decimals_as_strings(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store_url, "report", "margin-clients", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["view"] == "margin-clients"
    assert document["rows"]
    assert all(isinstance(r["equity"], str) for r in document["rows"])
    assert main(["--store", store_url, "report", "lending-limits", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["item"] == "client_collateral_market_value"
    parquet = tmp_path / "calls.parquet"
    arguments = ["report", "margin-calls", "--format", "parquet", "--out", str(parquet)]
    assert main(["--store", store_url, *arguments]) == 0
    read = pq.read_table(parquet)
    assert read.column_names[:3] == ["call_id", "account_id", "issued_seq"]
    # Changed: figures were decimals sized per file; every file has decimal128(38, 18).
    assert read.schema.field("amount").type == pa.decimal128(38, 18)
    assert str(read.schema.field("issued_seq").type) == "int64"
    assert str(read.schema.field("issued_at").type) == "timestamp[us, tz=UTC]"
    assert main(["--store", store_url, "report", "margin-calls", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert read.column("amount").to_pylist() == [Decimal(r["amount"]) for r in rows]
    statement = tmp_path / "statement.parquet"
    arguments = ["report", "daily-statement", "--format", "parquet", "--out", str(statement)]
    assert main(["--store", store_url, *arguments]) == 0
    read = pq.read_table(statement)
    assert str(read.schema.field("business_date").type) == "date32[day]"
    # Changed: nested figures were sized per file; they are decimal128(38, 18) as well.
    assert read.schema.field("balances").type.item_type == pa.decimal128(38, 18)
    position = read.schema.field("positions").type.value_type
    assert [position.field(i).name for i in range(3)] == ["market", "size", "entry_price"]
    assert str(position.field("market").type) == "string"
    assert position.field("size").type == pa.decimal128(38, 18)
    assert position.field("entry_price").type == pa.decimal128(38, 18)
    assert main(["--store", store_url, "report", "daily-statement", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    for row, balances, positions in zip(
        rows, read.column("balances").to_pylist(), read.column("positions").to_pylist(), strict=True
    ):
        # The same figures as the JSON's exact strings, only typed: equal as decimals.
        assert dict(balances) == {k: Decimal(v) for k, v in json.loads(row["balances"]).items()}
        expected = [
            {
                "market": p["market"],
                "size": Decimal(p["size"]),
                "entry_price": Decimal(p["entry_price"]),
            }
            for p in json.loads(row["positions"])
        ]
        assert positions == expected
    assert any(positions for positions in read.column("positions").to_pylist())


def test_report_as_of_and_bad_input(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", store_url, "report", "perps-exposure", "--as-of", "10"]) == 0
    assert "perps-exposure as of seq 10" in capsys.readouterr().out
    assert main(["--store", store_url, "report", "perps-exposure", "--as-of", "yesterday"]) == 2
    assert "neither a journal seq nor a timestamp" in capsys.readouterr().err


def test_replay_as_of_an_earlier_seq_compares_there(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", store_url, "report", "balances", "--format", "csv"]) == 0
    capsys.readouterr()
    assert main(["--store", store_url, "audit", "replay", "--as-of", "120"]) == 0
    assert "replay of seq 1..120 into a scratch store: every view is identical" in (
        capsys.readouterr().out
    )


def test_replay_of_a_broken_export_says_so_before_comparing(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "journal.jsonl"
    assert main(["--store", store_url, "journal", "export", "--out", str(export)]) == 0
    lines = export.read_bytes().splitlines()
    lines[41] = lines[41].replace(b'"recorded_at":"2026', b'"recorded_at":"2025', 1)
    export.write_bytes(b"\n".join(lines) + b"\n")
    capsys.readouterr()
    assert main(["--store", store_url, "audit", "replay", "--file", str(export)]) == 1
    out = capsys.readouterr().out
    assert out == (
        f"{export}: journal broken at seq 42: hash does not recompute "
        "(41 records before it verify); nothing compared\n"
    )


def test_replay_of_an_export_shorter_than_the_views_says_so_before_comparing(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It replayed the export to its end, compared at the views' position and printed
    every row since as a difference, under 'replay of seq 1..<the views' position>'."""
    export = tmp_path / "journal.jsonl"
    assert main(["--store", store_url, "report", "balances", "--format", "csv"]) == 0
    assert main(["--store", store_url, "journal", "export", "--out", str(export)]) == 0
    lines = export.read_bytes().splitlines()
    export.write_bytes(b"\n".join(lines[:120]) + b"\n")
    capsys.readouterr()
    assert main(["--store", store_url, "audit", "replay", "--file", str(export)]) == 1
    assert capsys.readouterr().out == (
        f"{export} ends at seq 120, before seq {len(lines)} where the views are compared: "
        "nothing compared (--as-of 120 compares at its end)\n"
    )
    arguments = ["audit", "replay", "--file", str(export), "--as-of", "120"]
    assert main(["--store", store_url, *arguments]) == 0
    assert "replay of seq 1..120 into a scratch store: every view is identical" in (
        capsys.readouterr().out
    )


def test_an_as_of_beyond_the_journal_is_an_error_for_query_and_report(
    store_url: str, entries: list[JournalEntry], capsys: pytest.CaptureFixture[str]
) -> None:
    beyond = str(len(entries) + 1)
    for command in (["query", "margin", "C000001"], ["report", "margin-calls"]):
        assert main(["--store", store_url, *command, "--as-of", beyond]) == 2
        assert capsys.readouterr().err == (
            f"ledger: --as-of {beyond} is beyond the journal, which ends at seq {len(entries)}\n"
        )


@pytest.mark.parametrize("zone", ["Z", "z", "+00:00", "+08:00"])
def test_as_of_takes_every_rfc_3339_zone(zone: str) -> None:
    """A lower-case z (RFC 3339 allows it, and the inbox's occurred_at takes it) was
    'neither a journal seq nor a timestamp'."""
    moment = reporting.parse_as_of(f"2026-11-03T08:00:00{zone}")
    assert isinstance(moment, datetime.datetime)
    hours = 8 if zone == "+08:00" else 0
    utc = datetime.datetime(2026, 11, 3, 8 - hours, tzinfo=datetime.UTC)
    assert moment == utc
