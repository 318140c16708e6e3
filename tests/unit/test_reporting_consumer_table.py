"""The reference consumer's table, without Kafka: journal records applied in batches to a
SQLite `margin_clients` through the view tables' code, its position moved by the one
compare-and-set (a second writer at a stale position is refused, nothing written)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from app.commands import ingest_stream
from app.simulation import simulate
from examples.reporting_consumer import (
    CONSUMER_NAME,
    MARGIN_CLIENTS,
    Follower,
    JournalNotVerified,
    MarginClientsDatabase,
    UnreadableRecord,
    main,
)
from ledger import reporting
from ledger.adopted_policies import AdoptedPolicies, PolicyDocumentMissing, policy_files
from ledger.application import LedgerApplication
from ledger.book import Book
from ledger.money import USD_SCALE, format_decimal, quantize
from ledger.policy import load_policy
from ledger.store import LedgerStore
from projections.database import ProjectionConflict, ViewDatabase
from tests import two_policies

POLICY = load_policy(None)
POLICIES = AdoptedPolicies.of(POLICY)
batch_records = 40


def _journal(folder: Path) -> tuple[list[bytes], Book]:
    inbox = b"\n".join(simulate(7, 6, 1))
    with LedgerStore.open(f"sqlite:///{folder / 'ledger.db'}") as store:
        ingest_stream(LedgerApplication(store, POLICY), io.BytesIO(inbox), "test")
        records = [entry.record for entry in store.iter_journal()]
        return records, reporting.book_as_of(store, None)


def _follow(database: ViewDatabase, records: list[bytes]) -> Follower:
    follower = Follower(database, POLICIES, database.position(CONSUMER_NAME), Book(), {})
    for start in range(0, len(records), batch_records):
        follower.apply(records[start : start + batch_records])
    return follower


def test_margin_clients_hold_each_clients_figures_and_the_journal_position(
    tmp_path: Path,
) -> None:
    records, book = _journal(tmp_path)
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        _follow(database, records)
        position = database.position(CONSUMER_NAME)
        rows = database.rows(MARGIN_CLIENTS)
    assert (position.last_seq, position.last_hash) == (book.last_seq, book.last_hash)
    expected = []
    for account in sorted(book.clients(), key=lambda a: a.account_id):
        margin = reporting.margin_view(book, POLICY, account.account_id)
        equity = format_decimal(quantize(Decimal(margin["equity"]), USD_SCALE))
        assert margin["status"] != "unvalued"
        expected.append((account.account_id, equity, margin["status"]))
    assert [(row[0], row[2], row[7]) for row in rows] == expected
    assert len(rows) == 6


def test_a_restarted_follower_writes_nothing_it_had_and_a_stale_one_is_refused(
    tmp_path: Path,
) -> None:
    records, book = _journal(tmp_path)
    half = len(records) // 2
    url = f"sqlite:///{tmp_path / 'reporting.db'}"
    with MarginClientsDatabase.open(url) as database:
        stale = Follower(database, POLICIES, database.position(CONSUMER_NAME), Book(), {})
        _follow(database, records[:half])
        # Restarted: it replays from seq 1 and carries on from the stored position.
        _follow(database, records)
        assert database.position(CONSUMER_NAME).last_seq == book.last_seq
        # One that read the position before the others wrote cannot move it.
        with pytest.raises(ProjectionConflict):
            stale.apply(records[:batch_records])
        assert database.position(CONSUMER_NAME).last_seq == book.last_seq


def test_a_journal_of_another_policy_is_refused_before_a_row_is_written(
    tmp_path: Path,
) -> None:
    """Valued with its own policy (the demonstration's when --policy is left out), the
    consumer wrote a deployment's clients with other haircuts and margins, silently."""
    records, _ = _journal(tmp_path)
    other = tmp_path / "other.toml"
    demo = resources.files("ledger").joinpath("policies", "demo.toml").read_text("utf-8")
    other.write_text(demo.replace('version = "2026-11-25.1"', 'version = "2027-01-01.1"'))
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        follower = Follower(
            database,
            AdoptedPolicies.of(load_policy(other)),
            database.position(CONSUMER_NAME),
            Book(),
            {},
        )
        with pytest.raises(PolicyDocumentMissing, match=r"adopted policy 2026-11-25.1 .*--policy"):
            follower.apply(records[:batch_records])
        assert database.position(CONSUMER_NAME).last_seq == 0
        assert database.rows(MARGIN_CLIENTS) == []


def test_a_record_of_a_newer_ledger_stops_the_consumer_naming_its_seq(tmp_path: Path) -> None:
    """A type this code does not know was msgspec's bare 'Invalid value ... at `$.type`'."""
    records, _ = _journal(tmp_path)
    kind = json.loads(records[2])["type"]
    newer = records[2].replace(f'"type":"{kind}"'.encode(), b'"type":"loan_restructured"')
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        follower = Follower(database, POLICIES, database.position(CONSUMER_NAME), Book(), {})
        with pytest.raises(UnreadableRecord, match=r"^journal seq 3 \(loan_restructured\) "):
            follower.apply([*records[:2], newer])
        assert database.position(CONSUMER_NAME).last_seq == 0


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (("--policy", "missing.toml"), "reporting: policy file missing.toml cannot be read"),
        (("--log-level", "loud"), "reporting: --log-level loud is not a level"),
        (("--topic-prefix", "bad prefix"), "reporting: --topic-prefix 'bad prefix' cannot start"),
        (("--batch-records", "0"), "reporting: --batch-records must be 1..1000"),
    ],
)
def test_a_mistyped_option_is_one_line_and_status_2(
    option: tuple[str, ...], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The policy, log level and topic prefix were tracebacks."""
    database = f"sqlite:///{tmp_path / 'reporting.db'}"
    assert main(["--bootstrap", "127.0.0.1:1", "--database", database, *option]) == 2
    error = capsys.readouterr().err
    assert error.startswith(says), error
    assert len(error.splitlines()) == 1


def test_a_journal_of_two_policies_is_valued_with_each_given_file(tmp_path: Path) -> None:
    """The firm changed its BTC haircuts (tests/two_policies.py): given both files (a
    folder), the row at the journal's end is valued with the later policy (maintenance
    requirement 60,000 * 0.70 = 42,000, margin level 59,895.62 / 42,000 = 1.42608619);
    given only the earlier one, the later is refused where the journal adopts it, before a
    row of its seqs is written."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    a, b = two_policies.two_policy_store(url, tmp_path / "policies")
    with LedgerStore.open(url, read_only=True) as store:
        records = [entry.record for entry in store.iter_journal()]
    given = AdoptedPolicies.of(*policy_files(tmp_path / "policies"))
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'both.db'}") as database:
        follower = Follower(database, given, database.position(CONSUMER_NAME), Book(), {})
        follower.apply(records)
        (row,) = database.rows(MARGIN_CLIENTS)
    assert row[2:8] == ("59895.62", "10004.38", "0.14312418", "42000.00", "1.42608619", "healthy")
    only_a = AdoptedPolicies.of(load_policy(a))
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'one.db'}") as database:
        follower = Follower(database, only_a, database.position(CONSUMER_NAME), Book(), {})
        follower.apply(records[: two_policies.LAST_SEQ_UNDER_A])
        with pytest.raises(PolicyDocumentMissing, match="journal seq 9 adopted policy hk-2"):
            follower.apply(records[two_policies.LAST_SEQ_UNDER_A :])
        assert database.position(CONSUMER_NAME).last_seq == two_policies.LAST_SEQ_UNDER_A
    assert load_policy(b).version == "hk-2"


def test_a_record_altered_in_the_topic_stops_the_consumer_before_its_batch_is_written(
    tmp_path: Path,
) -> None:
    """The Book checks each record's seq and prev_hash, not that its hash recomputes: a
    deposit's amount altered on the topic (its hash left as it was) was booked, and the
    client's row written with the forged figure."""
    records, _ = _journal(tmp_path)
    # A deposit after the first batch, so that one batch is written before it.
    at = next(
        i
        for i in range(batch_records, len(records))
        if json.loads(records[i])["type"] == "deposit_credited"
    )
    record = json.loads(records[at])
    forged = records[at].replace(
        f'"amount":"{record["amount"]}"'.encode(), f'"amount":"{record["amount"]}0"'.encode()
    )
    assert forged != records[at]
    tampered = [*records[:at], forged, *records[at + 1 :]]
    before = at - at % batch_records  # the last batch end before the altered record
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        with pytest.raises(
            JournalNotVerified,
            match=rf"^journal seq {at + 1} does not verify \(hash does not recompute\)",
        ):
            _follow(database, tampered)
        assert database.position(CONSUMER_NAME).last_seq == before


def test_a_table_written_from_another_journal_is_refused_in_a_sentence(tmp_path: Path) -> None:
    """A table kept from one journal, then pointed at another (a --topic-prefix of another
    ledger): the stored hash differs at the stored seq. It was an InvariantViolation's
    traceback."""
    records, _ = _journal(tmp_path)
    inbox = b"\n".join(simulate(8, 6, 1))  # another ledger's journal
    with LedgerStore.open(f"sqlite:///{tmp_path / 'other.db'}") as store:
        ingest_stream(LedgerApplication(store, POLICY), io.BytesIO(inbox), "test")
        other = [entry.record for entry in store.iter_journal()]
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        _follow(database, records[: 2 * batch_records])
        with pytest.raises(
            JournalNotVerified,
            match=rf"^journal seq {2 * batch_records} is not the one the table was written from",
        ):
            _follow(database, other)
        assert database.position(CONSUMER_NAME).last_seq == 2 * batch_records


def test_until_seq_stops_the_table_at_that_seq_inside_a_batch(tmp_path: Path) -> None:
    """--until-seq N with batches of 40 records left the table at the end of N's batch."""
    records, _ = _journal(tmp_path)
    opened = next(i for i, r in enumerate(records) if b'"type":"account_opened"' in r)
    until = opened + 2  # the seq after the first client's opening: a row, mid-batch
    assert until % batch_records != 0
    with MarginClientsDatabase.open(f"sqlite:///{tmp_path / 'reporting.db'}") as database:
        follower = Follower(
            database, POLICIES, database.position(CONSUMER_NAME), Book(), {}, until_seq=until
        )
        for start in range(0, until + batch_records, batch_records):
            follower.apply(records[start : start + batch_records])
        position = database.position(CONSUMER_NAME)
        rows = database.rows(MARGIN_CLIENTS)
    until_hash = json.loads(records[until - 1])["hash"]
    assert (position.last_seq, position.last_hash) == (until, until_hash)
    assert [row[-1] for row in rows] == [until]
