"""`ledger ingest FILE` books each line once: a second run, or a run after `kill -9`,
continues where the store stands and refuses nothing twice."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app import commands
from app.cli import main
from app.simulation import simulate
from ledger.application import LedgerApplication
from ledger.limits import inbox_batch_records_max
from ledger.store import LedgerStore, NotALedgerStore


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def _journal_and_rejects(url: str) -> tuple[list[bytes], list[bytes]]:
    with LedgerStore.open(url) as store:
        return [e.record for e in store.iter_journal()], list(store.read_rejects())


def _record(number: int) -> bytes:
    return (
        f'{{"event_id":"open-{number}","type":"account_opened",'
        f'"occurred_at":"2026-11-24T00:00:00Z","account_id":"C{number}",'
        '"investor_class":"professional","credit_limit":"1000"}\n'
    ).encode()


def _inbox(path: Path, accounts: int, days: int) -> Path:
    path.write_bytes(b"".join(record + b"\n" for record in simulate(3, accounts, days)))
    return path


def test_a_second_ingest_of_the_same_file_books_and_refuses_nothing(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path / "inbox.jsonl", accounts=5, days=1)
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = _ledger("--store", store, "ingest", str(inbox), cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # the simulator's malformed lines are refused
    before = _journal_and_rejects(store)
    assert before[0]
    assert before[1]
    again = _ledger("--store", store, "ingest", str(inbox), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 accepted, 0 duplicates, 0 refused" in again.stderr
    assert "ingested before" in again.stderr
    assert _journal_and_rejects(store) == before


@pytest.mark.slow
def test_an_ingest_killed_mid_file_resumes_to_the_uninterrupted_journal(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path / "inbox.jsonl", accounts=40, days=2)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    _ledger("--store", whole, "ingest", str(inbox), cwd=tmp_path)
    killed = f"sqlite:///{tmp_path / 'killed.db'}"
    child = subprocess.Popen(
        [sys.executable, "-m", "app", "--store", killed, "ingest", str(inbox)],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    seen = 0
    while seen == 0 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)  # polling a child process's progress: no event to wait on
        if (tmp_path / "killed.db").exists():
            try:
                with LedgerStore.open(killed) as store:
                    seen = store.last_seq()
            except NotALedgerStore:
                continue  # the child has made the file but not yet its tables
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert seen > 0, "the kill must land after a batch was committed"
    partial = _journal_and_rejects(killed)[0]
    assert len(partial) < len(_journal_and_rejects(whole)[0]), "the kill must land mid-file"
    _ledger("--store", killed, "ingest", str(inbox), cwd=tmp_path)
    assert _journal_and_rejects(killed) == _journal_and_rejects(whole)


@pytest.mark.parametrize("same_file", [True, False], ids=["same_file", "other_input"])
def test_a_second_writer_meanwhile_is_one_line_and_books_nothing_of_the_batch(
    same_file: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two `ledger ingest` on one store at once: the one that finds the store written after
    its replay stops with one line (exit 1), and the store holds the other's work alone."""
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_bytes(b"".join(_record(n) for n in range(1, 6)))
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(_record(n) for n in range(11, 14)))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    LedgerStore.open(url).close()
    left_by_other: list[tuple[list[bytes], list[bytes]]] = []

    class SecondWriterFirst(LedgerApplication):
        def process(self, *args: Any, **kwargs: Any) -> Any:
            # The other ingest commits after this one replayed, before its first batch.
            monkeypatch.setattr(commands, "LedgerApplication", LedgerApplication)
            assert main(["--store", url, "ingest", str(inbox if same_file else other)]) == 0
            left_by_other.append(_journal_and_rejects(url))
            return super().process(*args, **kwargs)

    monkeypatch.setattr(commands, "LedgerApplication", SecondWriterFirst)
    capsys.readouterr()
    assert main(["--store", url, "ingest", str(inbox)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ledger: another process wrote this store meanwhile"), err
    assert "Traceback" not in "\n".join(err)
    assert left_by_other[0][0]
    assert _journal_and_rejects(url) == left_by_other[0]  # the other writer's work alone


@pytest.mark.parametrize("from_stdin", [False, True], ids=["file", "stdin"])
def test_an_interrupted_ingest_says_where_it_stopped_and_a_rerun_resumes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    from_stdin: bool,
) -> None:
    """Ctrl-C during the third batch: exit status 130 and one line naming the last line
    recorded (two batches' worth); the rerun books the rest, as one uninterrupted run."""
    inbox = _inbox(tmp_path / "inbox.jsonl", accounts=40, days=1)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert main(["--store", whole, "ingest", str(inbox)]) in (0, 1)
    interrupted = f"sqlite:///{tmp_path / 'interrupted.db'}"
    process = LedgerApplication.process
    batches = 0

    def interrupted_at_the_third_batch(app: LedgerApplication, *args: Any) -> Any:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise KeyboardInterrupt
        return process(app, *args)

    monkeypatch.setattr(LedgerApplication, "process", interrupted_at_the_third_batch)
    source = "-" if from_stdin else str(inbox)
    if from_stdin:
        monkeypatch.setattr(commands, "standard_input", lambda: io.BytesIO(inbox.read_bytes()))
    capsys.readouterr()
    assert main(["--store", interrupted, "ingest", source]) == 130
    error = capsys.readouterr().err
    with LedgerStore.open(interrupted) as store:
        seq = store.last_seq()
        recorded = store.max_tracking_id(commands.file_tracking_name(inbox))
    if from_stdin:
        assert error == (
            f"ledger: interrupted with the journal at seq {seq}: the batches decided are "
            "recorded; a rerun with the same records acknowledges those as duplicates\n"
        )
    else:
        assert recorded == 2 * inbox_batch_records_max
        assert error == (
            f"ledger: interrupted after line {recorded} of {inbox}: run the same command "
            "again to resume from there\n"
        )
    monkeypatch.setattr(LedgerApplication, "process", process)
    main(["--store", interrupted, "ingest", source])
    if not from_stdin:  # stdin's rerun adds rejects for its refused lines, books nothing twice
        assert _journal_and_rejects(interrupted) == _journal_and_rejects(whole)
    assert _journal_and_rejects(interrupted)[0] == _journal_and_rejects(whole)[0]
