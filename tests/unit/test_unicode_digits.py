"""A number a person types (a seq, a port, an offset) is ASCII digits: `str.isdigit` also
takes a superscript two, which `int` refuses (a traceback, or a 500 from the API), and
Arabic-Indic digits, which `int` reads as another script's number."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.identifiers import is_ascii_number


def test_only_ascii_digits_are_a_number() -> None:
    assert is_ascii_number("0")
    assert is_ascii_number("69765")
    assert is_ascii_number("9" * 18)
    assert not is_ascii_number("9" * 19)  # past any seq; 5,000 digits were a traceback
    for text in ("", "\u00b2", "\u0661\u0660\u0660\u0660", "\uff11", "1.0", "-1", " 1", "1e3"):
        assert not is_ascii_number(text), text


@pytest.fixture(scope="module")
def store_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    assert _ledger("store", "init", cwd=folder).returncode == 0
    return folder


def _ledger(
    *args: str, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=base | (environment or {}),
        input="",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "environment", "says"),
    [
        (("query", "margin", "C1", "--as-of", "²"), {}, "is neither a journal seq nor a"),
        (("audit", "explain", "²"), {}, "no journal event has seq, causation id"),
        (("audit", "verify", "--expect", "²:" + "0" * 64), {}, "write SEQ:HASH"),
        (("inbox", "skip", "ledger.inbox:0:²", "--reason", "x"), {}, "is not a position"),
        (("ingest", "-"), {"LEDGER_SNAPSHOT_EVENTS": "²"}, "is not a positive number"),
        (("run", "--health-port", "²"), {}, "is not a port"),
        (("query", "margin", "C1", "--as-of", "9" * 5000), {}, "is neither a journal seq"),
        (("audit", "explain", "9" * 5000), {}, "no journal event has seq"),
        (("ingest", "-"), {"LEDGER_SNAPSHOT_EVENTS": "9" * 5000}, "is not a positive number"),
    ],
)
def test_a_unicode_digit_is_one_line_not_a_traceback(
    args: tuple[str, ...], environment: dict[str, str], says: str, store_folder: Path
) -> None:
    done = _ledger(*args, cwd=store_folder, environment=environment)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
