"""The journal, rejects and checkpoint relays of `ledger run`, in a process of their own.

Publishing is Python work (the Kafka client builds and frames every record): on the
decisions' interpreter it took the GIL from them. In a child process it runs on the
second core. Nothing about exactly once changes: each relay still fences its
transactional id, checks the topic's tail against the store and publishes what the store
holds after it (consumers/journal_relay.py); the child reads the store itself.

The two processes talk over the child's standard input and output, one JSON object a line:

- the service writes the configuration first, then, whenever a batch is recorded, what
  the store holds (`{"positions": {"journal": seq, "rejects": n, "checkpoints": n},
  "done": [...]}`); a stream named in `done` will grow no more, and its relay ends once it
  has published all of it;
- the child writes each relay's progress (`{"relay", "published", "healthy"}`) for
  /health and /metrics.

The child ends with the service's exit statuses: 0 once every relay has drained, 3 when
fenced, 5 on a diverged topic, 1 on any other fault. The end of its standard input
without `done` means the service died (`kill -9`): the child stops at once, and the next
life's relays fence whatever it had in flight. SIGINT and SIGTERM are the service's to
act on: the child ignores them and drains when told.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumers.exit_status import EXIT_DIVERGED, EXIT_FAILED, EXIT_FENCED, EXIT_OK
from consumers.journal_relay import (
    Relay,
    RelayFenced,
    RelayProgress,
    TopicDiverged,
    check_checkpoints_tail,
    check_journal_tail,
    check_rejects_tail,
    read_checkpoints_batch,
    read_journal_batch,
    read_rejects_batch,
)
from consumers.log_format import configure_logging
from consumers.store_retry import backoff_retry
from consumers.topics import TopicNames
from ledger.store import LedgerStore

log = logging.getLogger("consumers.relay_process")

RELAY_STREAMS = ("journal", "rejects", "checkpoints")
relay_progress_interval_s = 0.05  # the child reports a relay's progress this often, at most
relay_process_stop_timeout_s = 5.0  # a cancelled service waits this long, then kills it
relay_message_bytes_max = 64 * 1024  # one line of the pipe, either way


class RelayProcessFailed(Exception):
    """The relay process ended with a status other than 0 (it logged why)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the relay process ended with status {status}")
        self.status = status


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """What the child needs: where the store and the broker are, and the topics' prefix.
    Sent over the pipe, never on the command line (a store URL may hold a password)."""

    store_url: str
    bootstrap: str
    prefix: str
    log_level: str


# -- the service's side -----------------------------------------------------------------


@dataclass
class RelayFeed:
    """What the service tells the relays: how far each stream goes, and which are done."""

    positions: Callable[[], dict[str, int]]
    changed: asyncio.Event  # set when a batch or a checkpoint is recorded, or a stream ends
    done: dict[str, asyncio.Event] = field(
        default_factory=lambda: {stream: asyncio.Event() for stream in RELAY_STREAMS}
    )


class RelayProcess:
    """Starts the child, feeds it the store's positions, and reads its progress."""

    def __init__(self, config: RelayConfig) -> None:
        self._config = config
        self.progress = {stream: RelayProgress() for stream in RELAY_STREAMS}

    async def run(self, feed: RelayFeed) -> None:
        """Until every relay has drained; raises RelayProcessFailed when the child fails.
        Cancelled, it stops the child (SIGTERM is ignored there: SIGKILL)."""
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "consumers.relay_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=relay_message_bytes_max,
        )
        stdin, stdout = child.stdin, child.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the relay process was started without its pipes")
        try:
            stdin.write(_line(vars(self._config)))
            reader = asyncio.create_task(self._read_progress(stdout), name="relay_progress")
            feeder = asyncio.create_task(self._feed(stdin, feed), name="relay_feed")
            status = await child.wait()
            await reader
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        except BaseException:
            if child.returncode is None:
                child.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), relay_process_stop_timeout_s)
            raise
        if status != EXIT_OK or not all(event.is_set() for event in feed.done.values()):
            if status not in (EXIT_FENCED, EXIT_DIVERGED):
                log.error("relay_process_ended status=%d", status)  # a signal is negative
                status = EXIT_FAILED
            raise RelayProcessFailed(status)

    async def _feed(self, stdin: asyncio.StreamWriter, feed: RelayFeed) -> None:
        while True:
            await feed.changed.wait()
            feed.changed.clear()
            done = [stream for stream, event in feed.done.items() if event.is_set()]
            stdin.write(_line({"positions": feed.positions(), "done": done}))
            with contextlib.suppress(ConnectionError):  # the child ended: run() says why
                await stdin.drain()
            if len(done) == len(RELAY_STREAMS):
                return

    async def _read_progress(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            message = json.loads(line)
            progress = self.progress[message["relay"]]
            progress.published, progress.healthy = message["published"], message["healthy"]


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


# -- the child's side -------------------------------------------------------------------


@dataclass
class _Stream:
    last: int = 0  # what the store holds, as the service last said
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def position(self) -> int:
        return self.last


def _relays(store: LedgerStore, config: RelayConfig, streams: dict[str, _Stream]) -> list[Relay]:
    names = TopicNames(config.prefix)
    # stream: (topic, position header, transactional id, store read, tail check)
    specs: dict[str, tuple[str, str, str, Callable[..., Any], Callable[..., None]]] = {
        "journal": (names.events, "seq", names.journal_transactional_id,
                    read_journal_batch, check_journal_tail),
        "rejects": (names.rejects, "number", names.rejects_transactional_id,
                    read_rejects_batch, check_rejects_tail),
        "checkpoints": (names.checkpoints, "number", names.checkpoints_transactional_id,
                        read_checkpoints_batch, check_checkpoints_tail),
    }  # fmt: skip
    return [
        Relay(
            name=name,
            bootstrap=config.bootstrap,
            topic=topic,
            transactional_id=transactional_id,
            header=header,
            read_batch=functools.partial(read, store),
            wake=streams[name].wake,
            check_tail=functools.partial(check, store),
        )
        for name, (topic, header, transactional_id, read, check) in specs.items()
    ]


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=relay_message_bytes_max)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _follow_service(reader: asyncio.StreamReader, streams: dict[str, _Stream]) -> None:
    """Read the service's positions until it has ended every stream. When the service is
    gone before that, end the process at once: no cleanup is owed (the store was only
    read; the next life's relays fence whatever transaction is open), and a cancelled
    Kafka client can swallow its cancellation and keep publishing, taking the CPU the
    next life needs to start."""
    while not all(stream.done.is_set() for stream in streams.values()):
        line = await reader.readline()
        if not line:
            log.error(
                "relay_process_orphaned: the service ended; the next start publishes the rest"
            )
            logging.shutdown()
            os._exit(EXIT_FAILED)
        message = json.loads(line)
        for name, last in message["positions"].items():
            streams[name].last = last
            streams[name].wake.set()
        for name in message["done"]:
            streams[name].done.set()


def _send_progress(relays: list[Relay], sent: dict[str, tuple[int, bool]]) -> None:
    """Each relay's progress to the service, when it changed since `sent`."""
    for relay in relays:
        now = (relay.progress.published, relay.progress.healthy)
        if sent.get(relay.name) != now:
            sent[relay.name] = now
            message = {"relay": relay.name, "published": now[0], "healthy": now[1]}
            with contextlib.suppress(BrokenPipeError):  # the service is gone: nobody asks
                sys.stdout.buffer.write(_line(message))
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.buffer.flush()


async def _report(relays: list[Relay], sent: dict[str, tuple[int, bool]]) -> None:
    while True:
        _send_progress(relays, sent)
        await asyncio.sleep(relay_progress_interval_s)


async def _publish() -> int:
    reader = await _stdin_reader()
    first = await reader.readline()
    if not first:
        return EXIT_FAILED
    config = RelayConfig(**json.loads(first))
    configure_logging(config.log_level)
    # A reader: the service writes the store (and created it before starting this process).
    store = await backoff_retry(
        lambda: LedgerStore.open(config.store_url, read_only=True), "open_store"
    )
    streams = {name: _Stream() for name in RELAY_STREAMS}
    relays = _relays(store, config, streams)
    tasks = {
        asyncio.create_task(
            relay.run(streams[relay.name].done, streams[relay.name].position),
            name=relay.name,
        )
        for relay in relays
    }
    following = asyncio.create_task(_follow_service(reader, streams), name="service")
    sent: dict[str, tuple[int, bool]] = {}
    reporting = asyncio.create_task(_report(relays, sent), name="report")
    status = EXIT_FAILED  # what a cancellation of this coroutine leaves
    try:
        status = await _first_end(tasks, following)
    finally:
        await _stop([*tasks, following, reporting], status)
        _send_progress(relays, sent)  # the last word: what /health says at the stop
        await _close_store(store)
    return status


async def _first_end(tasks: set[asyncio.Task[None]], following: asyncio.Task[None]) -> int:
    """EXIT_OK once every relay has drained; the status of the first task that failed."""
    pending: set[asyncio.Task[None]] = {*tasks, following}
    while tasks & pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            return _failure_status(failed[0])
    return EXIT_OK


async def _stop(tasks: list[asyncio.Task[None]], status: int) -> None:
    """Cancel `tasks` and wait for them, at most `relay_process_stop_timeout_s`. A Kafka
    client can swallow its cancellation (a relay still starting went on to check its tail
    after another relay's alarm); waiting for it, here or in asyncio.run's own teardown,
    would keep the service from ever hearing the status. Past the bound the process ends
    with `status` at once: the store was only read, and the next life fences the rest."""
    for task in tasks:
        task.cancel()
    try:
        async with asyncio.timeout(relay_process_stop_timeout_s):
            await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        log.error(
            "relay_process_stop_timeout: a relay ignored its cancellation for %.0f s; "
            "ending with status %d",
            relay_process_stop_timeout_s,
            status,
        )
        logging.shutdown()
        os._exit(status)


async def _close_store(store: LedgerStore) -> None:
    """Close the store once no worker thread still reads it: a cancelled relay leaves its
    blocking read running, and closing SQLite under it can crash the interpreter. Past
    the wait the store is left open; the process is ending."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(relay_process_stop_timeout_s):
            await asyncio.get_running_loop().shutdown_default_executor()
            store.close()


def _failure_status(task: asyncio.Task[None]) -> int:
    error = task.exception()
    if isinstance(error, TopicDiverged):
        # The alarm names the stream: `journal_topic_diverged`, `rejects_topic_diverged`...
        log.critical("alarm=%s_topic_diverged detail=%s", task.get_name(), error)
        return EXIT_DIVERGED
    log.error("task_failed task=%s error=%r", task.get_name(), error, exc_info=error)
    return EXIT_FENCED if isinstance(error, RelayFenced) else EXIT_FAILED


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return asyncio.run(_publish())


if __name__ == "__main__":
    raise SystemExit(main())
