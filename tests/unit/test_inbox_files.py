"""Inbox files as people make them: a UTF-8 byte order mark from a Windows export, and a
file that is a pipe (`<(zcat inbox.jsonl.gz)`)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from ledger.inbox_lines import read_inbox_lines

DEPOSIT = (
    b'{"type":"deposit","event_id":"bom-1","occurred_at":"2026-11-02T00:00:00Z",'
    b'"account_id":"platform:insurance","asset":"USD","amount":"5000000.00"}'
)


def test_a_byte_order_mark_opening_a_file_is_not_part_of_its_first_record() -> None:
    """The first record was refused as malformed_json ('invalid character (byte 0)')."""
    lines = list(read_inbox_lines(io.BytesIO(b"\xef\xbb\xbf" + DEPOSIT + b"\n" + DEPOSIT)))
    assert [line.value for line in lines] == [DEPOSIT, DEPOSIT]
    # Only the file's first bytes: a mark inside the stream stays, and is refused.
    (_, second) = read_inbox_lines(io.BytesIO(DEPOSIT + b"\n\xef\xbb\xbf" + DEPOSIT))
    assert second.value == b"\xef\xbb\xbf" + DEPOSIT


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment,
    )  # fmt: skip


def test_ingest_of_a_file_with_a_byte_order_mark_accepts_its_first_record(tmp_path: Path) -> None:
    (tmp_path / "inbox.jsonl").write_bytes(b"\xef\xbb\xbf" + DEPOSIT + b"\n")
    done = _ledger("ingest", "inbox.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 accepted, 0 duplicates, 0 refused" in done.stderr


def test_ingest_of_a_pipe_says_to_pipe_it_into_stdin(tmp_path: Path) -> None:
    """It said 'inbox file /dev/fd/63 does not exist'."""
    os.mkfifo(tmp_path / "inbox.fifo")
    done = _ledger("ingest", "inbox.fifo", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "ledger: inbox file inbox.fifo is not a regular file (a pipe or a device): write it "
        "to a file first, or give - and pipe it in where the command reads standard input\n"
    )
