"""`ledger run`: the sequencer service. The inbox ingest, the checkpoint writer, the health
endpoint and the progress logs, and the relays in a child process of their own
(consumers/relay_process.py), until SIGTERM or SIGINT.

Shutdown finishes the inbox batch in hand, then lets the relays publish everything the
store holds, then closes the clients. A crash at any moment loses and duplicates nothing:
the store records each batch with its inbox position, and the relays resume after what
their topic already holds (docs/pipeline.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import CoordinatorNotAvailableError, KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers import kafka_security
from consumers.checkpoint_writer import CheckpointWriter
from consumers.exit_status import (
    EXIT_FAILED,
    EXIT_FENCED,
    EXIT_OK,
    EXIT_UNDECIDABLE,
)
from consumers.health import start_health_server
from consumers.inbox import InboxIngest, IngestState, inbox_consumer
from consumers.metrics import ServiceReading, metrics_text
from consumers.probes import probe_broker, probe_store
from consumers.relay_process import RelayConfig, RelayFeed, RelayProcess, RelayProcessFailed
from consumers.store_retry import backoff_retry
from consumers.topics import TopicNames, ensure_topics
from ledger.application import LedgerApplication, UndecidableRecord
from ledger.checkpoints import checkpoint_interval_default_s
from ledger.invariants import InvariantViolation
from ledger.limits import snapshot_interval_events
from ledger.policy import Policy
from ledger.store import LedgerStore

log = logging.getLogger("consumers.service")
# The collector's first generation is collected when this many more objects have been made
# than freed (Python's default: 700). Deciding a batch pauses the collector
# (`ledger.application`); between batches, consuming and handing records over leaves no
# cyclic garbage, yet at 700 the collector ran 340 times per 100,000 records (0.28 s of
# 18 s of CPU, its three generations together); at 20,000, 5 times (0.025 s): 1.4% of the
# writer's CPU, as the API's workers do (`app.api.api_gc_young_objects_max`,
# docs/performance.md).
writer_gc_young_objects_max = 20_000

progress_log_interval_s = 5.0  # while records move
idle_progress_log_interval_s = 60.0  # when nothing moves: the service is alive
shutdown_drain_timeout_s = 30.0  # SIGTERM to exit: finish the batch, publish what the store holds
shutdown_close_timeout_s = 5.0  # then closing the Kafka clients, past the drain, at most
broker_wait_default_s = 60.0  # at start, wait this long for the broker (--broker-wait)
broker_wait_backoff_s = 1.0  # between attempts to reach it meanwhile


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    store_url: str
    bootstrap: str
    names: TopicNames
    policy: Policy
    health_host: str
    health_port: int  # 0: no health endpoint
    inbox_partitions: int
    replication_factor: int
    snapshot_events: int = snapshot_interval_events  # journal events between book snapshots
    drain_timeout_s: float = shutdown_drain_timeout_s  # float-ok: seconds from SIGTERM to exit
    broker_wait_s: float = broker_wait_default_s  # float-ok: seconds to wait for the broker
    checkpoint_key: Ed25519PrivateKey | None = None  # None: no signed checkpoints written
    checkpoint_interval_s: float = checkpoint_interval_default_s  # float-ok: seconds


@dataclass
class _Parts:
    store: LedgerStore
    state: IngestState
    ingest: InboxIngest
    checkpoint_writer: CheckpointWriter
    relays: RelayProcess
    feed: RelayFeed


class HealthAddressRefused(Exception):
    """The health endpoint cannot listen where it is told: one line naming the settings."""


class BrokerUnreachable(Exception):
    """At start, the broker did not answer within the broker wait: one line naming it."""


async def _create_topics(settings: ServiceSettings) -> None:
    """Create the missing topics, waiting up to `broker_wait_s` for the broker to answer.

    A broker that is starting (Compose starts both at once) is normal: one line says the
    service waits, and the Kafka client's own connection errors stay out of the log
    meanwhile (they would repeat every attempt). Past the wait, `BrokerUnreachable`."""
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + settings.broker_wait_s
    client_log = logging.getLogger("aiokafka")
    client_level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    waiting = False
    try:
        while True:
            try:
                async with asyncio.timeout(max(deadline_s - loop.time(), 0.0)):
                    await ensure_topics(
                        settings.bootstrap,
                        settings.names,
                        inbox_partitions=settings.inbox_partitions,
                        replication_factor=settings.replication_factor,
                    )
                break
            except (KafkaError, TimeoutError) as error:
                remaining_s = deadline_s - loop.time()
                if remaining_s <= 0:
                    detail = str(error).splitlines()[0] if str(error) else "no answer"
                    raise BrokerUnreachable(
                        f"the Kafka broker at {settings.bootstrap} did not answer within "
                        f"{settings.broker_wait_s:g} s (--broker-wait): {detail}"
                    ) from None
                if not waiting:
                    waiting = True
                    log.warning(
                        "waiting_for_broker bootstrap=%s wait_s=%g",
                        settings.bootstrap, settings.broker_wait_s,
                    )  # fmt: skip
                await asyncio.sleep(min(broker_wait_backoff_s, remaining_s))
    finally:
        client_log.setLevel(client_level)
    if waiting:
        log.info("broker_answered bootstrap=%s", settings.bootstrap)


def _build(settings: ServiceSettings, store: LedgerStore, app: LedgerApplication) -> _Parts:
    state = IngestState()
    ingest = InboxIngest(
        consumer=inbox_consumer(settings.bootstrap, settings.names),
        app=app,
        build_app=lambda: LedgerApplication(store, settings.policy, settings.snapshot_events),
        names=settings.names,
        state=state,
        bootstrap=settings.bootstrap,
    )
    writer = CheckpointWriter(
        store, settings.checkpoint_key, settings.checkpoint_interval_s, state.recorded
    )
    relays = RelayProcess(
        RelayConfig(
            store_url=settings.store_url,
            bootstrap=settings.bootstrap,
            prefix=settings.names.prefix,
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )
    )
    feed = RelayFeed(
        positions=lambda: {
            "journal": state.journal_seq,
            "rejects": state.reject_count,
            "checkpoints": writer.count,
        },
        changed=state.recorded,
    )
    return _Parts(store, state, ingest, writer, relays, feed)


def _snapshot(parts: _Parts) -> Callable[[], dict[str, Any]]:
    def document() -> dict[str, Any]:
        progress = parts.relays.progress
        healthy = _store_up(parts) and _broker_up(parts)
        return {
            "status": "ok" if healthy else "degraded",
            "journal_seq": parts.state.journal_seq,
            "published_seq": progress["journal"].published,
            "rejects": parts.state.reject_count,
            "rejects_published": progress["rejects"].published,
            "inbox_lag": sum(parts.state.lag.values()),
        }

    return document


def _metrics(parts: _Parts) -> Callable[[], str]:
    def text() -> str:
        state = parts.state
        progress = parts.relays.progress
        return metrics_text(
            ServiceReading(
                lag=dict(state.lag),
                records=state.records,
                journal_seq=state.journal_seq,
                counters=state.counters,
                relay_lag={
                    "journal": max(state.journal_seq - progress["journal"].published, 0),
                    "rejects": max(state.reject_count - progress["rejects"].published, 0),
                    "checkpoints": max(
                        parts.checkpoint_writer.count - progress["checkpoints"].published, 0
                    ),
                },
                store_up=_store_up(parts),
                broker_up=_broker_up(parts),
            )
        )

    return text


def _store_up(parts: _Parts) -> bool:
    """The last batch reached the store, and so did the last probe."""
    return parts.state.store_healthy and parts.state.store_answered


def _broker_up(parts: _Parts) -> bool:
    """The broker answered the last probe and every relay reaches it."""
    relays = parts.relays.progress.values()
    return parts.state.broker_healthy and all(p.healthy for p in relays)


def _moved(parts: _Parts) -> tuple[int, ...]:
    """What the progress line reports; a change is worth a line."""
    state = parts.state
    return (
        state.records,
        sum(state.lag.values()),
        parts.relays.progress["journal"].published,
        parts.relays.progress["rejects"].published,
    )


async def _log_progress(parts: _Parts) -> None:
    """Position, lag and rate per inbox partition, as key=value: every few seconds while
    something moves, and once a minute when idle."""
    records_before, before_s = parts.state.records, time.monotonic()
    last_moved, logged_s = _moved(parts), time.monotonic()
    while True:
        await asyncio.sleep(progress_log_interval_s)
        now_s = time.monotonic()
        moved = _moved(parts)
        if moved == last_moved and now_s - logged_s < idle_progress_log_interval_s:
            continue
        last_moved, logged_s = moved, now_s
        rate = (parts.state.records - records_before) / max(now_s - before_s, 1e-9)
        records_before, before_s = parts.state.records, now_s
        for (topic, partition), offset in sorted(parts.state.positions.items()):
            log.info(
                "progress topic=%s partition=%d offset=%d lag=%d seq=%d published_seq=%d "
                "rejects=%d rejects_published=%d records_per_s=%.0f",
                topic, partition, offset, parts.state.lag.get((topic, partition), 0),
                parts.state.journal_seq, parts.relays.progress["journal"].published,
                parts.state.reject_count, parts.relays.progress["rejects"].published, rate,
            )  # fmt: skip


def _install_signals(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)


class CoordinatorNotYetAvailable(logging.Filter):
    """aiokafka logs at ERROR that a fresh broker has no group coordinator yet, and retries
    by itself; the ledger uses the group only to commit offsets for lag tools. Not an
    operator's error: it is logged at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if any(isinstance(arg, CoordinatorNotAvailableError) for arg in _args(record)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            # The logger let it through as an ERROR: at INFO it passes only if INFO is on.
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def _args(record: logging.LogRecord) -> tuple[object, ...]:
    args = record.args
    return args if isinstance(args, tuple) else ()


COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"


async def run_service(settings: ServiceSettings) -> int:
    """Run until SIGTERM/SIGINT; the exit status of `ledger run`.

    A stop is honoured in every state within `drain_timeout_s` (plus closing the clients):
    before the service serves (opening the store, replaying, waiting for the broker) it
    ends at once, since nothing was decided yet; while it serves, the batch in hand is
    finished and the relays publish what they can until the deadline. Whatever is still
    running then (a broker or a store that does not answer) is cancelled: the store holds
    every decision, and the next start publishes the rest."""
    stopping = asyncio.Event()
    serving = asyncio.Event()
    _install_signals(stopping)
    coordinator_log = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, CoordinatorNotYetAvailable) for f in coordinator_log.filters):
        coordinator_log.addFilter(CoordinatorNotYetAvailable())
    body = asyncio.create_task(_start_and_serve(settings, stopping, serving), name="service")
    stop_asked = asyncio.create_task(_until(stopping), name="stop_asked")
    try:
        await asyncio.wait({body, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
        if not body.done():
            return await _stop(body, serving.is_set(), settings.drain_timeout_s)
        return body.result()
    finally:
        stop_asked.cancel()


async def _stop(
    body: asyncio.Task[int],
    serving: bool,
    drain_timeout_s: float,  # float-ok: seconds
) -> int:
    """Wait for the service to drain within its deadline; past it, cancel what is left."""
    if serving:
        deadline_s = drain_timeout_s + shutdown_close_timeout_s
        done, _ = await asyncio.wait({body}, timeout=deadline_s)
        if done:
            return body.result()
        log.error("shutdown_timeout after_s=%.0f: cancelled; the next start resumes", deadline_s)
    else:
        log.info("stopped_while_starting: nothing was decided yet")
    body.cancel()
    await asyncio.wait({body}, timeout=shutdown_close_timeout_s)
    return EXIT_FAILED if serving else EXIT_OK


async def _start_and_serve(
    settings: ServiceSettings, stopping: asyncio.Event, serving: asyncio.Event
) -> int:
    gc.set_threshold(writer_gc_young_objects_max, *gc.get_threshold()[1:])
    # Check the Kafka security settings before a long replay; the log never shows a password.
    security = kafka_security.KafkaSecurity.from_environment()
    security.client_options()
    log.info("kafka_security %s", security.describe())
    store = await backoff_retry(lambda: LedgerStore.open(settings.store_url), "open_store")
    try:
        app = await backoff_retry(
            lambda: LedgerApplication(store, settings.policy, settings.snapshot_events),
            "replay_journal",
        )
        log.info(
            "replayed store=%s journal_seq=%d snapshot_seq=%d tail_events=%d",
            store.describe(),
            app.book.last_seq,
            app.snapshot_seq,  # after an upgrade: `ledger store snapshot`'s, or 0 (seq 1)
            app.replayed_events,
        )
        await _create_topics(settings)
        parts = _build(settings, store, app)
        await backoff_retry(parts.checkpoint_writer.resume, "read_checkpoints")
        return await _serve(settings, parts, stopping, serving)
    finally:
        if await _store_work_done():
            store.close()


async def _store_work_done() -> bool:
    """Wait for the store work still running in worker threads; whether it ended in time.

    A cancelled task leaves its blocking store call running in its thread: closing the
    store under it can crash the interpreter inside SQLite. Past the wait the store is left
    open; the process is ending, and the threads end with it."""
    try:
        async with asyncio.timeout(shutdown_close_timeout_s):
            await asyncio.get_running_loop().shutdown_default_executor()
    except TimeoutError:
        log.error(
            "store_work_still_running after_s=%.0f: the store is left open",
            shutdown_close_timeout_s,
        )
        return False
    return True


async def _serve(
    settings: ServiceSettings, parts: _Parts, stopping: asyncio.Event, serving: asyncio.Event
) -> int:
    server = None
    consumer = parts.ingest.consumer
    try:
        if settings.health_port:
            server = await _health_server(settings, parts)
        await consumer.start()
        await parts.ingest.assign_all()
        serving.set()
        return await _supervise(parts, stopping, settings.drain_timeout_s)
    finally:
        await _close_consumer(consumer)
        if server is not None:
            server.close()
            await server.wait_closed()


async def _health_server(settings: ServiceSettings, parts: _Parts) -> asyncio.Server:
    host, port = settings.health_host, settings.health_port
    try:
        return await start_health_server(host, port, _snapshot(parts), _metrics(parts))
    except OSError as error:  # a port another program holds, a host that does not resolve
        # asyncio's text is "error while attempting to bind on address (...): <reason>".
        reason = (error.strerror or str(error)).rsplit(": ", 1)[-1]
        raise HealthAddressRefused(
            f"--health-host {host} --health-port {port} ($LEDGER_HEALTH_HOST, "
            f"$LEDGER_HEALTH_PORT): cannot listen there: {reason}"
        ) from error


def _service_tasks(parts: _Parts, stopping: asyncio.Event) -> set[asyncio.Task[None]]:
    """The ingest, the checkpoint writer and the relay process. The journal and rejects
    relays drain once the ingest has stopped, the checkpoint relay once the writer has
    signed the journal's end."""
    ingest_done = asyncio.Event()
    done = parts.feed.done

    def ended(*streams: str) -> None:
        for stream in streams:
            done[stream].set()
        parts.feed.changed.set()

    async def ingest() -> None:
        try:
            await parts.ingest.run(stopping)
        finally:
            ingest_done.set()
            parts.state.first_poll_done.set()  # a stop before the first poll still drains
            ended("journal", "rejects")

    async def checkpoint() -> None:
        try:  # the last checkpoint is of the journal's end, once the ingest has stopped
            await parts.checkpoint_writer.run(ingest_done)
        finally:
            ended("checkpoints")

    async def relays() -> None:
        # Decisions first: the relay process (an interpreter to start, Kafka clients, a
        # backlog to publish) starts once the first poll is recorded, so that a restart
        # under load records its first batch without the child taking the CPU meanwhile.
        await parts.state.first_poll_done.wait()
        await parts.relays.run(parts.feed)

    return {
        asyncio.create_task(ingest(), name="ingest"),
        asyncio.create_task(checkpoint(), name="checkpoint_writer"),
        asyncio.create_task(relays(), name="relays"),
    }


async def _supervise(
    parts: _Parts,
    stopping: asyncio.Event,
    drain_timeout_s: float,  # float-ok: seconds
) -> int:
    """Run the tasks; stop all when one fails. The relays drain after what feeds them has
    stopped, all within `drain_timeout_s` of the stop."""
    tasks = _service_tasks(parts, stopping)
    progress = asyncio.create_task(_log_progress(parts), name="progress")
    probes = [
        asyncio.create_task(probe_broker(parts.ingest.consumer, parts.state), name="broker_probe"),
        asyncio.create_task(probe_store(parts.store, parts.state), name="store_probe"),
    ]
    status = EXIT_OK
    loop = asyncio.get_running_loop()
    stop_asked = asyncio.create_task(_until(stopping), name="stop_asked")
    deadline_s: float | None = None  # float-ok: a monotonic clock reading
    try:
        pending = set(tasks)
        while pending:
            if deadline_s is None and stopping.is_set():
                deadline_s = loop.time() + drain_timeout_s
            timeout = None if deadline_s is None else max(deadline_s - loop.time(), 0.0)
            watched = pending if deadline_s is not None else {*pending, stop_asked}
            done, _ = await asyncio.wait(
                watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            done.discard(stop_asked)
            pending -= done
            if timeout is not None and not done and pending:
                log.error("shutdown_timeout unpublished=%s", sorted(t.get_name() for t in pending))
                status = EXIT_FAILED
                break
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                status = _failure_status(failed[0])
                break
    finally:
        stopping.set()
        for task in [*tasks, progress, *probes, stop_asked]:
            task.cancel()
        await asyncio.gather(*tasks, progress, *probes, stop_asked, return_exceptions=True)
    log.info(
        "stopped status=%d journal_seq=%d published_seq=%d",
        status, parts.state.journal_seq, parts.relays.progress["journal"].published,
    )  # fmt: skip
    return status


async def _close_consumer(consumer: Any) -> None:
    """Close the inbox consumer, bounded: with the broker gone, closing would retry for as
    long as it is away. aiokafka's fetcher lets the CancelledError of its own fetch task
    out of `stop()`; only a cancellation of this task itself is passed on."""
    try:
        async with asyncio.timeout(shutdown_close_timeout_s):
            await consumer.stop()
    except (KafkaError, TimeoutError):
        log.info("consumer_close_skipped")
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.info("consumer_close_cancelled_inside_client")


async def _until(event: asyncio.Event) -> None:
    await event.wait()


def _failure_status(task: asyncio.Task[None]) -> int:
    error = task.exception()
    if isinstance(error, UndecidableRecord):
        # One line an operator acts on; the traceback is for whoever fixes the ledger.
        item = error.item
        log.error(
            "undecidable_record topic=%s partition=%s offset=%s error=%s action=%s",
            item.topic, item.partition, item.offset,
            f"{type(error.error).__name__}: {error.error}",
            f"fix the ledger, or: ledger inbox skip {item.describe()} --reason TEXT",
        )  # fmt: skip
        log.debug("undecidable_record_traceback", exc_info=error.error)
        return EXIT_UNDECIDABLE
    if isinstance(error, RelayProcessFailed):
        # The relay process logged why (an alarm, a fencing, a fault): its status says it.
        log.error("relays_stopped status=%d", error.status)
        return error.status
    log.error("task_failed task=%s error=%r", task.get_name(), error, exc_info=error)
    if isinstance(error, InvariantViolation):
        return EXIT_FENCED
    return EXIT_FAILED
