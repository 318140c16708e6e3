"""A file a command is asked to write into a folder that does not exist is refused before
the command does its work, in one line naming the folder, with exit status 1 (README "Exit
status": a file cannot be written)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store")
    assert _ledger("store", "init", cwd=folder).returncode == 0
    return folder


@pytest.mark.parametrize(
    "command",
    [
        # Statements made the whole chain of folders of a mistyped path.
        ("statements", "daily", "--date", "2026-11-02", "--out", "no/such/statements"),
        ("stress", "--ladder", "BTC=-5%..-10%", "--html", "no/such/ladder.html"),
        ("report", "balances", "--format", "parquet", "--out", "no/such/balances.parquet"),
        ("report", "balances", "--out", "no/such/balances.txt"),
    ],
)
def test_an_output_file_in_a_missing_folder_is_one_line_before_the_work(
    command: tuple[str, ...], store_folder: Path
) -> None:
    done = _ledger(*command, cwd=store_folder)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"ledger: {command[-2]} {command[-1]}: the folder no/such does not exist"
    )
    assert done.stdout == ""


def test_statements_into_a_file_are_refused_before_the_work(store_folder: Path) -> None:
    """It replayed the journal, then said 'cannot use FILE: File exists' (exit 1)."""
    (store_folder / "notes.txt").write_text("mine\n", encoding="utf-8")
    command = ("statements", "daily", "--date", "2026-11-02", "--out", "notes.txt")
    done = _ledger(*command, cwd=store_folder)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "ledger: --out notes.txt is a file, not a folder: name a folder for the statements\n"
    )
    assert (store_folder / "notes.txt").read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize(
    "command",
    [
        ("journal", "export", "--out", "ledger.db"),
        ("report", "balances", "--out", "ledger.db"),
        ("stress", "--shock", "BTC=-5%", "--html", "ledger.db"),
        ("api", "--insecure-no-auth", "--access-log", "ledger.db"),
    ],
)
def test_an_output_file_is_never_the_store(command: tuple[str, ...], store_folder: Path) -> None:
    """`ledger journal export --out ledger.db` emptied the store it was to export."""
    held = (store_folder / "ledger.db").read_bytes()
    done = _ledger(*command, cwd=store_folder)
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr
        == f"ledger: {command[-2]} ledger.db is a file of the store: name another file\n"
    )
    assert (store_folder / "ledger.db").read_bytes() == held


def test_two_clients_never_share_a_statement_file(tmp_path: Path) -> None:
    """`C 1` and `C_1` both became statement-...-C_1.html: one client's statement replaced
    the other's, and the summary still said 2 statements."""
    opened = [
        f'{{"type":"account_opened","event_id":"o{n}","occurred_at":"2026-11-02T00:00:00Z",'
        f'"account_id":"{account}","investor_class":"professional","credit_limit":"1000"}}'
        for n, account in enumerate(("C 1", "C_1", "c_1"))
    ]
    closed = (
        '{"type":"day_closed","event_id":"close","occurred_at":"2026-11-02T23:59:59Z",'
        '"business_date":"2026-11-02"}'
    )
    (tmp_path / "inbox.jsonl").write_text("\n".join([*opened, closed]) + "\n", encoding="utf-8")
    assert _ledger("ingest", "inbox.jsonl", cwd=tmp_path).returncode == 0
    command = ("statements", "daily", "--date", "2026-11-02", "--out", "out")
    assert _ledger(*command, cwd=tmp_path).returncode == 0
    pages = sorted(p.name for p in (tmp_path / "out").glob("*.html"))
    assert (
        pages
        == [
            "statement-2026-11-02-C_1.html",
            "statement-2026-11-02-C_1~c33d61505b2f.html",  # C 1: SHA-256 c33d6150...
            "statement-2026-11-02-c_1~" + hashlib.sha256(b"c_1").hexdigest()[:12] + ".html",
        ]
    )
    held = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").glob("*.html")}
    assert "Account C 1 " in held["statement-2026-11-02-C_1~c33d61505b2f.html"]


@pytest.mark.parametrize("store", ["sqlite:///", "sqlite:///."])
def test_a_store_url_without_a_file_name_is_still_one_line(store: str, tmp_path: Path) -> None:
    """The check of --out against the store's files was itself a traceback (ValueError:
    PosixPath('.') has an empty name)."""
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_STORE"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "--store", store, "journal", "export", "--out", "x.txt"],
        capture_output=True, text=True, cwd=tmp_path, check=False, env=environment,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_an_access_log_that_cannot_be_written_is_one_sentence(store_folder: Path) -> None:
    """A folder given as --access-log said "ledger: [Errno 21] Is a directory: 'logs'"."""
    (store_folder / "logs").mkdir(exist_ok=True)
    done = _ledger("api", "--insecure-no-auth", "--access-log", "logs", cwd=store_folder)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "ledger: --access-log logs cannot be written: Is a directory\n"


def test_an_output_to_a_pipe_is_written_into_it_never_renamed_over_it(
    store_folder: Path, tmp_path: Path
) -> None:
    """`--out` naming a device or a pipe writes into it: a file renamed over it replaced it
    (run as root, `ledger report VIEW --out /dev/null`, docs/operations.md's upgrade step,
    made the machine's /dev/null a regular file). A FIFO stands for the device here."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # the view fits the pipe's buffer
    try:
        done = _ledger(
            "report", "margin-calls", "--format", "csv", "--out", str(pipe), cwd=store_folder
        )
        assert done.returncode == 0, done.stderr
        assert stat.S_ISFIFO(pipe.stat().st_mode)
        assert os.read(reader, 65536).decode().startswith("call_id,account_id,issued_seq,")
    finally:
        os.close(reader)
