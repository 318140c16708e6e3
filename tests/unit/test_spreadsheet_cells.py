"""CSV is for spreadsheets: an identifier from the inbox that a spreadsheet would run as a
formula (`=HYPERLINK(...)` as an account id, `+x` as an event id) is written with a leading
apostrophe in every CSV the ledger writes; numbers, negative ones included, are not."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.identifiers import spreadsheet_cell

HOSTILE_ACCOUNT = '=HYPERLINK("http://example.invalid")'
INBOX = (
    '{"type":"account_opened","event_id":"@open","occurred_at":"2026-11-02T00:00:00Z",'
    '"account_id":"=HYPERLINK(\\"http://example.invalid\\")","investor_class":"professional",'
    '"credit_limit":"1000"}\n'
    '{"type":"deposit","event_id":"dep-1","occurred_at":"2026-11-02T00:00:01Z",'
    '"account_id":"=HYPERLINK(\\"http://example.invalid\\")","asset":"USD","amount":"5"}\n'
    '{"type":"deposit","event_id":"+x","occurred_at":"2026-11-02T00:00:01Z",'
    '"account_id":"-nobody","asset":"USD","amount":"5"}\n'
)


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+x", "'+x"),
        ("-nobody", "'-nobody"),
        ("@sum", "'@sum"),
        ("-5.00", "-5.00"),
        ("+1e3", "+1e3"),
        ("C000001", "C000001"),
        ("=\x1b[2J", "'=\\x1b[2J"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_an_apostrophe(text: str, cell: str) -> None:
    assert spreadsheet_cell(text) == cell


def _ledger(*args: str, cwd: Path) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def test_every_csv_neutralises_a_hostile_identifier(tmp_path: Path) -> None:
    (tmp_path / "inbox.jsonl").write_text(INBOX, encoding="utf-8")
    _ledger("ingest", "inbox.jsonl", cwd=tmp_path)
    balances = list(csv.DictReader(io.StringIO(_ledger("report", "balances", "--format", "csv",
                                                       cwd=tmp_path))))  # fmt: skip
    assert {row["account_id"] for row in balances} == {"'" + HOSTILE_ACCOUNT, "external:custody"}
    assert {row["balance"] for row in balances} == {"5.00", "-5.00"}
    query = _ledger("query", "balances", HOSTILE_ACCOUNT, "--format", "csv", cwd=tmp_path)
    assert all(not line.startswith("=") for line in query.splitlines())
    (reject,) = csv.DictReader(io.StringIO(_ledger("rejects", "--format", "csv", cwd=tmp_path)))
    assert (reject["event_id"], reject["reason_code"]) == ("'+x", "unknown_account")
