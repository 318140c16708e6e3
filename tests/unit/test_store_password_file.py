"""Store settings for deployments: `ledger store init`, and a PostgreSQL URL without a
password taking it from LEDGER_STORE_PASSWORD_FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.store_url import STORE_PASSWORD_FILE_ENV, StoreUrlError, parse_postgres_url

URL = "postgresql://ledger_writer@db.internal:5432/ledger?schema=books"


def test_the_password_comes_from_the_file_and_stays_out_of_the_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text("correct horse battery\n")
    monkeypatch.setenv(STORE_PASSWORD_FILE_ENV, str(secret))
    location = parse_postgres_url(URL)
    assert (location.user, location.password) == ("ledger_writer", "correct horse battery")
    assert "correct" not in location.describe()


def test_a_password_in_the_url_wins_and_none_means_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORE_PASSWORD_FILE_ENV, raising=False)
    assert parse_postgres_url(URL).password == ""
    monkeypatch.setenv(STORE_PASSWORD_FILE_ENV, str(tmp_path / "missing"))
    assert parse_postgres_url(URL.replace("writer@", "writer:inline@")).password == "inline"
    with pytest.raises(StoreUrlError, match=r"LEDGER_STORE_PASSWORD_FILE .* cannot be read"):
        parse_postgres_url(URL)


def test_store_init_creates_the_store_that_read_commands_then_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main  # noqa: PLC0415

    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["--store", store, "audit", "verify"]) == 2
    capsys.readouterr()
    assert main(["--store", store, "store", "init"]) == 0
    assert capsys.readouterr().out == f"store ready: {store}, journal at seq 0\n"
    assert main(["--store", store, "audit", "verify"]) == 0
