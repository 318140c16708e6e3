"""The reference downstream consumer against the real broker and PostgreSQL, killed once.

A small journal (a simulated day decided into a SQLite store) is produced to
`<prefix>.events`; `python -m examples.reporting_consumer` follows it into `margin_clients`, is
killed with SIGKILL after its first transactions, and is started again to the journal's
end. The table must then hold, for every client, the figures `ledger query margin` gives
from the journal, and the position the journal's last seq and hash.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from app.commands import ingest_stream
from app.simulation import simulate
from consumers.topics import TopicNames, ensure_topics
from examples.reporting_consumer import CONSUMER_NAME, MarginClientsDatabase
from ledger import journal_events as je
from ledger import reporting
from ledger.application import LedgerApplication
from ledger.journal import JournalEntry
from ledger.money import USD_SCALE, quantize
from ledger.policy import load_policy
from ledger.store import LedgerStore

REPOSITORY = Path(__file__).resolve().parents[2]
simulated_accounts = 12
simulated_days = 1
consumer_batch_records = 25  # many small transactions, so the kill lands mid-journal
first_commit_timeout_s = 120.0
finish_timeout_s = 300.0
poll_interval_s = 0.02


def build_journal(folder: Path) -> tuple[str, list[JournalEntry]]:
    store_url = f"sqlite:///{folder / 'ledger.db'}"
    inbox = b"\n".join(simulate(21, simulated_accounts, simulated_days))
    with LedgerStore.open(store_url) as store:
        ingest_stream(LedgerApplication(store, load_policy(None)), io.BytesIO(inbox), "test")
        return store_url, list(store.iter_journal())


async def produce(bootstrap: str, topic: str, entries: list[JournalEntry]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",  # every record on the broker before the test goes on
        enable_idempotence=True,  # no duplicate from a retried batch
        linger_ms=5,
        request_timeout_ms=30_000,
    )
    await producer.start()
    try:
        for entry in entries:
            await producer.send(topic, entry.record, key=b"journal")
        await producer.flush()
    finally:
        await producer.stop()


def position(database: str) -> tuple[int, str] | None:
    base, schema = database.split("?schema=")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        try:
            row = connection.execute(
                "SELECT last_seq, last_hash FROM projection_position WHERE projection = %s",
                ("margin_clients",),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return None if row is None else (int(row[0]), str(row[1]))


def table_rows(database: str) -> dict[str, tuple[object, ...]]:
    base, schema = database.split("?schema=")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        rows = connection.execute(
            "SELECT account_id, equity, loan, ltv, maintenance_requirement, margin_level, status "
            "FROM margin_clients"
        ).fetchall()
    # Figures are decimal text, as in every view table: compared as numbers.
    return {
        str(row[0]): (*(optional_decimal(figure) for figure in row[1:6]), row[6]) for row in rows
    }


def start_consumer(
    bootstrap: str, prefix: str, database: str, *extra: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "examples.reporting_consumer", "--bootstrap", bootstrap]
    command += ["--topic-prefix", prefix, "--database", database, "--log-level", "WARNING"]
    command += ["--batch-records", str(consumer_batch_records), *extra]
    return subprocess.Popen(command, cwd=REPOSITORY, stderr=subprocess.PIPE)


def wait_for_first_commit(consumer: subprocess.Popen[bytes], database: str) -> int:
    deadline = time.monotonic() + first_commit_timeout_s
    while time.monotonic() < deadline:
        stored = position(database)
        if stored is not None and stored[0] > 0:
            return stored[0]
        assert consumer.poll() is None, consumer.stderr.read().decode() if consumer.stderr else ""
        time.sleep(poll_interval_s)
    pytest.fail(f"the consumer wrote no position in {first_commit_timeout_s} s")


def optional_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


@pytest.mark.integration
def test_margin_clients_survive_a_kill_and_match_the_journal(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str, pg_schema_url: str
) -> None:
    store_url, entries = build_journal(tmp_path)
    names = TopicNames(kafka_topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, names))
    asyncio.run(produce(kafka_bootstrap, names.events, entries))
    last = entries[-1]

    first = start_consumer(kafka_bootstrap, kafka_topic_prefix, pg_schema_url)
    try:
        wait_for_first_commit(first, pg_schema_url)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)  # reaps it and closes its stderr pipe
    killed_at = position(pg_schema_url)
    assert killed_at is not None
    assert 0 < killed_at[0] < last.seq, "the kill did not land mid-journal"

    second = start_consumer(
        kafka_bootstrap, kafka_topic_prefix, pg_schema_url, "--until-seq", str(last.seq)
    )
    _, errors = second.communicate(timeout=finish_timeout_s)
    assert second.returncode == 0, errors.decode()
    assert position(pg_schema_url) == (last.seq, je.decode_journal_record(last.record).hash)

    policy = load_policy(None)
    with LedgerStore.open(store_url) as store:
        book = reporting.book_as_of(store, None)
    expected = {}
    for account in book.clients():
        margin = reporting.margin_view(book, policy, account.account_id)
        expected[account.account_id] = (
            quantize(Decimal(margin["equity"]), USD_SCALE),
            Decimal(margin["loan"]),
            optional_decimal(margin["ltv"]),
            quantize(Decimal(margin["maintenance_requirement"]), USD_SCALE),
            optional_decimal(margin["margin_level"]),
            margin["status"],
        )
    assert table_rows(pg_schema_url) == expected
    assert len(expected) == simulated_accounts


@pytest.mark.integration
def test_the_consumer_keeps_its_table_in_sqlite_too(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """README: "in PostgreSQL or SQLite". With SQLite it stopped at its first batch:
    "SQLite objects created in a thread can only be used in that same thread"."""
    _, entries = build_journal(tmp_path)
    names = TopicNames(kafka_topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, names))
    asyncio.run(produce(kafka_bootstrap, names.events, entries))
    last = entries[-1]
    database = f"sqlite:///{tmp_path / 'reporting.db'}"
    consumer = start_consumer(
        kafka_bootstrap, kafka_topic_prefix, database, "--until-seq", str(last.seq)
    )
    _, errors = consumer.communicate(timeout=finish_timeout_s)
    assert consumer.returncode == 0, errors.decode()
    with MarginClientsDatabase.open(database) as table:
        stored = table.position(CONSUMER_NAME)
    assert (stored.last_seq, stored.last_hash) == (
        last.seq,
        je.decode_journal_record(last.record).hash,
    )


@pytest.mark.integration
def test_a_forged_record_on_the_topic_stops_the_consumer_with_one_sentence(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """docs/downstream.md: a record whose hash does not recompute is an alarm, one line naming
    its seq and exit status 1, nothing of it written (it was booked: the Book checks links)."""
    _, entries = build_journal(tmp_path)
    at = next(i for i, e in enumerate(entries) if b'"type":"deposit_credited"' in e.record)
    amount = json.loads(entries[at].record)["amount"]
    forged = entries[at].record.replace(
        f'"amount":"{amount}"'.encode(), f'"amount":"{amount}0"'.encode()
    )
    entries[at] = msgspec.structs.replace(entries[at], record=forged)
    names = TopicNames(kafka_topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, names))
    asyncio.run(produce(kafka_bootstrap, names.events, entries))
    database = f"sqlite:///{tmp_path / 'reporting.db'}"
    consumer = start_consumer(
        kafka_bootstrap, kafka_topic_prefix, database, "--until-seq", str(len(entries))
    )
    _, errors = consumer.communicate(timeout=finish_timeout_s)
    assert consumer.returncode == 1, errors.decode()
    said = errors.decode()  # aiokafka may log a coordinator not ready yet on a new broker
    assert "Traceback" not in said, said
    line = said.splitlines()[-1]
    assert line.startswith(f"reporting: journal seq {at + 1} does not verify (hash does not ")
    with MarginClientsDatabase.open(database) as table:
        assert table.position(CONSUMER_NAME).last_seq < at + 1


@pytest.mark.integration
def test_a_journal_topic_of_several_partitions_is_refused_in_one_line(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """A --topic-prefix whose events topic has three partitions (not the ledger's journal,
    which has one: the seq order) was an InvariantViolation's traceback, exit status 1."""
    names = TopicNames(kafka_topic_prefix)

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(names.events, 3, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    database = f"sqlite:///{tmp_path / 'reporting.db'}"
    consumer = start_consumer(kafka_bootstrap, kafka_topic_prefix, database)
    _, errors = consumer.communicate(timeout=finish_timeout_s)
    said = errors.decode()
    assert consumer.returncode == 2, said
    assert "Traceback" not in said, said
    assert said.splitlines()[-1] == (
        f"reporting: {names.events} has 3 partitions: the ledger's journal has one (its seq "
        "order); is --topic-prefix the ledger's?"
    )
