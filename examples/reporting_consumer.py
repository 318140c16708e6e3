"""A reference downstream consumer: `margin_clients` in PostgreSQL, kept current from the
journal topic `<prefix>.events`.

    python -m examples.reporting_consumer --bootstrap 127.0.0.1:9092 --topic-prefix ledger \\
        --database postgresql://user@host:5432/db[?schema=name]

What a downstream team copies: read the journal with its own consumer group
(`read_committed`, from the earliest record, auto commit off), apply each record to a
`ledger.book.Book` (which checks `seq` continuity and the hash chain), value each client with
`ledger.risk`, and write one row per client (equity, loan, ltv, maintenance requirement,
margin level, status) together with the last applied `seq` and hash, in ONE PostgreSQL
transaction per batch. Rows whose figures did not change are not rewritten.

Restart without loss or double counting: the stored position is the truth, not Kafka's
committed offset (committed after each transaction, for lag monitoring only). On start the
consumer reads the topic from its beginning and rebuilds the book, writing nothing until it
passes the stored `seq`. At this size (tens of thousands of journal events, a few seconds)
that replay is the simplest correct design; a larger deployment would store a snapshot of
the book with the position and start from there.

Money: equity and the maintenance requirement are written rounded to USD cents (half even);
`ltv` and `margin_level` are the risk model's 8-place ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql
from psycopg.conninfo import make_conninfo

from consumers import kafka_security
from consumers.topics import (
    TopicNames,
    kafka_connections_max_idle_ms,
    kafka_metadata_max_age_ms,
    kafka_request_timeout_ms,
    kafka_retry_backoff_ms,
    topic_partitions,
)
from ledger import journal_events as je
from ledger import risk
from ledger.book import Account, Book
from ledger.invariants import require
from ledger.money import USD_SCALE, quantize
from ledger.policy import Policy, load_policy
from ledger.store_url import parse_postgres_url

log = logging.getLogger("examples.reporting_consumer")

CONSUMER_NAME = "margin_clients"
batch_records_max = 1_000  # journal records per PostgreSQL transaction
poll_timeout_ms = 500  # wait for new records before checking for a stop
fetch_bytes_max = 4 * 1024 * 1024  # per fetch request
postgres_connect_timeout_s = 10

Row = tuple[str, str, Decimal | None, Decimal, Decimal | None, Decimal | None, Decimal | None, str]
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS margin_clients (
    account_id text PRIMARY KEY,
    investor_class text NOT NULL,
    equity numeric,
    loan numeric NOT NULL,
    ltv numeric,
    maintenance_requirement numeric,
    margin_level numeric,
    status text NOT NULL,
    as_of_seq bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS reporting_position (
    consumer text PRIMARY KEY,
    last_seq bigint NOT NULL,
    last_hash text NOT NULL
);
"""


class PositionMoved(RuntimeError):
    """Another instance wrote this consumer's position: this one must stop."""


def client_row(account: Account, book: Book, policy: Policy) -> Row:
    """One client's row; `unvalued` (no figures) while an asset it holds has no mark."""
    try:
        figures = risk.margin_figures(account.holdings(), book.marks, policy)
    except risk.MissingMark:
        return (
            account.account_id,
            account.investor_class,
            None,
            account.loan,
            None,
            None,
            None,
            "unvalued",
        )
    return (
        account.account_id,
        account.investor_class,
        quantize(figures.equity, USD_SCALE),
        figures.loan,
        figures.ltv,
        quantize(figures.maintenance_requirement, USD_SCALE),
        figures.margin_level,
        str(figures.status),
    )


def client_rows(book: Book, policy: Policy) -> dict[str, Row]:
    return {a.account_id: client_row(a, book, policy) for a in book.clients()}


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    names: TopicNames
    database: str
    policy: Policy
    group: str
    until_seq: int | None
    batch_records: int


class MarginClientsTable:
    """The PostgreSQL side: the table, the position, one transaction per batch."""

    def __init__(self, url: str) -> None:
        location = parse_postgres_url(url)
        self.connection = psycopg.connect(
            make_conninfo("", **location.connection_arguments()),
            autocommit=True,
            connect_timeout=postgres_connect_timeout_s,
        )
        schema = sql.Identifier(location.schema)
        with self.connection.transaction():
            self.connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            self.connection.execute(sql.SQL("SET search_path TO {}").format(schema))
            self.connection.execute(SCHEMA_SQL)

    def position(self) -> tuple[int, str]:
        row = self.connection.execute(
            "SELECT last_seq, last_hash FROM reporting_position WHERE consumer = %s",
            (CONSUMER_NAME,),
        ).fetchone()
        return (0, "0" * 64) if row is None else (int(row[0]), str(row[1]))

    def write(self, rows: Sequence[Row], before_seq: int, seq: int, last_hash: str) -> None:
        """Upsert `rows` and move the position from `before_seq` to `seq`, atomically."""
        with self.connection.transaction():
            with self.connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO margin_clients (account_id, investor_class, equity, loan, ltv, "
                    "maintenance_requirement, margin_level, status, as_of_seq) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (account_id) DO "
                    "UPDATE SET investor_class = EXCLUDED.investor_class, equity = "
                    "EXCLUDED.equity, loan = EXCLUDED.loan, ltv = EXCLUDED.ltv, "
                    "maintenance_requirement = EXCLUDED.maintenance_requirement, margin_level "
                    "= EXCLUDED.margin_level, status = EXCLUDED.status, as_of_seq = "
                    "EXCLUDED.as_of_seq",
                    [(*row, seq) for row in rows],
                )
            moved = self.connection.execute(
                "INSERT INTO reporting_position (consumer, last_seq, last_hash) "
                "VALUES (%s, %s, %s) ON CONFLICT (consumer) DO UPDATE SET "
                "last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash "
                "WHERE reporting_position.last_seq = %s",
                (CONSUMER_NAME, seq, last_hash, before_seq),
            )
            if moved.rowcount != 1:
                raise PositionMoved(
                    f"{CONSUMER_NAME} position is no longer {before_seq}: another instance runs"
                )

    def close(self) -> None:
        self.connection.close()


def journal_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        **kafka_security.client_options(),  # SASL/SCRAM over TLS when configured
        client_id=settings.group,  # names this client in broker logs
        group_id=settings.group,  # its own group: its committed offset shows its lag
        enable_auto_commit=False,  # committed after the PostgreSQL transaction, never before
        auto_offset_reset="earliest",  # a new group reads the journal from its start
        isolation_level="read_committed",  # an aborted relay transaction is not the journal
        max_poll_records=settings.batch_records,  # bounded batches
        fetch_max_bytes=fetch_bytes_max,  # bounded fetches
        fetch_max_wait_ms=poll_timeout_ms,  # see the constant
        request_timeout_ms=kafka_request_timeout_ms,  # see the constant
        retry_backoff_ms=kafka_retry_backoff_ms,  # stated
        metadata_max_age_ms=kafka_metadata_max_age_ms,  # stated
        connections_max_idle_ms=kafka_connections_max_idle_ms,  # stated
        check_crcs=True,  # a corrupted record is an error
    )


@dataclass
class Follower:
    """The book, the stored position, and the rows last written."""

    table: MarginClientsTable
    policy: Policy
    stored_seq: int
    stored_hash: str
    book: Book
    written: dict[str, Row]

    def apply(self, values: Sequence[bytes]) -> None:
        """Apply one batch of journal records; write the changed rows past the position."""
        for value in values:
            event = je.decode_journal_record(value)
            if event.seq <= self.book.last_seq:
                continue  # a redelivered record (the Book checks the hash chain on the rest)
            self.book.apply(event)
            if event.seq == self.stored_seq:
                require(
                    event.hash == self.stored_hash,
                    f"the journal's hash at seq {event.seq} is not the one written to PostgreSQL",
                )
        if self.book.last_seq <= self.stored_seq:
            return  # still replaying what PostgreSQL already has
        rows = client_rows(self.book, self.policy)
        changed = [row for account, row in rows.items() if self.written.get(account) != row]
        self.table.write(changed, self.stored_seq, self.book.last_seq, self.book.last_hash)
        self.written = rows
        self.stored_seq, self.stored_hash = self.book.last_seq, self.book.last_hash
        log.info("applied topic=events seq=%d rows_written=%d", self.stored_seq, len(changed))


async def follow(settings: Settings, stopping: asyncio.Event) -> int:
    """Follow the journal until `stopping` is set or `until_seq` is applied; returns the seq."""
    table = MarginClientsTable(settings.database)
    stored_seq, stored_hash = table.position()
    follower = Follower(table, settings.policy, stored_seq, stored_hash, Book(), {})
    consumer = journal_consumer(settings)
    await consumer.start()
    try:
        topic = settings.names.events
        partitions = [
            TopicPartition(topic, p) for p in await topic_partitions(settings.bootstrap, topic)
        ]
        require(len(partitions) == 1, f"{topic} must have one partition (the journal's order)")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)  # rebuild the book: see the docstring
        log.info("start topic=%s stored_seq=%d", topic, stored_seq)
        while not stopping.is_set():
            if settings.until_seq is not None and follower.stored_seq >= settings.until_seq:
                break
            batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                continue
            await asyncio.to_thread(follower.apply, [r.value for r in records])
            if follower.book.last_seq > stored_seq:
                await consumer.commit()  # for lag monitoring only: PostgreSQL holds the truth
    finally:
        await consumer.stop()
        table.close()
    return follower.stored_seq


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.reporting_consumer", description=__doc__
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="ledger")
    parser.add_argument("--database", required=True, help="postgresql://…[?schema=name]")
    parser.add_argument("--group", default=None, help="consumer group (<prefix>.reporting)")
    parser.add_argument("--policy", type=Path, default=None)
    parser.add_argument("--until-seq", type=int, default=None, help="stop once applied")
    parser.add_argument("--batch-records", type=int, default=batch_records_max)
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    if not 1 <= args.batch_records <= batch_records_max:
        print(f"reporting: --batch-records must be 1..{batch_records_max}", file=sys.stderr)
        return 2
    names = TopicNames(args.topic_prefix)
    settings = Settings(
        bootstrap=args.bootstrap,
        names=names,
        database=args.database,
        policy=load_policy(args.policy),
        group=args.group or f"{names.base}.reporting",
        until_seq=args.until_seq,
        batch_records=args.batch_records,
    )
    return asyncio.run(_main(settings))


async def _main(settings: Settings) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    try:
        seq = await follow(settings, stopping)
    except (psycopg.OperationalError, ValueError) as error:
        print(f"reporting: {error}", file=sys.stderr)
        return 2
    print(f"reporting: margin_clients at journal seq {seq}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
