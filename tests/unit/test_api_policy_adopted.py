"""`ledger api` serving while a writer of an older version (one that keeps no policy
document in the store) adopts a second policy (tests/two_policies.py: B at seq 9).

The API meets a `policy_adopted` whose document it can find nowhere: every read past it is
answered 503 with the sentence naming the policy (never 500), the reads before it as
before; once the document is there (a writer of this version started under B keeps it in
the store, or the file is put in the API's `--policy` folder) the API values the journal
with B without a restart. Hand-computed (module docstring of test_two_policies): C1's
margin level 1.66660583 under A at seq 8, 1.42608619 under B at seq 13.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.api import create_app
from app.api_as_of import AsOfSource
from ledger.adopted_policies import adopted_policies
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from tests import two_policies
from tests.api_security import AUDITOR, TOKENS_BY_ROLE, api_security, bearer

UNDER_A = "1.66660583"
UNDER_B = "1.42608619"
WITHDRAWAL = (
    b'{"type": "withdrawal_requested", "event_id": "w9", "occurred_at": '
    b'"2026-11-03T17:00:00Z", "account_id": "C1", "asset": "USD", "amount": "1"}'
)


def _margin_level(client: TestClient[Litestar], as_of: str | None = None) -> tuple[int, str]:
    params = {} if as_of is None else {"as_of": as_of}
    answer = client.get("/accounts/C1/margin", params=params)
    body = answer.json()
    return answer.status_code, body.get("margin_level") or body.get("detail")


@contextmanager
def serve_through_an_older_writers_adoption(
    url: str,
    folder: Path,
    drop_kept_document: Callable[[], None],
    *,
    processes: bool,
    policy_folder: Path | None = None,
    reader_url: str | None = None,
) -> Iterator[TestClient[Litestar]]:
    """Day one written at `url` under A and the API serving it (from `reader_url`, by
    default `url`); then day two by a writer that adopts B and keeps no document
    (`drop_kept_document` removes the one this version keeps). Asserts the 503s, then
    gives the serving client for the caller's remedy."""
    a, b = two_policies.write_policies(folder)
    two_policies.ingest(url, a, two_policies.DAY_ONE)
    read_url = reader_url or url
    with LedgerStore.open(read_url, read_only=True) as store:
        source = AsOfSource(read_url, policy_folder) if processes else None
        policies = adopted_policies(store, files=policy_folder)
        with TestClient(create_app(store, policies, api_security(), source)) as client:
            client.headers.update(AUDITOR)
            _older_writer_adopts(client, url, b, drop_kept_document)
            yield client


def _older_writer_adopts(
    client: TestClient[Litestar], url: str, b: Path, drop_kept_document: Callable[[], None]
) -> None:
    assert _margin_level(client) == (200, UNDER_A)
    two_policies.ingest(url, b, two_policies.DAY_TWO)
    drop_kept_document()
    digest = load_policy(b).digest
    missing = f"journal seq 9 adopted policy hk-2 (sha256 {digest}), whose document is neither"
    for path, params in (
        ("/accounts/C1/margin", {}),
        ("/accounts/C1/balances", {}),
        ("/reports/margin-clients", {}),
        ("/health", {}),
        ("/accounts/C1/margin", {"as_of": "13"}),
        ("/reports/margin-clients", {"as_of": "9"}),
    ):
        answer = client.get(path, params=params)
        assert answer.status_code == 503, (path, params, answer.text)
        assert missing in answer.json()["detail"], answer.text
        assert answer.headers["Retry-After"] == "30"
    check = client.post(
        "/accounts/C1/checks", content=WITHDRAWAL, headers=bearer(TOKENS_BY_ROLE["trading"])
    )
    assert check.status_code == 503, check.text
    # Before the adoption, under A as before.
    assert _margin_level(client, "8") == (200, UNDER_A)


def _drop_sqlite_document(path: Path) -> Callable[[], None]:
    def drop() -> None:
        with sqlite3.connect(path) as database:
            database.execute("DELETE FROM stored_events WHERE topic = 'policy_document'")

    return drop


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_writer_of_this_version_keeping_the_document_ends_the_503s(
    tmp_path: Path, processes: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    drop = _drop_sqlite_document(tmp_path / "ledger.db")
    with serve_through_an_older_writers_adoption(url, tmp_path, drop, processes=processes) as c:
        with LedgerStore.open(url) as writer:  # its start keeps B's document at seq 9
            LedgerApplication(writer, load_policy(tmp_path / "b.toml"))
        assert _margin_level(c) == (200, UNDER_B)
        assert _margin_level(c, "13") == (200, UNDER_B)
        assert _margin_level(c, "8") == (200, UNDER_A)
        health = c.get("/health").json()
        assert (health["journal_seq"], health["policy_version"]) == (13, "hk-2")
        (row,) = c.get("/reports/margin-clients").json()["rows"]
        assert row["margin_level"] == UNDER_B


def test_the_file_put_in_the_policy_folder_ends_the_503s(tmp_path: Path) -> None:
    """The API given `--policy FOLDER` holding A: B's file put there is read when met."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(two_policies.DEMONSTRATION, given / "a.toml")
    drop = _drop_sqlite_document(tmp_path / "ledger.db")
    with serve_through_an_older_writers_adoption(
        url, tmp_path, drop, processes=True, policy_folder=given
    ) as client:
        shutil.copy(tmp_path / "b.toml", given / "b.toml")
        assert _margin_level(client) == (200, UNDER_B)
        assert _margin_level(client, "13") == (200, UNDER_B)
