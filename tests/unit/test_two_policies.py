"""A journal that adopted two policies (tests/two_policies.py): every reader values each seq
with the policy in force there, its document kept in the store (docs/views.md "Policies").

Hand-computed, C1 (1 BTC at 60,000 and 10,000 USD of loan cash; loan 10,000 plus interest):
- under A at seq 8: loan 10,002.19, equity 70,000 - 10,002.19 = 59,997.81, maintenance
  requirement 60,000 * 0.60 = 36,000, margin level 59,997.81 / 36,000 = 1.66660583;
- under B at seq 13 (100 USD withdrawn): market value 69,900, loan 10,004.38, equity
  69,900 - 10,004.38 = 59,895.62, maintenance requirement 60,000 * 0.70 = 42,000, margin
  level 59,895.62 / 42,000 = 1.42608619.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app.api import create_app
from app.api_as_of import AsOfSource
from ledger import journal_events as je
from ledger.adopted_policies import (
    AdoptedPolicies,
    PolicyDocumentAltered,
    PolicyDocumentMissing,
    adopted_policies,
)
from ledger.application import LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections import views
from projections.tables import TABLES_BY_VIEW
from tests import two_policies
from tests.api_security import AUDITOR, api_security
from tests.conftest import free_port

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "two_policies.views.csv"
EIGHT_PLACES = Decimal("1e-8")
api_start_timeout_s = 60


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-policy store `ledger.db`, its policy files a.toml and b.toml."""
    where = tmp_path_factory.mktemp("two-policies")
    two_policies.two_policy_store(f"sqlite:///{where / 'ledger.db'}", where)
    return where


def _ledger(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", *args],
        capture_output=True, text=True, cwd=folder, check=False, env=environment, timeout=120,
    )  # fmt: skip


def _margin(document: dict[str, object]) -> dict[str, str]:
    rows = document["rows"]
    assert isinstance(rows, list)
    (row,) = [r for r in rows if r["account_id"] == "C1"]
    return row  # type: ignore[no-any-return]


def _digests(folder: Path) -> tuple[str, str]:
    """The SHA-256 of policy A's file and of B's."""
    a, b = (load_policy(folder / name).digest for name in ("a.toml", "b.toml"))
    return a, b


def _level(equity: str, maintenance: str) -> str:
    return str((Decimal(equity) / Decimal(maintenance)).quantize(EIGHT_PLACES))


def test_the_store_keeps_the_document_of_each_adopted_policy(folder: Path) -> None:
    a, b = folder / "a.toml", folder / "b.toml"
    with LedgerStore.open(f"sqlite:///{folder / 'ledger.db'}", read_only=True) as store:
        assert store.adopted_policies() == [(1, a.read_bytes()), (9, b.read_bytes())]
        policies = adopted_policies(store)
    assert set(policies.by_digest) == {load_policy(a).digest, load_policy(b).digest}
    assert policies.current.version == "hk-2"


def test_report_values_each_seq_with_the_policy_in_force_there(folder: Path) -> None:
    before = _ledger(folder, "report", "margin-clients", "--format", "json", "--as-of", "8")
    after = _ledger(folder, "report", "margin-clients", "--format", "json")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    under_a, under_b = _margin(json.loads(before.stdout)), _margin(json.loads(after.stdout))
    assert (under_a["loan"], under_a["equity"]) == ("10002.19", "59997.81000000")
    assert Decimal(under_a["maintenance_requirement"]) == Decimal(60_000) * Decimal("0.60")
    assert Decimal(under_a["initial_requirement"]) == Decimal(60_000) * Decimal("0.70")
    assert under_a["margin_level"] == _level("59997.81", "36000") == "1.66660583"
    assert (under_b["loan"], under_b["equity"]) == ("10004.38", "59895.62000000")
    assert Decimal(under_b["maintenance_requirement"]) == Decimal(60_000) * Decimal("0.70")
    assert Decimal(under_b["initial_requirement"]) == Decimal(60_000) * Decimal("0.80")
    assert under_b["margin_level"] == _level("59895.62", "42000") == "1.42608619"


def test_every_view_is_the_expected_one(folder: Path, tmp_path: Path) -> None:
    """Every view at the journal's end, as `report VIEW --format csv` prints it, equals
    tests/golden/two_policies.views.csv (read by hand: margin-clients under B, the daily
    statement of 2026-11-02 with A's BTC haircut 0.70, of 2026-11-03 with B's 0.80); and
    the views as of seq 8 equal those of a store that only ever knew A."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    with LedgerStore.open(url, read_only=True) as store:
        policies = adopted_policies(store)
        with views.views_at(store, policies, two_policies.LAST_SEQ) as database:
            text = two_policies.every_view_text(database)
        with views.views_at(store, policies, two_policies.LAST_SEQ_UNDER_A) as database:
            at_eight = views.snapshot(database)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    only_a = f"sqlite:///{tmp_path / 'a.db'}"
    two_policies.ingest(only_a, folder / "a.toml", two_policies.DAY_ONE)
    with LedgerStore.open(only_a, read_only=True) as store:
        database = views.views_at(store, adopted_policies(store), store.last_seq())
    with database:
        assert views.snapshot(database) == at_eight


def test_query_at_a_seq_under_the_earlier_policy_needs_no_file(folder: Path) -> None:
    done = _ledger(folder, "query", "margin", "C1", "--as-of", "8", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["margin_level"] == "1.66660583"


def test_audit_replay_and_explain_pass(folder: Path) -> None:
    _ledger(folder, "report", "balances")  # the live views built
    replay = _ledger(folder, "audit", "replay")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replay of seq 1..13 into a scratch store: every view is identical" in replay.stdout
    # The withdrawal, decided on B's figures, recomputed with B.
    explained = _ledger(folder, "audit", "explain", "w1")
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert "maintenance_requirement: recorded 42000.0000000000 = recomputed ✓" in explained.stdout
    assert "=> seq 11: the 15 recorded figures equal the recomputed ones" in explained.stdout


def test_statements_value_each_day_with_its_policy(folder: Path) -> None:
    for date, version, haircut in (
        ("2026-11-02", "2026-11-25.1", "0.70"),
        ("2026-11-03", "hk-2", "0.80"),
    ):
        out = folder / f"statements-{date}"
        done = _ledger(folder, "statements", "daily", "--date", date, "--out", out.name)
        assert done.returncode == 0, done.stderr
        lines = (out / f"statements-{date}.csv").read_text(encoding="utf-8").splitlines()
        (collateral,) = [line for line in lines if line.startswith(f"{date},C1,collateral,BTC")]
        # Mark 60,000; haircut value 60,000 * (1 - initial haircut): 18,000 (A), 12,000 (B).
        kept = Decimal(60_000) * (1 - Decimal(haircut))
        assert collateral.split(",")[-2:] == [haircut, f"{kept:.10f}"]
        page = (out / f"statement-{date}-C1.html").read_text(encoding="utf-8")
        assert f"policy {version}." in page


def test_a_monthly_statement_names_each_policy_in_force_and_from_which_day(
    folder: Path,
) -> None:
    """November spans the change: A valued the close of 2026-11-02 (maintenance
    requirement 60,000 * 0.60 = 36,000), B, adopted at seq 9, that of 2026-11-03
    (60,000 * 0.70 = 42,000); equity 59,997.81 then 59,895.62 (module docstring)."""
    a_digest, b_digest = _digests(folder)
    with LedgerStore.open(f"sqlite:///{folder / 'ledger.db'}", read_only=True) as store:
        adopted_at = {
            e.seq: json.loads(e.record)["recorded_at"]
            for e in store.iter_journal()
            if e.type == "policy_adopted"
        }
    done = _ledger(folder, "statements", "monthly", "--month", "2026-11", "--out", "monthly")
    assert done.returncode == 0, done.stderr
    lines = (folder / "monthly" / "statements-2026-11.csv").read_text(encoding="utf-8")
    policy_lines = [line for line in lines.splitlines() if line.startswith("2026-11,C1,policy,")]
    assert policy_lines == [
        f"2026-11,C1,policy,2026-11-25.1,1,{adopted_at[1]},,"
        f'"sha256 {a_digest}, valued the day closes from 2026-11-02",,,,,,,,',
        f"2026-11,C1,policy,hk-2,9,{adopted_at[9]},,"
        f'"sha256 {b_digest}, valued the day closes from 2026-11-03",,,,,,,,',
    ]
    page = (folder / "monthly" / "statement-2026-11-C1.html").read_text(encoding="utf-8")
    assert "policies 2026-11-25.1 from 2026-11-02, hk-2 from 2026-11-03 (each day closed " in page
    daily = (
        '<tr><td>2026-11-02</td><td class="n">8</td><td class="n">59997.81000000</td>'
        '<td class="n">10002.19</td><td class="n" title="36000.0000000000">36000.00</td>'
        "<td>healthy</td>"
        "<td>2026-11-25.1</td></tr>"
        '<tr><td>2026-11-03</td><td class="n">13</td><td class="n">59895.62000000</td>'
        '<td class="n">10004.38</td><td class="n" title="42000.0000000000">42000.00</td>'
        "<td>healthy</td>"
        "<td>hk-2</td></tr>"
    )
    assert daily in page
    # A day whose first event adopts B names B alone: A valued none of its seqs.
    done = _ledger(folder, "statements", "daily", "--date", "2026-11-03", "--out", "day-two")
    assert done.returncode == 0, done.stderr
    lines = (folder / "day-two" / "statements-2026-11-03.csv").read_text(encoding="utf-8")
    assert [line.split(",")[3] for line in lines.splitlines() if ",policy," in line] == ["hk-2"]


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_the_api_answers_each_seq_under_its_policy(folder: Path, workers: str) -> None:
    """as_of reads in worker processes answer from the accounts' history kept with the
    views (or the worker's tail), a book that keeps no policy: they valued seq 8 with B
    (1.42851929) where the journal had A in force."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    assert _ledger(folder, "report", "balances").returncode == 0  # the views and history
    source = AsOfSource(url, None) if workers == "processes" else None
    with LedgerStore.open(url, read_only=True) as store:
        app = create_app(store, adopted_policies(store), api_security(), source)
        with TestClient(app) as client:
            client.headers.update(AUDITOR)
            health = client.get("/health").json()
            now = client.get("/accounts/C1/margin").json()
            then = client.get("/accounts/C1/margin", params={"as_of": "8"}).json()
            report = client.get("/reports/margin-clients", params={"as_of": "8"}).json()
    assert health["policy_version"] == "hk-2"
    assert now["margin_level"] == "1.42608619"
    assert then["margin_level"] == "1.66660583"
    assert report["rows"][0]["margin_level"] == "1.66660583"


def test_ledger_api_starts_on_a_journal_of_two_policies(folder: Path) -> None:
    """It ended its start in one line and exit status 2 (neither policy could value it)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", "api",
         "--insecure-no-auth", "--port", str(port)],
        cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        health = _wait_for_health(port, server)
    finally:
        server.terminate()
        server.communicate(timeout=api_start_timeout_s)
    assert health["journal_seq"] == two_policies.LAST_SEQ
    assert health["policy_version"] == "hk-2"


def _wait_for_health(port: int, server: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + api_start_timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(server.communicate()[1].decode())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                return json.loads(answer.read())  # type: ignore[no-any-return]
        except OSError:
            time.sleep(0.2)
    raise AssertionError("ledger api did not answer /health")


def _older_store(folder: Path, tmp_path: Path) -> Path:
    """A copy of the two-policy store as code older than the kept documents left it."""
    with (
        sqlite3.connect(folder / "ledger.db") as source,
        sqlite3.connect(tmp_path / "ledger.db") as copy,
    ):
        source.backup(copy)
        copy.execute("DELETE FROM stored_events WHERE topic = 'policy_document'")
    return tmp_path


def test_an_older_store_is_read_with_the_documents_given(folder: Path, tmp_path: Path) -> None:
    """No document kept: `--policy` names a folder of the files of both policies, and every
    view is as the store that keeps them shows it."""
    older = _older_store(folder, tmp_path)
    (older / "policies").mkdir()
    for name in ("a.toml", "b.toml"):
        (older / "policies" / name).write_bytes((folder / name).read_bytes())
    given = _ledger(older, "--policy", "policies", "report", "margin-clients", "--format", "csv")
    kept = _ledger(folder, "report", "margin-clients", "--format", "csv")
    assert given.returncode == kept.returncode == 0, given.stderr + kept.stderr
    assert given.stdout == kept.stdout
    replay = _ledger(older, "--policy", "policies", "audit", "replay")
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_a_missing_document_is_refused_naming_its_version_and_digest(
    folder: Path, tmp_path: Path
) -> None:
    older = _older_store(folder, tmp_path)
    digest = hashlib.sha256((folder / "b.toml").read_bytes()).hexdigest()
    # Given none: the demonstration policy values seq 1..8 (it is A); B's is missing.
    for command in (("report", "margin-clients"), ("statements", "daily", "--date",
                    "2026-11-03", "--out", "st"), ("query", "margin", "C1")):  # fmt: skip
        done = _ledger(older, *command)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert f"policy hk-2 (sha256 {digest}), whose document is neither kept in the store " in (
            done.stderr
        )


def _altered_store(folder: Path, tmp_path: Path) -> Path:
    """A copy of the two-policy store whose document kept at seq 9 is A's file, not B's."""
    with (
        sqlite3.connect(folder / "ledger.db") as source,
        sqlite3.connect(tmp_path / "ledger.db") as copy,
    ):
        source.backup(copy)
        copy.execute(
            "UPDATE stored_events SET state = ? WHERE topic = 'policy_document' "
            "AND originator_version = 9",
            ((folder / "a.toml").read_bytes(),),
        )
    return tmp_path


def test_a_document_altered_in_the_store_is_refused(folder: Path, tmp_path: Path) -> None:
    """A kept document whose SHA-256 is not the one its `policy_adopted` recorded."""
    _altered_store(folder, tmp_path)
    with (
        LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}", read_only=True) as store,
        pytest.raises(PolicyDocumentAltered, match="the store keeps at seq 9"),
    ):
        adopted_policies(store)
    done = _ledger(tmp_path, "report", "margin-clients")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ledger: the policy document the store keeps at seq 9 ")
    assert len(done.stderr.splitlines()) == 1


def test_audit_verify_checks_each_adopted_policys_document(folder: Path) -> None:
    """Both documents kept, each hashing to the digest its `policy_adopted` recorded."""
    a, b = _digests(folder)
    done = _ledger(folder, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        "policy documents verified: 2 policies adopted, each document hashes to the digest "
        "its policy_adopted recorded:",
        f"  seq 1 policy 2026-11-25.1 sha256 {a}: kept in the store",
        f"  seq 9 policy hk-2 sha256 {b}: kept in the store",
    ]


def test_audit_verify_fails_on_a_policy_document_altered_in_the_store(
    folder: Path, tmp_path: Path
) -> None:
    """seq 9's kept document replaced by A's file: the chain holds, the document does not."""
    _altered_store(folder, tmp_path)
    a, b = _digests(folder)
    done = _ledger(tmp_path, "audit", "verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("journal verified: 13 records, seq 1..13")
    assert done.stdout.splitlines()[1:] == [
        "policy documents NOT verified: 1 of 2 policies adopted fails:",
        f"  seq 1 policy 2026-11-25.1 sha256 {a}: kept in the store",
        f"  seq 9 policy hk-2 sha256 {b}: policy_document_altered: the store keeps a document "
        f"whose sha256 is {a}: it was altered outside the ledger",
    ]


def test_audit_verify_of_an_older_store_needs_the_files_given(folder: Path, tmp_path: Path) -> None:
    """No document kept: each missing one fails, until `--policy` gives the files."""
    older = _older_store(folder, tmp_path)
    a, b = _digests(folder)
    done = _ledger(older, "audit", "verify")
    assert done.returncode == 1, done.stdout + done.stderr
    missing = ": policy_document_missing: neither kept in the store nor given with --policy"
    assert done.stdout.splitlines()[1:] == [
        "policy documents NOT verified: 2 of 2 policies adopted fail:",
        f"  seq 1 policy 2026-11-25.1 sha256 {a}{missing}",
        f"  seq 9 policy hk-2 sha256 {b}{missing}",
    ]
    (older / "policies").mkdir()
    for name in ("a.toml", "b.toml"):
        (older / "policies" / name).write_bytes((folder / name).read_bytes())
    done = _ledger(older, "--policy", "policies", "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[2:] == [
        f"  seq 1 policy 2026-11-25.1 sha256 {a}: given with --policy",
        f"  seq 9 policy hk-2 sha256 {b}: given with --policy",
    ]


def test_audit_verify_of_an_export_names_the_policies_it_could_not_check(
    folder: Path,
) -> None:
    """An exported journal carries no document: checked only against files given."""
    exported = _ledger(folder, "journal", "export", "--out", "journal.jsonl")
    assert exported.returncode == 0, exported.stderr
    a, b = _digests(folder)
    done = _ledger(folder, "audit", "verify", "--file", "journal.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        "policy documents not checked: an exported journal carries none (give the files with "
        "--policy to check them): 2 policies adopted:",
        f"  seq 1 policy 2026-11-25.1 sha256 {a}",
        f"  seq 9 policy hk-2 sha256 {b}",
    ]
    done = _ledger(folder, "--policy", "a.toml", "audit", "verify", "--file", "journal.jsonl")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        "policy documents NOT verified: 1 of 2 policies adopted fails:",
        f"  seq 1 policy 2026-11-25.1 sha256 {a}: given with --policy",
        f"  seq 9 policy hk-2 sha256 {b}: policy_document_missing: not given with --policy",
    ]


def test_a_policy_adopted_after_the_reader_started_is_read_from_the_store(
    tmp_path: Path,
) -> None:
    """The API runs on while the writer restarts with a new policy: its views pick the new
    document up from the store when they meet its `policy_adopted`."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    a, b = two_policies.write_policies(tmp_path)
    two_policies.ingest(url, a, two_policies.DAY_ONE)
    margin_clients = TABLES_BY_VIEW["margin-clients"]
    with LedgerStore.open(url, read_only=True) as reader:
        policies = adopted_policies(reader)
        assert policies.current.version == "2026-11-25.1"
        two_policies.ingest(url, b, two_policies.DAY_TWO)
        with views.views_at(reader, policies, two_policies.LAST_SEQ) as database:
            (row,) = views.document(database, margin_clients)["rows"]
    assert row["margin_level"] == "1.42608619"
    assert load_policy(b).digest in policies.by_digest


def test_a_policy_the_reader_lacks_is_refused_where_the_journal_adopts_it() -> None:
    """Without a store to look in, the refusal names the seq, version and digest."""
    policies = AdoptedPolicies.of(load_policy(None))
    adopted = je.PolicyAdopted(
        seq=9, recorded_at="2026-11-03T16:00:00Z", causation_id="m3", version="hk-2",
        digest="ab" * 32, prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip
    with pytest.raises(
        PolicyDocumentMissing, match=f"journal seq 9 adopted policy hk-2 \\(sha256 {'ab' * 32}\\)"
    ):
        policies.adopted(adopted)


def test_a_writer_upgraded_under_the_journals_policy_keeps_its_document(
    folder: Path, tmp_path: Path
) -> None:
    """A store of older code keeps no document, and a writer of this code started under the
    journal's policy adopts nothing new: its start keeps that policy's document at the seq
    that adopted it, so readers need only the earlier policies' files."""
    older = _older_store(folder, tmp_path)
    url = f"sqlite:///{older / 'ledger.db'}"
    with LedgerStore.open(url) as store:
        LedgerApplication(store, load_policy(folder / "a.toml"))  # not the journal's: B is
        assert store.adopted_policies() == []
        LedgerApplication(store, load_policy(folder / "b.toml"))
        assert store.adopted_policies() == [(9, (folder / "b.toml").read_bytes())]
        assert store.last_seq() == two_policies.LAST_SEQ  # nothing journalled
    given = _ledger(older, "--policy", str(folder / "a.toml"), "report", "margin-clients")
    kept = _ledger(folder, "report", "margin-clients")
    assert given.returncode == kept.returncode == 0, given.stderr + kept.stderr
    assert given.stdout == kept.stdout
