"""What `ledger audit verify` tells an auditor about a journal whose end was tampered with:
the chain alone cannot show it, and "verified" must not read as if it could."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from tests.ledger_scenario import Scenario


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _export(tmp_path: Path) -> tuple[str, list[bytes]]:
    """A small journal exported: 1 BTC deposited and marked, a loan drawn on it."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s = Scenario(url)
    s.mark("BTC", "60000")
    s.open("C1")
    s.deposit("C1", "BTC", "1")
    s.send("loan_draw_requested", account_id="C1", amount="1000")
    export = tmp_path / "journal.jsonl"
    assert main(["--store", url, "journal", "export", "--out", str(export)]) == 0
    return str(export), export.read_bytes().splitlines()


def _rechained(records: list[dict[str, object]]) -> bytes:
    """The records renumbered from 1 and their chain recomputed, as a forger would."""
    lines, previous = [], "0" * 64
    for seq, record in enumerate(records, start=1):
        body = {k: v for k, v in record.items() if k != "hash"} | {
            "seq": seq,
            "prev_hash": previous,
        }
        previous = hashlib.sha256((previous + _dumps(body)).encode()).hexdigest()
        lines.append(_dumps(body | {"hash": previous}).encode())
    return b"\n".join(lines) + b"\n"


def test_verify_without_an_anchor_says_the_end_is_not_anchored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export, lines = _export(tmp_path)
    last = json.loads(lines[-1])
    assert main(["audit", "verify", "--file", export]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"journal verified: {len(lines)} records, seq 1..{len(lines)}, ")
    assert "; its end is not anchored (a journal cut short, or rewritten from some seq on" in out
    anchor = f"{last['seq']}:{last['hash']}"
    assert main(["audit", "verify", "--file", export, "--expect", anchor]) == 0
    out = capsys.readouterr().out
    assert ", 1 anchor holds" in out
    assert "not anchored" not in out


def test_a_record_dropped_from_within_and_the_rest_rechained_is_named_for_what_it_may_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deposit dropped, the records after it renumbered and rehashed: the chain
    verifies; the auditor's anchor of the last record catches it, and the sentence names
    both ways the records may have been dropped."""
    export, lines = _export(tmp_path)
    last = json.loads(lines[-1])
    records = [json.loads(line) for line in lines]
    kept = [r for r in records if r["type"] != "deposit_credited"]
    assert len(kept) == len(records) - 1
    Path(export).write_bytes(_rechained(kept))
    assert main(["audit", "verify", "--file", export]) == 0
    assert "its end is not anchored" in capsys.readouterr().out
    anchor = f"{last['seq']}:{last['hash']}"
    assert main(["audit", "verify", "--file", export, "--expect", anchor]) == 1
    assert (
        f"journal NOT anchored: --expect {last['seq']} vouches for seq {last['seq']}, but the "
        f"journal ends at seq {last['seq'] - 1}: records were dropped from its end, or from "
        "within with the records after them renumbered and rehashed"
    ) in capsys.readouterr().out


def test_verify_names_a_record_rewritten_in_the_store_with_sqls_own_functions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deposit's amount changed in the SQLite store with SQL's `replace` (which leaves the
    row as text, not bytes): `audit verify` ended in a TypeError traceback."""
    path = tmp_path / "ledger.db"
    _, lines = _export(tmp_path)
    (deposit,) = [json.loads(line) for line in lines if b'"deposit_credited"' in line]
    with sqlite3.connect(path) as connection:
        changed = connection.execute(
            "UPDATE stored_events SET state = replace(state, ?, ?) "
            "WHERE originator_version = ? AND topic != 'policy_document'",
            (b'"amount":"1.00000000"', b'"amount":"2.00000000"', deposit["seq"]),
        ).rowcount
    assert changed == 1
    assert main(["--store", f"sqlite:///{path}", "audit", "verify"]) == 1
    assert capsys.readouterr().out.startswith(
        f"journal broken at seq {deposit['seq']}: hash does not recompute "
        f"({deposit['seq'] - 1} records before it verify)"
    )
