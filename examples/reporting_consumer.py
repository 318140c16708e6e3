"""A reference downstream consumer: `margin_clients` in PostgreSQL, kept current from the
journal topic `<prefix>.events`.

    python -m examples.reporting_consumer --bootstrap 127.0.0.1:9092 --topic-prefix ledger \\
        --database postgresql://user@host:5432/db[?schema=name]

What a downstream team copies: read the journal with its own consumer group
(`read_committed`, from the earliest record, auto commit off), verify each record (its `seq`
follows, its `prev_hash` links, its `hash` recomputes: `ledger.journal.verify_journal`) and
apply it to a `ledger.book.Book`, value each client with
`ledger.risk`, and write one row per client (equity, loan, ltv, maintenance requirement,
margin level, status) together with the last applied `seq` and hash, in ONE database
transaction per batch. Rows whose figures did not change are not rewritten.

The table is written by the ledger's own view-table code (`projections.database`): a
`Table` declares it, `ViewDatabase` creates it and commits each batch with the position in
`projection_position` (under the projection name `margin_clients`), moved by the same
compare-and-set as the ledger's views, so a second instance is refused, never interleaved.
Figures are decimal text, as in every view (`money.format_decimal`: no float touches money).

Restart without loss or double counting: the stored position is the truth, not Kafka's
committed offset (committed after each transaction, for lag monitoring only). On start the
consumer reads the topic from its beginning and rebuilds the book, writing nothing until it
passes the stored `seq`. At this size (tens of thousands of journal events, a few seconds)
that replay is the simplest correct design; a larger deployment would store a snapshot of
the book with the position and start from there.

A record that does not verify (a gap, a broken link, a hash that does not recompute: the
topic was written by something other than the ledger), or a journal that is not the one the
table was written from (another hash at the stored seq: a table pointed at another ledger's
topic), stops the consumer with one line naming the seq, exit status 1, as `ledger audit
verify` exits; nothing of that batch is written. Verifying costs about 25 us a record.
`--until-seq N` stops with the table at seq N exactly.

The risk policies (`--policy`: the ledger's policy file, or a folder of the files of every
policy the journal adopted; the demonstration policy when left out): each figure is valued
with the policy in force at its seq, the one the latest `policy_adopted` names (version and
SHA-256 of the file). A policy the journal adopted whose file was not given is refused
before a row of its seqs is written, exit status 2, since other haircuts and margins would
give other figures.

Money: equity and the maintenance requirement are written rounded to USD cents (half even);
`ltv` and `margin_level` are the risk model's 8-place ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.topics import (
    TopicNames,
    TopicPrefixError,
    kafka_connection,
    topic_partitions,
)
from ledger import journal_events as je
from ledger import risk
from ledger.adopted_policies import AdoptedPolicies, policy_files
from ledger.book import Account, Book
from ledger.journal import verify_journal
from ledger.money import USD_SCALE, format_decimal, quantize
from ledger.policy import Policy, PolicyError, load_policy
from projections.database import (
    Position,
    ProjectionConflict,
    TableWrite,
    ViewDatabase,
    ViewsReadOnly,
)
from projections.tables import Column, Row, Table

log = logging.getLogger("examples.reporting_consumer")

CONSUMER_NAME = "margin_clients"  # the projection name its position is kept under
batch_records_max = 1_000  # journal records per database transaction
poll_timeout_ms = 500  # wait for new records before checking for a stop
fetch_bytes_max = 4 * 1024 * 1024  # per fetch request

MARGIN_CLIENTS = Table(
    view=CONSUMER_NAME,
    sql_name=CONSUMER_NAME,
    columns=(
        Column("account_id", "text"),
        Column("investor_class", "text"),
        *(
            Column(name, "decimal")
            for name in ("equity", "loan", "ltv", "maintenance_requirement", "margin_level")
        ),
        Column("status", "text"),
        Column("as_of_seq", "integer"),
    ),
    key=("account_id",),
    scope="account_id",  # a batch rewrites the rows of the clients whose figures changed
)


class MarginClientsDatabase(ViewDatabase):
    """The consumer's one table, in the view tables' database code."""

    tables = (MARGIN_CLIENTS,)
    records_history = False  # the ledger's own as_of reads use it; this consumer has none


def client_row(account: Account, book: Book, policy: Policy) -> Row:
    """One client's row without its `as_of_seq`; `unvalued` (no figures) while an asset it
    holds has no mark."""
    try:
        figures = risk.margin_figures(account.holdings(), book.marks, policy)
    except risk.MissingMark:
        unvalued = (None, format_decimal(account.loan), None, None, None, "unvalued")
        return (account.account_id, account.investor_class, *unvalued)
    return (
        account.account_id,
        account.investor_class,
        format_decimal(quantize(figures.equity, USD_SCALE)),
        format_decimal(figures.loan),
        format_decimal(figures.ltv),
        format_decimal(quantize(figures.maintenance_requirement, USD_SCALE)),
        format_decimal(figures.margin_level),
        str(figures.status),
    )


def client_rows(book: Book, policy: Policy) -> dict[str, Row]:
    return {a.account_id: client_row(a, book, policy) for a in book.clients()}


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    names: TopicNames
    database: str
    policies: AdoptedPolicies
    group: str
    until_seq: int | None
    batch_records: int


def journal_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_connection(settings.bootstrap, settings.group),
        group_id=settings.group,  # its own group: its committed offset shows its lag
        enable_auto_commit=False,  # committed after the PostgreSQL transaction, never before
        auto_offset_reset="earliest",  # a new group reads the journal from its start
        isolation_level="read_committed",  # an aborted relay transaction is not the journal
        max_poll_records=settings.batch_records,  # bounded batches
        fetch_max_bytes=fetch_bytes_max,  # bounded fetches
        fetch_max_wait_ms=poll_timeout_ms,  # see the constant
        check_crcs=True,  # a corrupted record is an error
    )


class JournalNotVerified(ValueError):
    """The topic's record at a seq is not the journal's: it does not follow the record before
    (a gap, a broken link), its hash does not recompute (altered), or it is not the record
    the table was written from (a table kept from another journal)."""


class UnreadableRecord(ValueError):
    """A journal record this consumer's code cannot read: a type or field a newer ledger
    added. Its book is built from every event, so it stops rather than skip it."""


def _verified(value: bytes, book: Book) -> None:
    """`value` is the journal's record after the book's last: linked to its hash, and its own
    hash recomputes (docs/downstream.md "Verify the chain"). The Book checks the link only."""
    report = verify_journal([value], start_seq=book.last_seq + 1, start_prev_hash=book.last_hash)
    if not report.ok:
        raise JournalNotVerified(
            f"journal seq {report.first_bad_seq} does not verify ({report.reason}): the topic "
            f"does not hold the ledger's journal; the table stays at seq {book.last_seq} or before"
        )


def _decoded(value: bytes) -> je.JournalEventType:
    try:
        return je.decode_journal_record(value)
    except msgspec.ValidationError as error:
        seen = msgspec.json.decode(value)  # canonical JSON: an object with seq and type
        raise UnreadableRecord(
            f"journal seq {seen.get('seq')} ({seen.get('type')}) cannot be read by this "
            f"consumer ({error}): a newer ledger wrote it; upgrade the consumer to the "
            "ledger's version (its book needs every event, so it stops here)"
        ) from error


@dataclass
class Follower:
    """The book, the stored position, and the rows last written."""

    database: ViewDatabase
    # Figures valued with another policy's haircuts and margins would be wrong without a
    # word: each seq with the one its journal adopted, found by digest (or refused).
    policies: AdoptedPolicies
    stored: Position
    book: Book
    written: dict[str, Row]
    until_seq: int | None = None  # apply no record past it (--until-seq)

    def apply(self, values: Sequence[bytes]) -> None:
        """Apply one batch of journal records (none past `until_seq`); write the changed rows
        past the position."""
        recorded_at = self.stored.recorded_at
        for value in values:
            event = _decoded(value)
            if event.seq <= self.book.last_seq:
                continue  # a redelivered record
            if self.until_seq is not None and event.seq > self.until_seq:
                break
            _verified(value, self.book)
            if event.seq == self.stored.last_seq and event.hash != self.stored.last_hash:
                raise JournalNotVerified(
                    f"journal seq {event.seq} is not the one the table was written from (hash "
                    f"{event.hash}, the table's {self.stored.last_hash}): a table kept from "
                    "another journal; give its own --topic-prefix, or a new --database"
                )
            if isinstance(event, je.PolicyAdopted):
                self.policies.adopted(event)  # PolicyDocumentMissing without its file
            self.book.apply(event)
            recorded_at = event.recorded_at
        if self.book.last_seq <= self.stored.last_seq:
            return  # still replaying what the table already has
        rows = client_rows(self.book, self.policies.in_force(self.book))
        changed = [account for account, row in rows.items() if self.written.get(account) != row]
        after = Position(self.book.last_seq, self.book.last_hash, recorded_at)
        write = TableWrite(
            MARGIN_CLIENTS, changed, [(*rows[account], after.last_seq) for account in changed]
        )
        self.database.commit_batch([write], self.stored, after, CONSUMER_NAME)
        self.written, self.stored = rows, after
        log.info("applied topic=events seq=%d rows_written=%d", after.last_seq, len(changed))


async def follow(settings: Settings, stopping: asyncio.Event) -> int:
    """Follow the journal until `stopping` is set or `until_seq` is applied; returns the seq.

    Every call on the database runs in one thread of its own, off the event loop: a SQLite
    connection may only be used by the thread that opened it."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="database") as database_thread:
        database = await loop.run_in_executor(
            database_thread, MarginClientsDatabase.open, settings.database
        )
        try:
            return await _follow(settings, stopping, database, database_thread)
        finally:
            await loop.run_in_executor(database_thread, database.close)


async def _follow(
    settings: Settings,
    stopping: asyncio.Event,
    database: ViewDatabase,
    database_thread: ThreadPoolExecutor,
) -> int:
    loop = asyncio.get_running_loop()
    stored = await loop.run_in_executor(database_thread, database.position, CONSUMER_NAME)
    follower = Follower(database, settings.policies, stored, Book(), {}, settings.until_seq)
    consumer = journal_consumer(settings)
    try:
        await consumer.start()  # inside: a start that finds no broker is stopped too
        topic = settings.names.events
        partitions = [
            TopicPartition(topic, p) for p in await topic_partitions(settings.bootstrap, topic)
        ]
        if len(partitions) != 1:  # another topic than the ledger's journal: a setting's mistake
            raise ValueError(
                f"{topic} has {len(partitions)} partitions: the ledger's journal has one (its "
                "seq order); is --topic-prefix the ledger's?"
            )
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)  # rebuild the book: see the docstring
        log.info("start topic=%s stored_seq=%d", topic, stored.last_seq)
        while not stopping.is_set():
            if settings.until_seq is not None and follower.stored.last_seq >= settings.until_seq:
                break
            batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                continue
            await loop.run_in_executor(database_thread, follower.apply, [r.value for r in records])
            if follower.book.last_seq > stored.last_seq:
                await consumer.commit()  # for lag monitoring only: the table holds the truth
    finally:
        await consumer.stop()
    return follower.stored.last_seq


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.reporting_consumer", description=__doc__
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="ledger")
    parser.add_argument(
        "--database", required=True, help="postgresql://…[?schema=name] or sqlite:///path"
    )
    parser.add_argument("--group", default=None, help="consumer group (<prefix>.reporting)")
    parser.add_argument(
        "--policy", type=Path, default=None, help="the policy file, or a folder of them"
    )
    parser.add_argument("--until-seq", type=int, default=None, help="stop once applied")
    parser.add_argument("--batch-records", type=int, default=batch_records_max)
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except (ValueError, PolicyError, TopicPrefixError) as error:
        # A mistyped option is one line, as in every `ledger` command, not a traceback.
        print(f"reporting: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_main(settings))


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of the parsed options, logging configured; a ValueError, PolicyError or
    TopicPrefixError says which option is wrong."""
    level = args.log_level.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"--log-level {args.log_level} is not a level: DEBUG, INFO, WARNING")
    logging.basicConfig(
        level=level,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    if not 1 <= args.batch_records <= batch_records_max:
        raise ValueError(f"--batch-records must be 1..{batch_records_max}")
    names = TopicNames(args.topic_prefix)
    return Settings(
        bootstrap=args.bootstrap,
        names=names,
        database=args.database,
        policies=AdoptedPolicies.of(*(policy_files(args.policy) or [load_policy(None)])),
        group=args.group or f"{names.base}.reporting",
        until_seq=args.until_seq,
        batch_records=args.batch_records,
    )


async def _main(settings: Settings) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    try:
        seq = await follow(settings, stopping)
    except JournalNotVerified as error:  # an alarm, as `ledger audit verify` exits 1
        print(f"reporting: {error}", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, ValueError, ViewsReadOnly, ProjectionConflict) as error:
        print(f"reporting: {error}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:  # a file that is not a SQLite database
        print(f"reporting: {settings.database}: {error}", file=sys.stderr)
        return 2
    except KafkaError as error:  # no broker at --bootstrap: one line, not a traceback
        print(f"reporting: the Kafka broker at {settings.bootstrap}: {error}", file=sys.stderr)
        return 1
    print(f"reporting: margin_clients at journal seq {seq}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
