"""Where a new SQLite store may appear: the default store's folder (`.ledger/`) is made by
the first command that writes it; the folder of a store named in `--store` or
`LEDGER_STORE` must exist, so a mistyped path is refused in one line (exit 2) rather than
becoming a new store in a new folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from projections.database import ViewDatabase, ViewsUrlError
from tests.conftest import REPOSITORY


def _ledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment, input="",
    )  # fmt: skip


WRITERS = [("ingest", "-"), ("store", "init")]


@pytest.mark.parametrize("command", WRITERS)
def test_a_writer_refuses_a_store_in_a_folder_that_does_not_exist(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    done = _ledger("--store", "sqlite:///no/such/folder/ledger.db", *command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"the folder {tmp_path}/no/such/folder does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "no").exists()


def test_a_writer_refuses_a_store_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder\n", encoding="utf-8")
    done = _ledger("--store", "sqlite:///notes.txt/ledger.db", "store", "init", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path}/notes.txt/ledger.db: a file in its path is not a folder" in done.stderr


@pytest.mark.parametrize("command", WRITERS)
def test_the_default_store_folder_is_made_by_the_first_writer(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    done = _ledger(*command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".ledger" / "ledger.db").is_file()


def test_a_reader_of_the_default_store_makes_no_folder(tmp_path: Path) -> None:
    done = _ledger("rejects", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / ".ledger").exists()


@pytest.mark.parametrize(
    "url", ["sqlite:///ledger.db ", " sqlite:///ledger.db", "sqlite:///ledger.db\n"]
)
def test_a_store_url_with_spaces_around_it_is_refused(url: str, tmp_path: Path) -> None:
    """'sqlite:///ledger.db ' made a new store file 'ledger.db ' next to 'ledger.db'."""
    done = _ledger("--store", url, "store", "init", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"ledger: --store {url!r} (or LEDGER_STORE) begins or ends with white space: remove it\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_views_in_a_folder_that_does_not_exist_are_refused_and_no_folder_is_made(
    tmp_path: Path,
) -> None:
    """The reference consumer's `--database` (views of the ledger's own code) is refused
    like a store URL: exit status 2, one line, before the broker is tried."""
    missing = tmp_path / "no" / "such"
    done = subprocess.run(
        [sys.executable, "-m", "examples.reporting_consumer", "--bootstrap", "127.0.0.1:1",
         "--database", f"sqlite:///{missing}/reporting.db"],
        capture_output=True, text=True, cwd=REPOSITORY, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"reporting: the folder {missing} does not exist: make it, or correct the path\n"
    )
    assert not (tmp_path / "no").exists()
    with pytest.raises(ViewsUrlError, match="does not exist: make it"):
        ViewDatabase.open(f"sqlite:///{missing}/views.db")
    assert not (tmp_path / "no").exists()
