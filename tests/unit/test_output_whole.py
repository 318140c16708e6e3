"""A command's output file is written whole or not at all.

Written straight into its file and cut short (a full disk; here the process's file-size
limit, or a write that fails), an export or report was left shorter over the good file it
replaced, reading as a whole one (an exported journal that verifies and ends early), and
the one line said "cannot use: No space left on device" without naming the file."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from app.output_files import folder_written_whole, written_whole

# The limit the cut export runs under: above the 32 KiB the SQLite reader's shared-memory
# file takes, far below the export of the fixture's journal (about 5 MB).
_FILE_BYTES_MAX = 65536


def _ledger(
    *args: str, cwd: Path, file_bytes_max: int | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_STORE"}

    def limited() -> None:
        if file_bytes_max is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes_max, file_bytes_max))

    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment, input=stdin,
        preexec_fn=limited,
    )  # fmt: skip


def _listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_journal_export_cut_short_leaves_the_file_it_was_to_replace(tmp_path: Path) -> None:
    stream = _ledger("simulate", "--accounts", "8", "--days", "2", cwd=tmp_path).stdout
    assert _ledger("ingest", "-", cwd=tmp_path, stdin=stream).returncode in (0, 1)
    whole = _ledger("journal", "export", "--out", "journal.jsonl", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    exported = (tmp_path / "journal.jsonl").read_bytes()
    assert len(exported) > _FILE_BYTES_MAX
    (tmp_path / "journal.jsonl").write_bytes(b"the previous export\n")
    listing = _listing(tmp_path)

    cut = _ledger(
        "journal", "export", "--out", "journal.jsonl", cwd=tmp_path, file_bytes_max=_FILE_BYTES_MAX
    )

    assert cut.returncode == 1
    assert cut.stderr == "ledger: cannot use journal.jsonl: File too large\n"
    assert (tmp_path / "journal.jsonl").read_bytes() == b"the previous export\n"
    assert _listing(tmp_path) == listing  # no partial file left beside it
    again = _ledger("journal", "export", "--out", "journal.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "journal.jsonl").read_bytes() == exported


def test_an_output_on_stdout_the_disk_takes_only_in_part_is_an_error(tmp_path: Path) -> None:
    """One write larger than Python's stdout buffer, taken by the disk only in part, passed
    as written whole: `ledger schema journal > file` with 8 KiB left exited 0, the document
    cut at 8 KiB."""
    with (tmp_path / "schema.json").open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "app", "schema", "journal"],
            stdout=out, stderr=subprocess.PIPE, text=True, cwd=tmp_path, check=False,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192)),
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "ledger: cannot use stdout: File too large\n"


def _cut_short(target: Path, content: str) -> None:
    """Write half of `content` into `target` whole, then fail as a full disk does."""
    with written_whole(target) as partial:
        partial.write_text(content[: len(content) // 2], encoding="utf-8")
        assert not target.exists() or target.read_text(encoding="utf-8") != content
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _interrupted(target: Path) -> None:
    with written_whole(target) as partial:
        partial.write_bytes(b"{}")
        raise KeyboardInterrupt


def _statements_cut_short(folder: Path) -> None:
    with folder_written_whole(folder) as partial:
        (partial / "statement-C1.html").write_text("<p>C1</p>", encoding="utf-8")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _reads_a_missing_file_while_writing(missing: Path, target: Path) -> None:
    with written_whole(target):
        missing.read_bytes()


def test_a_file_written_whole_appears_only_when_complete(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("the previous report\n", encoding="utf-8")
    with pytest.raises(OSError, match="No space left on device") as failed:
        _cut_short(report, "the new report\n")
    assert failed.value.filename == str(report)
    assert report.read_text(encoding="utf-8") == "the previous report\n"
    assert _listing(tmp_path) == ["report.txt"]
    with written_whole(report) as partial:
        partial.write_text("the new report\n", encoding="utf-8")
    assert report.read_text(encoding="utf-8") == "the new report\n"
    assert _listing(tmp_path) == ["report.txt"]


def test_an_interrupted_file_leaves_nothing_beside_it(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _interrupted(tmp_path / "export.jsonl")
    assert _listing(tmp_path) == []


def test_a_folder_written_whole_gets_its_files_only_when_all_are_complete(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(OSError, match="No space left on device") as failed:
        _statements_cut_short(tmp_path)
    assert failed.value.filename == str(tmp_path)
    assert _listing(tmp_path) == ["notes.txt"]
    with folder_written_whole(tmp_path) as partial:
        (partial / "statement-C1.html").write_text("<p>C1</p>", encoding="utf-8")
        (partial / "statements.csv").write_text("account_id\nC1\n", encoding="utf-8")
    assert _listing(tmp_path) == ["notes.txt", "statement-C1.html", "statements.csv"]


def test_an_error_of_something_else_than_the_output_passes_as_it_was(tmp_path: Path) -> None:
    missing = tmp_path / "inbox.jsonl"
    with pytest.raises(FileNotFoundError) as failed:
        _reads_a_missing_file_while_writing(missing, tmp_path / "out.txt")
    assert failed.value.filename == str(missing)
    assert _listing(tmp_path) == []
