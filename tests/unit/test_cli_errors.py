"""A user's mistake or an unreachable store is one line on stderr and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (("ingest", "missing.jsonl"), 2, "inbox file missing.jsonl does not exist"),
        (("query", "margin", "NOBODY"), 2, "account NOBODY is not in the ledger"),
        (("--policy", "missing.toml", "ingest", "-"), 2, "policy file missing.toml does not exist"),
        (("query", "margin", "C1", "--as-of", "yesterday"), 2, "neither a journal seq"),
        (
            ("--store", "postgresql://u:secret@127.0.0.1:1/db", "query", "margin", "C1"),
            1,
            "postgresql://u:***@127.0.0.1:1/db cannot be reached",
        ),
    ],
)
def test_errors_are_one_line(args: tuple[str, ...], status: int, says: str, tmp_path: Path) -> None:
    done = _ledger(*args, cwd=tmp_path)
    assert done.returncode == status, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
