"""A user's mistake or an unreachable store is one line on stderr and a non-zero exit."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
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
        (("check", "C1", "missing.json"), 2, "record file missing.json does not exist"),
        (("check", "C1", "."), 2, "record file . is a folder, not a file"),
        (("ingest", "."), 2, "inbox file . is a folder, not a file"),
        (("query", "margin", "NOBODY"), 2, ".ledger/ledger.db does not exist"),
        (("--policy", "missing.toml", "ingest", "-"), 2, "policy file missing.toml does not exist"),
        (("query", "margin", "C1", "--as-of", "yesterday"), 2, ".ledger/ledger.db does not exist"),
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


# -- stores that are not there, not ledgers, or not writable ----------------------------


def _one_line(done: subprocess.CompletedProcess[str], status: int, says: str) -> None:
    assert done.returncode == status, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture(scope="module")
def ledger_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ledger store file (and its inbox), built once for the tests that read it."""
    folder = tmp_path_factory.mktemp("store")
    inbox = folder / "inbox.jsonl"
    inbox.write_bytes(
        _ledger("simulate", "--accounts", "3", "--days", "1", cwd=folder).stdout.encode()
    )
    _ledger("--store", "sqlite:///ledger.db", "ingest", "inbox.jsonl", cwd=folder)
    return folder / "ledger.db"


READ_COMMANDS = [
    ("query", "margin", "C1"),
    ("rejects",),
    ("journal", "export"),
    ("report", "balances"),
    ("audit", "verify"),
    ("audit", "replay"),
    ("api", "--insecure-no-auth"),
]


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_refuses_a_store_that_does_not_exist(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    done = _ledger("--store", "sqlite:///nope/ledger.db", *command, cwd=tmp_path)
    _one_line(done, 2, "nope/ledger.db does not exist")
    assert not (tmp_path / "nope").exists()  # nothing was created


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is an empty file, not a ledger store"),
        (b"name,balance\nC1,10\n", "is not a SQLite file"),
    ],
)
@pytest.mark.parametrize("command", [("query", "margin", "C1"), ("ingest", "-")])
def test_an_empty_or_foreign_file_is_never_a_new_store(
    content: bytes, says: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / "ledger.db").write_bytes(content)
    _one_line(_ledger("--store", "sqlite:///ledger.db", *command, cwd=tmp_path), 2, says)
    assert (tmp_path / "ledger.db").read_bytes() == content


def test_a_truncated_store_file_is_one_line(ledger_store: Path, tmp_path: Path) -> None:
    (tmp_path / "cut.db").write_bytes(ledger_store.read_bytes()[:5_000])
    done = _ledger("--store", "sqlite:///cut.db", "journal", "export", cwd=tmp_path)
    _one_line(done, 2, "is not a readable SQLite file")


def test_a_store_older_code_wrote_is_refused_to_readers_until_its_writer_opens_it(
    ledger_store: Path, tmp_path: Path
) -> None:
    """An upgrade: the store has no trades table yet (code before it existed)."""
    (tmp_path / "old.db").write_bytes(ledger_store.read_bytes())
    with sqlite3.connect(tmp_path / "old.db") as connection:
        connection.execute("DROP TABLE ledger_trades")
    done = _ledger("--store", "sqlite:///old.db", "audit", "verify", cwd=tmp_path)
    _one_line(done, 2, "written by older code (it has no ledger_trades table)")
    assert _ledger("--store", "sqlite:///old.db", "store", "init", cwd=tmp_path).returncode == 0
    done = _ledger("--store", "sqlite:///old.db", "audit", "verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_copy_of_the_store_in_rollback_mode_says_how_to_read_it(
    ledger_store: Path, tmp_path: Path
) -> None:
    """A copy made with VACUUM INTO was 'not a readable SQLite file: attempt to write a
    readonly database' to every read command; the backup API's copy (sqlite3's .backup, as
    docs/cli.md says) reads as the store does."""
    source = sqlite3.connect(f"file:{ledger_store}?mode=ro", uri=True)
    source.execute(f"VACUUM INTO '{tmp_path / 'vacuumed.db'}'")
    backed_up = sqlite3.connect(tmp_path / "backed-up.db")
    source.backup(backed_up)
    backed_up.close()
    source.close()
    refused = _ledger("--store", "sqlite:///vacuumed.db", "audit", "verify", cwd=tmp_path)
    _one_line(refused, 2, "is in SQLite's delete journal mode, not WAL")
    assert "PRAGMA journal_mode=WAL" in refused.stderr
    switched = sqlite3.connect(tmp_path / "vacuumed.db")
    switched.execute("PRAGMA journal_mode=WAL")
    switched.close()
    for copy in ("vacuumed.db", "backed-up.db"):
        done = _ledger("--store", f"sqlite:///{copy}", "audit", "verify", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("journal verified: "), done.stdout


def test_a_sqlite_file_of_another_program_is_not_a_ledger(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    done = _ledger("--store", "sqlite:///other.db", "rejects", cwd=tmp_path)
    _one_line(done, 2, "holds no ledger")


def test_a_writer_never_adds_the_ledger_to_a_sqlite_file_of_another_program(
    tmp_path: Path,
) -> None:
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    before = (tmp_path / "other.db").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///other.db", "ingest", "-"],
        capture_output=True, text=True, cwd=tmp_path, check=False, input="",
    )  # fmt: skip
    _one_line(done, 2, "holds other tables (customers) and no ledger")
    assert (tmp_path / "other.db").read_bytes() == before


def _as_nobody() -> list[str]:
    """Run as a user who may not write the folder: root ignores file modes."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize(
    "command", [("query", "balances", "C0001"), ("journal", "export"), ("rejects",)]
)
def test_read_commands_work_on_a_store_nobody_may_write(
    command: tuple[str, ...], ledger_store: Path
) -> None:
    # Under /tmp itself: the user the command runs as must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="ledger-read-only-", dir="/tmp"))
    shutil.copy(ledger_store, folder / "ledger.db")
    (folder / "ledger.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        done = subprocess.run(
            [*_as_nobody(), sys.executable, "-m", "app", "--store", "sqlite:///ledger.db",
             *command],
            capture_output=True, text=True, cwd=folder, check=False,
        )  # fmt: skip
        assert done.returncode in (0, 2), done.stderr  # 2: the account is not in this ledger
        assert "Traceback" not in done.stderr
        assert "readonly" not in done.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["ledger.db"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_report_and_audit_replay_catch_up_in_memory_on_a_store_nobody_may_write(
    ledger_store: Path,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ledger-read-only-", dir="/tmp"))
    shutil.copy(ledger_store, folder / "ledger.db")
    store = ("--store", "sqlite:///ledger.db")
    report = (*store, "report", "balances", "--format", "csv")
    assert _ledger(*report, cwd=folder).returncode == 0  # the views, stored
    (folder / "more.jsonl").write_bytes(_DAY_CLOSED)
    assert _ledger(*store, "ingest", "more.jsonl", cwd=folder).returncode == 0  # views behind
    expected = folder.with_name(folder.name + "-writable")
    shutil.copytree(folder, expected)
    written = _ledger(*report, cwd=expected)  # caught up and stored by a writer
    shutil.rmtree(expected)
    listing = sorted(folder.iterdir())
    (folder / "ledger.db").chmod(0o444)
    folder.chmod(0o555)
    try:

        def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*_as_nobody(), sys.executable, "-m", "app", *store, *command],
                capture_output=True, text=True, cwd=folder, check=False,
            )  # fmt: skip

        read = as_nobody("report", "balances", "--format", "csv")
        assert (read.returncode, read.stderr) == (0, "")
        assert read.stdout == written.stdout  # the stored views, caught up in memory
        replay = as_nobody("audit", "replay")
        assert (replay.returncode, replay.stderr) == (0, ""), replay.stdout
        assert "every view is identical" in replay.stdout
        assert sorted(folder.iterdir()) == listing
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


_DAY_CLOSED = (
    b'{"type":"day_closed","event_id":"x","occurred_at":"2026-12-01T00:00:00Z",'
    b'"business_date":"2026-11-30"}\n'
)


def test_a_second_writer_holding_the_store_is_one_line(ledger_store: Path, tmp_path: Path) -> None:
    shutil.copy(ledger_store, tmp_path / "ledger.db")
    (tmp_path / "more.jsonl").write_bytes(_DAY_CLOSED)
    holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another ingest in the middle of its batch
        done = _ledger("--store", "sqlite:///ledger.db", "ingest", "more.jsonl", cwd=tmp_path)
    finally:
        holder.close()
    _one_line(done, 1, "database is locked")


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (
            ("journal", "export", "--out", "no/such/folder/journal.jsonl"),
            1,
            "folder no/such/folder",
        ),
        (("--log-level", "LOUD", "rejects"), 2, "--log-level LOUD is not a level"),
        (("audit", "replay"), 2, "the views were never built"),
    ],
)
def test_faults_around_a_good_store_are_one_line(
    args: tuple[str, ...], status: int, says: str, ledger_store: Path, tmp_path: Path
) -> None:
    shutil.copy(ledger_store, tmp_path / "ledger.db")
    _one_line(_ledger("--store", "sqlite:///ledger.db", *args, cwd=tmp_path), status, says)


def test_ingest_from_a_closed_stdin_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "ingest", "-"],
        capture_output=True, text=True, cwd=tmp_path, check=False, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    _one_line(done, 2, "standard input is closed")


def test_explain_says_when_an_event_records_no_figures(ledger_store: Path) -> None:
    store = "sqlite:///ledger.db"
    done = _ledger("--store", store, "audit", "explain", "1", cwd=ledger_store.parent)
    assert done.returncode == 0, done.stderr
    assert "records no figures to recompute: nothing was checked" in done.stdout
    assert "equal the recorded" not in done.stdout


@pytest.mark.parametrize(
    "args",
    [("publish", "inbox.jsonl"), ("audit", "verify", "--from-kafka")],
)
def test_an_unreachable_broker_is_one_line(args: tuple[str, ...], ledger_store: Path) -> None:
    done = _ledger("--bootstrap", "127.0.0.1:1", *args, cwd=ledger_store.parent)
    _one_line(done, 1, "the Kafka broker at 127.0.0.1:1 cannot be reached: no broker answered")
    assert "AddressFamily" not in done.stderr  # the client's repr of its address list


def test_an_inbox_skip_on_a_missing_store_creates_none(tmp_path: Path) -> None:
    done = _ledger("--store", "sqlite:///typo.db", "inbox", "skip", "ledger.inbox:0:7",
                   "--reason", "ticket 7", cwd=tmp_path)  # fmt: skip
    _one_line(done, 2, "does not exist: check --store or LEDGER_STORE")
    assert not (tmp_path / "typo.db").exists()


def test_run_waits_a_bounded_time_for_an_unreachable_broker_then_says_so_once(
    ledger_store: Path, tmp_path: Path
) -> None:
    shutil.copy(ledger_store, tmp_path / "ledger.db")
    started_s = time.monotonic()
    done = _ledger("--store", "sqlite:///ledger.db", "--bootstrap", "127.0.0.1:1",
                   "run", "--health-port", "0", "--broker-wait", "2", cwd=tmp_path)  # fmt: skip
    elapsed_s = time.monotonic() - started_s
    assert done.returncode == 6, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "ledger: the Kafka broker at 127.0.0.1:1 did not answer within 2 s (--broker-wait)"
    ), done.stderr
    assert sum("waiting_for_broker bootstrap=127.0.0.1:1" in line for line in lines) == 1
    assert "logger=aiokafka" not in done.stderr  # the client's retries are not repeated
    assert "Traceback" not in done.stderr
    assert 2 <= elapsed_s < 2 + 20  # the wait, then the interpreter's start and the replay


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LEDGER_DRAIN_TIMEOUT", "soon", "--drain-timeout 'soon' ($LEDGER_DRAIN_TIMEOUT) is not"),
        ("LEDGER_BROKER_WAIT", "-1", "--broker-wait '-1' ($LEDGER_BROKER_WAIT) is not"),
        ("LEDGER_CHECKPOINT_INTERVAL", "nan", "--checkpoint-interval 'nan'"),
        ("LEDGER_HEALTH_PORT", "http", "--health-port 'http' ($LEDGER_HEALTH_PORT) is not a port"),
    ],
)
def test_a_malformed_service_setting_is_one_line_for_run_and_breaks_no_other_command(
    variable: str, value: str, says: str, ledger_store: Path
) -> None:
    environment = {**os.environ, variable: value}
    run = subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", "run"],
        capture_output=True, text=True, cwd=ledger_store.parent, check=False, env=environment,
    )  # fmt: skip
    _one_line(run, 2, says)
    query = subprocess.run(
        [sys.executable, "-m", "app", "--store", "sqlite:///ledger.db", "rejects"],
        capture_output=True, text=True, cwd=ledger_store.parent, check=False, env=environment,
    )  # fmt: skip
    assert query.returncode == 0, query.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("query", "margin", "A\x1b[31mB\u202e"),
            "account A\\x1b[31mB\\u202e is not in the ledger",
        ),
        (("inbox", "skip", "b\x1b:1", "--reason", "x"), "'b\\x1b:1' is not a position"),
    ],
)
def test_what_a_person_typed_is_echoed_escaped_and_a_hostile_position_is_refused(
    args: tuple[str, ...], says: str, ledger_store: Path, tmp_path: Path
) -> None:
    shutil.copy(ledger_store, tmp_path / "ledger.db")
    done = _ledger("--store", "sqlite:///ledger.db", *args, cwd=tmp_path)
    _one_line(done, 2, says)
    assert "\x1b" not in done.stderr
    assert "\u202e" not in done.stderr
    rejects = _ledger("--store", "sqlite:///ledger.db", "rejects", "--format", "json", cwd=tmp_path)
    assert "skipped_by_operator" not in rejects.stdout  # nothing was recorded


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--health-port", "0"),
        ("publish", "inbox.jsonl"),
        ("audit", "verify", "--from-kafka"),
    ],
)
@pytest.mark.parametrize("prefix", ["bad prefix!", "x" * 240])
def test_a_topic_prefix_kafka_would_refuse_is_one_line_before_any_broker_is_asked(
    args: tuple[str, ...], prefix: str, ledger_store: Path
) -> None:
    done = _ledger("--bootstrap", "127.0.0.1:1", "--topic-prefix", prefix, *args,
                   cwd=ledger_store.parent)  # fmt: skip
    _one_line(done, 2, "--topic-prefix")
    assert "Kafka topic name" in done.stderr


@pytest.mark.parametrize(
    "command", [("query", "margin"), ("query", "balances"), ("check",)], ids=" ".join
)
@pytest.mark.parametrize(("account", "what"), [("", "empty"), (" ", "blank (spaces only)")])
def test_an_empty_or_blank_account_id_is_named_as_such(
    command: tuple[str, ...], account: str, what: str, ledger_store: Path, tmp_path: Path
) -> None:
    """It said 'account  is not in the ledger', two spaces around nothing, and for a
    blank id three; `check` said 'the record is for account C-1, not : check it under its
    own account'."""
    record = tmp_path / "record.json"
    record.write_text(
        '{"type":"withdrawal_requested","event_id":"w-1","occurred_at":"2026-11-05T00:00:00Z",'
        '"account_id":"C-1","asset":"USD","amount":"5.00"}'
    )
    after = [str(record)] if command == ("check",) else []
    done = _ledger(
        "--store", "sqlite:///ledger.db", *command, account, *after, cwd=ledger_store.parent
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"ledger: the account id is {what}: name an account, such as C-1 or platform:house\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--health-port", "0"),
        ("publish", "inbox.jsonl"),
        ("audit", "verify", "--from-kafka"),
    ],
)
@pytest.mark.parametrize(
    "bootstrap", ["kafka:ninety", "127.0.0.1:99999", "", "127.0.0.1:9092,", ":9092"]
)
def test_a_bootstrap_the_kafka_client_cannot_read_is_one_line_before_any_broker_is_asked(
    args: tuple[str, ...], bootstrap: str, ledger_store: Path
) -> None:
    """`kafka:ninety` ended in the Kafka client's traceback (ValueError: invalid literal
    for int()), a port over 65535 in an OverflowError's; an empty one was 'no broker
    answered' at the broker ''."""
    done = _ledger("--bootstrap", bootstrap, *args, cwd=ledger_store.parent)
    _one_line(done, 2, f"--bootstrap {bootstrap!r} ($LEDGER_KAFKA_BOOTSTRAP) is not ")


@pytest.mark.parametrize(
    ("as_of", "says"),
    [
        ("0", "is not in the ledger at seq 0, before its first record"),
        ("2020-01-01T00:00:00Z", "is not in the ledger at seq 0, before its first record"),
        ("1", "is not in the ledger at seq 1: opened after it, or never"),
    ],
)
def test_an_account_not_opened_yet_as_of_a_position_is_said_so(
    as_of: str, says: str, ledger_store: Path
) -> None:
    """It said 'account C000001 is not in the ledger' of an account the ledger holds."""
    done = _ledger(
        "--store", "sqlite:///ledger.db", "query", "margin", "C000001", "--as-of", as_of,
        cwd=ledger_store.parent,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"ledger: account C000001 {says}\n"
    known = _ledger(
        "--store", "sqlite:///ledger.db", "query", "margin", "C000001", cwd=ledger_store.parent
    )
    assert known.returncode == 0, known.stderr


@pytest.mark.parametrize("account_id", ["platform:house", "platform:liquidation"])
@pytest.mark.parametrize("what", ["margin", "balances"])
def test_a_platform_account_is_in_the_ledger_from_its_first_record(
    account_id: str, what: str, ledger_store: Path
) -> None:
    """As of seq 0 (before the journal's first record) the house answered empty balances
    (exit 0) where a client is 'not in the ledger at seq 0'; from seq 1 it is the ledger's
    own account, holding nothing until its first posting."""
    query = ("--store", "sqlite:///ledger.db", "query", what, account_id, "--format", "json")
    for as_of in ("0", "2020-01-01T00:00:00Z"):
        done = _ledger(*query, "--as-of", as_of, cwd=ledger_store.parent)
        assert done.returncode == 2, done.stdout
        assert done.stderr == (
            f"ledger: account {account_id} is not in the ledger at seq 0, before its first record\n"
        )
    first = _ledger(*query, "--as-of", "1", cwd=ledger_store.parent)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["as_of_seq"] == 1
    assert document.get("balances", []) == []
    assert document.get("equity", "0") == "0"


@pytest.mark.parametrize(
    "command",
    [
        ("query", "margin", "C000001"),
        ("check", "C000001", "record.json"),
        ("stress", "--shock", "BTC=-10%"),
        ("statements", "daily", "--date", "2026-11-02", "--out", "statements"),
        ("api", "--insecure-no-auth", "--port", "0"),
    ],
)
def test_a_reader_of_an_older_store_given_another_policy_than_the_journals_is_refused(
    command: tuple[str, ...], ledger_store: Path, tmp_path: Path
) -> None:
    """query, check, stress and statements valued the ledger with whatever policy was loaded
    (a deployment's own left out: the demonstration policy), where report and audit refused;
    ledger api said it was up, then ended in a traceback of the framework's startup. A store
    keeps the documents of the policies its journal adopted now: on one written before (none
    kept), a reader given another policy than the journal's is refused, naming the one
    missing (docs/views.md "Policies")."""
    folder = _older_store(ledger_store, tmp_path)
    demonstration = Path(__file__).parents[2] / "ledger" / "policies" / "demo.toml"
    own = folder / "own-policy.toml"
    text = demonstration.read_text(encoding="utf-8")
    own.write_text(text.replace('version = "', 'version = "own-', 1), encoding="utf-8")
    (folder / "record.json").write_text(
        '{"type":"withdrawal_requested","event_id":"w-1","occurred_at":"2026-11-03T00:00:00Z",'
        '"account_id":"C000001","asset":"USD","amount":"1.00"}',
        encoding="utf-8",
    )
    done = _ledger("--store", "sqlite:///ledger.db", "--policy", str(own), *command, cwd=folder)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ledger: the journal at seq "), done.stderr
    digest = hashlib.sha256(demonstration.read_bytes()).hexdigest()
    assert f"is under policy 2026-11-25.1 (sha256 {digest}), whose document is neither" in (
        done.stderr
    )
    assert len(done.stderr.splitlines()) == 1
    assert done.stdout == ""


def test_a_reader_given_another_policy_values_with_the_one_the_store_keeps(
    ledger_store: Path, tmp_path: Path
) -> None:
    """The store keeps the journal's policy: a reader given another file (one its journal
    never adopted) values every seq with the journal's, as one given none."""
    shutil.copy(ledger_store, tmp_path / "ledger.db")
    demonstration = Path(__file__).parents[2] / "ledger" / "policies" / "demo.toml"
    text = demonstration.read_text(encoding="utf-8").replace("0.70", "0.95")
    (tmp_path / "own-policy.toml").write_text(text, encoding="utf-8")
    query = ("--store", "sqlite:///ledger.db", "query", "margin", "C000001", "--format", "json")
    given = _ledger(*query, "--policy", "own-policy.toml", cwd=tmp_path)
    plain = _ledger(*query, cwd=tmp_path)
    assert given.returncode == plain.returncode == 0, given.stderr + plain.stderr
    assert '"margin_level"' in plain.stdout
    assert given.stdout == plain.stdout


def _older_store(ledger_store: Path, folder: Path) -> Path:
    """A copy of `ledger_store` in `folder` as code older than the kept policy documents
    left it: none kept."""
    shutil.copy(ledger_store, folder / "ledger.db")
    with sqlite3.connect(folder / "ledger.db") as connection:
        connection.execute("DELETE FROM stored_events WHERE topic = 'policy_document'")
    return folder


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("simulate", "--days", "0"), "a simulation needs 0 to 20,000 accounts and 1 to 366 days"),
        (("simulate", "--accounts", "-1"), "a simulation needs 0 to 20,000 accounts"),
        # It held every account in memory and grew without bound, printing nothing.
        (("simulate", "--accounts", "100000000"), "--accounts 100000000 --days 3: a simulation"),
        (("simulate", "--days", "100000"), "a simulation needs 0 to 20,000 accounts and 1 to 366"),
        (("--store", "sqlite:///:memory:", "query", "margin", "C1"), "reading needs a file"),
        (("api", "--insecure-no-auth", "--port", "99999"), "--port 99999 is not a port"),
        (("api", "--insecure-no-auth", "--workers", "0"), "--workers 0 is not 1 to 16"),
        (("api", "--insecure-no-auth", "--workers", "2", "--port", "0"), "a fixed --port"),
    ],
)
def test_more_mistakes_are_one_line(args: tuple[str, ...], says: str, ledger_store: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True, text=True, cwd=ledger_store.parent, check=False, timeout=60,
    )  # fmt: skip
    _one_line(done, 2, says)


@pytest.mark.parametrize(
    "command", [("report", "balances"), ("run", "--health-port", "0"), ("ingest", "x.jsonl")]
)
def test_a_store_url_that_is_not_a_url_is_one_line_without_its_password(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """An IPv6 host without its closing bracket was a ValueError traceback (twice: the
    message's own masking of the password failed on it too)."""
    done = _ledger("--store", "postgresql://u:S3cret@[::1/db", *command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "S3cret" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("ledger: ")
    assert "not a URL: Invalid IPv6 URL" in done.stderr
