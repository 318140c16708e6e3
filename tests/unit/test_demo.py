"""`ledger demo` on the embedded store: a fresh store each run, a summary, a report."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app import html_report
from app.cli import main
from ledger.store import LedgerStore

demo_arguments = ["--accounts", "6", "--days", "1", "--seed", "5"]


def run_demo(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["demo", "--folder", str(folder), *demo_arguments]) == 0
    return capsys.readouterr().out


def summary_value(output: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(.*)$", output, re.MULTILINE)
    assert match is not None, f"no {label!r} line in:\n{output}"
    return match.group(1)


def test_the_demo_prints_the_summary_and_the_report_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = run_demo(tmp_path, capsys)
    for label in (
        "stress",
        "accounts",
        "loans",
        "open interest",
        "margin calls",
        "liquidations",
        "rejects",
        "journal",
    ):
        summary_value(output, label)
    report = tmp_path.resolve() / "report.html"
    assert f"report: {report}" in output
    with LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}") as store:
        last_seq = store.last_seq()
    assert summary_value(output, "journal").startswith(f"seq {last_seq:,}, last hash ")
    assert summary_value(output, "accounts").startswith("6 ")


def test_each_run_starts_from_a_fresh_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = summary_value(run_demo(tmp_path, capsys), "journal")
    second = summary_value(run_demo(tmp_path, capsys), "journal")
    assert first == second  # not twice the journal: the same one, byte for byte


def test_the_demo_never_removes_a_ledger_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger demo --folder .ledger` deleted the default store's ledger.db without a word."""
    store = tmp_path / "ledger.db"
    assert main(["--store", f"sqlite:///{store}", "store", "init"]) == 0
    held = store.read_bytes()
    capsys.readouterr()
    assert main(["demo", "--folder", str(tmp_path), *demo_arguments]) == 2
    assert capsys.readouterr().err == (
        f"ledger: --folder {tmp_path} holds ledger.db, which no demo wrote: give the demo a "
        "folder of its own (nothing was removed)\n"
    )
    assert store.read_bytes() == held
    run_demo(tmp_path / "demo", capsys)  # its own folder, again and again
    run_demo(tmp_path / "demo", capsys)


def test_the_report_needs_no_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(tmp_path, capsys)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=""", page)
    assert "url(" not in page
    assert page.count("<svg") == 4


def test_the_report_holds_the_stress_ladder_ledger_stress_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = run_demo(tmp_path, capsys)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    ladder = ["--ladder", html_report.REPORT_LADDER, "--format", "json"]
    assert main(["--store", f"sqlite:///{tmp_path / 'ledger.db'}", "stress", *ladder]) == 0
    (expected,) = json.loads(capsys.readouterr().out)["ladders"]
    # BTC and ETH together from -5% to -60%, 5 points apart: 12 rungs, each a table row.
    assert len(expected["rungs"]) == 12
    assert 'data-chart="stress-ladder"' in page
    exhausted = expected["insurance_fund_exhausted_at"]
    verdict = f"exhausted at {exhausted}" if exhausted else "not exhausted within the ladder"
    assert f"<h2>Insurance fund {verdict}</h2>" in page
    printed = f"{html_report.REPORT_LADDER} together: insurance fund {verdict}"
    assert summary_value(output, "stress") == printed
    for rung in expected["rungs"]:
        assert f"<td>{rung['shock']}</td>" in page
        # At the cent with separators, as the report's other tables show money.
        fund_after = Decimal(rung["insurance_fund_after"]).quantize(Decimal("0.01"))
        assert f"<td>{fund_after:,f}</td>" in page


def test_bad_sizes_are_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for size in (["--accounts", "0"], ["--accounts", "20001"], ["--days", "367"]):
        assert main(["demo", "--folder", str(tmp_path), *size]) == 2
        assert "a simulation needs 1 to 20,000 accounts and 1 to 366 days" in (
            capsys.readouterr().err
        )


@pytest.mark.parametrize(
    ("ltv", "label"), [("0", "<5%"), ("0.0499", "<5%"), ("0.05", "<10%"), ("0.6", ">=60%")]
)
def test_ltv_buckets(ltv: str, label: str) -> None:
    assert html_report.LTV_BUCKET_LABELS[html_report.ltv_bucket(Decimal(ltv))] == label


def test_the_venue_executes_every_liquidation_and_the_inbox_file_reproduces_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--accounts", "25", "--days", "2", "--seed", "1"]  # a crash with liquidations
    assert main(["demo", "--folder", str(tmp_path / "demo"), *arguments]) == 0
    output = capsys.readouterr().out
    liquidations = int(summary_value(output, "liquidations").split(";")[0])
    venue = summary_value(output, "venue")
    fills = int(venue.split(" fills of liquidations")[0])
    assert 0 < liquidations <= fills  # each liquidation in at least one fill
    assert venue.endswith("; 0 lots left to execute")
    platform = summary_value(output, "platform")
    assert platform == "platform:liquidation positions: none (every liquidation executed)"
    page = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    assert "<h2>platform-exposure</h2>" in page
    # Every client debit beyond cash is a loan: no client USD below zero after the crash.
    assert summary_value(output, "loan book").endswith("client USD below zero 0.00 USD")
    assert "waited for fresh marks (stale-marks view)" in summary_value(output, "market inputs")
    assert "<h2>stale-marks</h2>" in page
    assert 'data-figure="client_usd_below_zero">0.00<' in page
    # The inbox file holds the venue's fills where they were decided: ingesting it again
    # decides the same journal, byte for byte.
    again = f"sqlite:///{tmp_path / 'again.db'}"
    inbox = str(tmp_path / "demo" / "inbox.jsonl")
    assert main(["--store", again, "ingest", inbox]) == 1  # 1: it refused some, as the demo did
    with (
        LedgerStore.open(f"sqlite:///{tmp_path / 'demo' / 'ledger.db'}") as demo_store,
        LedgerStore.open(again) as replayed,
    ):
        assert replayed.last_seq() == demo_store.last_seq()
        assert list(replayed.iter_journal()) == list(demo_store.iter_journal())
