"""`make bench`: the pipeline's figures on this machine, as a markdown table. Asserts nothing.

    BENCH_RECORDS=200000 .venv/bin/python -m tests.benchmarks

Starts its own Kafka broker and PostgreSQL server (deploy/local) and measures on
BENCH_RECORDS inbox records: the raw aiokafka + msgspec consume-and-decode rate, the raw
recorder rate (batches of 1,000), `ledger run` end to end on SQLite and on PostgreSQL and
their ratio to the lower raw rate, a naive one-aggregate-per-record eventsourcing baseline,
the publish-to-journal latency at a fixed offered load, and the pre-trade check latency
with 50 concurrent callers on the demo's store (check_bench.py). A second table sets each
row of the speed targets beside its figure from the same run: ingest against the raw SQLite
recorder, `ledger run`, restart, replay against decode, query and report against
`ledger --help`, the API's `as_of` with 50 requests in flight and `/health` meanwhile
(read_bench.py), and peak RSS replaying the ingested journal, with its growth carried
forward to 10M events (memory_bench.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from app.demo import default_demo_store
from consumers.publish import inbox_key
from consumers.topics import TopicNames
from tests.benchmarks.check_bench import check_row
from tests.benchmarks.floor_bench import decision_free_rate, floor_row_name
from tests.benchmarks.ingest_bench import ingest_rate
from tests.benchmarks.memory_bench import memory_row
from tests.benchmarks.read_bench import ReadFigures, read_figures
from tests.benchmarks.replay_bench import replay_benchmark
from tests.benchmarks.run_bench import journal_published, publish, run_rate, run_timeout_s
from tests.benchmarks.store_bench import bench_recorder
from tests.conftest import free_port, run_server_script
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    health,
    start_service,
    stop_service,
    wait_until,
)

default_records = 200_000
naive_records_max = 20_000
recorder_batch_events = 1_000
latency_rate_per_s = 2_000
latency_duration_s = 10.0
consume_poll_ms = 500
replay_events_max = 1_000_000


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[str, str]]:
    kafka = {
        "LEDGER_KAFKA_PORT": str(free_port()),
        "LEDGER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGER_KAFKA_DATA": str(workdir / "kafka"),
    }
    pg_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-pg-"))
    postgres = {"LEDGER_PG_PORT": str(free_port()), "LEDGER_PG_DATA": str(pg_dir)}
    bootstrap = run_server_script("kafka", "start", kafka)
    try:
        url = run_server_script("postgres", "start", postgres)
        try:
            yield bootstrap, url
        finally:
            run_server_script("postgres", "stop", postgres)
            shutil.rmtree(pg_dir, ignore_errors=True)
    finally:
        run_server_script("kafka", "stop", kafka)


async def consume_decode_rate(bootstrap: str, topic: str, count: int) -> float:
    """Records per second one aiokafka consumer reads and msgspec decodes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,  # a one-off read
        enable_auto_commit=False,  # nothing to commit
        auto_offset_reset="earliest",  # from the start
        isolation_level="read_committed",  # as the sequencer reads
        max_poll_records=2_000,  # as the sequencer's batches
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        decode, seen = msgspec.json.decode, 0
        began = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(partition, timeout_ms=consume_poll_ms)
            for record in batches.get(partition, []):
                with suppress(msgspec.DecodeError, UnicodeDecodeError):
                    decode(record.value)
                seen += 1
        return seen / (time.perf_counter() - began)
    finally:
        await consumer.stop()


class Account(Aggregate):
    """The naive design: one aggregate per account, loaded and saved per record."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.count = 0

    @staticmethod
    def create_id(account_id: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, account_id)

    @event("Recorded")
    def record(self, kind: str, payload: str) -> None:
        self.count += 1
        self.last = (kind, payload)


def naive_rate(records: list[bytes], workdir: Path) -> float:
    app = Application[uuid.UUID](
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
             "SQLITE_DBNAME": str(workdir / "naive.db"), "CREATE_TABLE": "y"}
    )  # fmt: skip
    began = time.perf_counter()
    for raw in records:
        key = (inbox_key(raw) or b"unkeyed").decode("utf-8", errors="replace")
        try:
            account: Account = app.repository.get(Account.create_id(key))
        except AggregateNotFoundError:
            account = Account(key)
        account.record(kind="inbox", payload=raw.decode("utf-8", errors="replace"))
        app.save(account)
    return len(records) / (time.perf_counter() - began)


async def _offer_load(bootstrap: str, topic: str, sent_at: dict[str, float]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",  # as `ledger publish`
        enable_idempotence=True,  # as `ledger publish`
        linger_ms=0,  # latency, not throughput: send each record at once
    )
    await producer.start()
    try:
        total = int(latency_rate_per_s * latency_duration_s)
        began = time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(began + n / latency_rate_per_s - time.perf_counter(), 0))
            event_id = f"latency-{n}"
            raw = msgspec.json.encode(
                {"event_id": event_id, "type": "deposit", "account_id": "C-0001",
                 "occurred_at": "2026-12-31T00:00:00Z", "asset": "USD", "amount": "1.00"}
            )  # fmt: skip
            sent_at[event_id] = time.perf_counter()
            await producer.send(topic, raw, key=b"C-0001")
        await producer.flush()
    finally:
        await producer.stop()


async def _watch_journal(
    bootstrap: str, topic: str, count: int, arrived: dict[str, float], ready: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,  # a one-off read
        enable_auto_commit=False,  # nothing to commit
        auto_offset_reset="latest",  # only what is published from now on
        isolation_level="read_committed",  # what a downstream reader sees
        max_poll_records=2_000,
        fetch_max_wait_ms=5,  # latency: answer fetches at once
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.position(partition)  # the end offset resolved: nothing later is missed
        ready.set()
        async with asyncio.timeout(latency_duration_s * 10):
            while len(arrived) < count:
                batches = await consumer.getmany(partition, timeout_ms=consume_poll_ms)
                now = time.perf_counter()
                for record in batches.get(partition, []):
                    cause = msgspec.json.decode(record.value).get("causation_id", "")
                    arrived.setdefault(cause, now)
    finally:
        await consumer.stop()


def latency_ms(bootstrap: str, workdir: Path) -> tuple[float, float]:
    """p50 and p99 of publish-to-journal-topic latency at a fixed offered load."""
    prefix = f"bench-latency-{uuid.uuid4().hex[:6]}"
    store = f"sqlite:///{workdir / 'latency.db'}"
    asyncio.run(publish(bootstrap, prefix, hand_written_stream(1, 5, 20)))
    port = free_port()
    service = start_service(store, bootstrap, prefix, workdir / "latency.log", port)
    try:
        wait_until(lambda: journal_published(port) and (health(port) or {}).get("inbox_lag") == 0,
                   run_timeout_s, "the openings")  # fmt: skip
        sent_at: dict[str, float] = {}
        arrived: dict[str, float] = {}
        count = int(latency_rate_per_s * latency_duration_s)
        topic = TopicNames(prefix)

        async def both() -> None:
            ready = asyncio.Event()
            watcher = asyncio.create_task(
                _watch_journal(bootstrap, topic.events, count, arrived, ready)
            )
            # The load starts once the watcher stands at the end, not after a guessed pause;
            # a watcher that fails before that ends the wait with its error.
            positioned = asyncio.create_task(ready.wait())
            await asyncio.wait({watcher, positioned}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                positioned.cancel()
                await watcher  # raises the watcher's error
            await _offer_load(bootstrap, topic.inbox, sent_at)
            await watcher

        asyncio.run(both())
    finally:
        stop_service(service)
    delays = sorted((arrived[k] - sent_at[k]) * 1000 for k in sent_at if k in arrived)
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


@dataclass
class Targets:
    """The figures of this run that the speed targets are set against."""

    raw_sqlite_events_per_s: float = 0.0  # float-ok: a benchmark rate, never money
    run_records_per_s: dict[str, float] = field(default_factory=dict)  # float-ok: rates

    def rows(
        self,
        ingest_events_per_s: float,
        replay_ratio: float,
        read: ReadFigures,
        memory: tuple[str, str, str],
    ) -> list[tuple[str, str, str]]:
        """(measure, target, figure) for each row of the speed issue's table."""
        share = ingest_events_per_s / self.raw_sqlite_events_per_s
        run = self.run_records_per_s
        return [
            (
                "`ledger ingest`, events/s as a share of the raw SQLite recorder",
                ">= 0.30",
                f"{share:.2f} ({ingest_events_per_s:,.0f} of "
                f"{self.raw_sqlite_events_per_s:,.0f} events/s)",
            ),
            (
                "`ledger run`, SQLite / PostgreSQL",
                ">= 20k / 15k records/s",
                f"{run.get('sqlite', 0):,.0f} / {run.get('pg', 0):,.0f} records/s",
            ),
            (
                "replay into every view (read from the store), share of raw decode",
                ">= 0.30",
                f"{replay_ratio:.2f}",
            ),
            *read.target_rows(),
            memory,
        ]


def embedded_rows(
    records: list[bytes], workdir: Path, targets: Targets
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """`ledger ingest` of the same records, replaying a journal into every view, and the
    reads of the ingested store; with the target rows."""
    inbox = workdir / "inbox.jsonl"
    inbox.write_bytes(b"".join(record + b"\n" for record in records))
    ingest, peak_mib, events = ingest_rate(inbox, workdir, len(records))
    store_url = f"sqlite:///{workdir / 'ingest.db'}"
    floor = decision_free_rate(inbox, store_url, workdir)
    replay = replay_benchmark(events=min(events, replay_events_max))
    read = read_figures(store_url, workdir)
    memory = memory_row(store_url)
    ingest_events_per_s = ingest * events / len(records)
    target_rows = targets.rows(ingest_events_per_s, replay.replay_to_decode_ratio, read, memory)
    return [
        (
            "`ledger ingest` (embedded, SQLite)",
            f"{ingest:,.0f} records/s, peak RSS {peak_mib:,.0f} MiB",
        ),
        (
            floor_row_name,
            f"{floor.events_per_s:,.0f} events/s "
            f"({floor.events_per_s / targets.raw_sqlite_events_per_s:.2f} of the raw SQLite "
            f"recorder; decode and digest {floor.decode_us_per_record:.1f} us a record, seal "
            f"{floor.seal_us_per_event:.1f} and append {floor.append_us_per_event:.1f} us an "
            "event)",
        ),
        (
            f"replay of {replay.events:,} journal events into every view",
            f"{replay.replay_events_per_s:,.0f} events/s read from the store "
            f"({replay.replay_to_decode_ratio:.1%} of msgspec decode; exported records, no "
            f"store: {replay.records_replay_to_decode_ratio:.1%}), "
            f"peak RSS {replay.peak_rss_mib:,.0f} MiB, load average {replay.load_before:.1f} "
            f"before, {replay.load_after:.1f} after",
        ),
    ], target_rows


def main() -> None:
    count = int(os.environ.get("BENCH_RECORDS") or default_records)
    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    records = hand_written_stream(42, 500, count)[:count]
    rows: list[tuple[str, str]] = []
    targets = Targets()
    with servers(workdir) as (bootstrap, pg_url):
        prefixes = {kind: f"bench-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("sqlite", "pg")}
        for prefix in prefixes.values():
            rate = asyncio.run(publish(bootstrap, prefix, records))
        rows.append(("`ledger publish` (acks=all, idempotent)", f"{rate:,.0f} records/s"))
        topic = TopicNames(prefixes["sqlite"]).inbox
        consume = asyncio.run(consume_decode_rate(bootstrap, topic, count))
        rows.append(("raw aiokafka consume + msgspec decode", f"{consume:,.0f} records/s"))
        stores = {"sqlite": f"sqlite:///{workdir / 'run.db'}", "pg": f"{pg_url}?schema=bench"}
        for kind, store in stores.items():
            scratch = store if kind == "pg" else f"sqlite:///{workdir / 'recorder.db'}"
            scratch = scratch.replace("schema=bench", "schema=bench_recorder")
            raw = bench_recorder(scratch, count, recorder_batch_events)
            if kind == "sqlite":
                targets.raw_sqlite_events_per_s = raw
            rows.append((f"raw recorder, {kind}, batches of 1,000", f"{raw:,.0f} events/s"))
            run = run_rate(store, bootstrap, prefixes[kind], count, workdir)
            targets.run_records_per_s[kind] = run.recorded_per_s
            ratio = run.recorded_per_s / min(raw, consume)
            rows.append(
                (
                    f"`ledger run` end to end, {kind}",
                    f"{run.recorded_per_s:,.0f} records/s recorded ({ratio:.0%} of the lower raw "
                    f"rate), {run.published_per_s:,.0f} published; CPU {run.service_cpu_s:.1f} s "
                    f"decisions' process + {run.children_cpu_s:.1f} s relay process",
                )
            )
        naive = naive_rate(records[:naive_records_max], workdir)
        rows.append(
            ("naive: one aggregate loaded and saved per record (SQLite)", f"{naive:,.0f} records/s")
        )
        p50, p99 = latency_ms(bootstrap, workdir)
        rows.append(
            (
                f"publish-to-journal latency at {latency_rate_per_s:,}/s (SQLite)",
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
            )
        )
    embedded, target_rows = embedded_rows(records, workdir, targets)
    rows.extend(embedded)
    demo = workdir / "demo"
    demo.mkdir()
    target_rows.append(check_row(default_demo_store(demo)))
    print(f"\n{count:,} inbox records\n\n| measure | figure |\n| --- | --- |")
    for name, figure in rows:
        print(f"| {name} | {figure} |")
    print("\nThe speed targets, against this run's raw rates\n")
    print("| measure | target | this run |\n| --- | --- | --- |")
    for name, target, figure in target_rows:
        print(f"| {name} | {target} | {figure} |")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
