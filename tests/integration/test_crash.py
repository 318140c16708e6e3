"""`ledger run` killed with SIGKILL at random (seeded) instants, and the broker or the
database restarted under it: at the end every journal record is on the events topic once
and in order, the chain verifies, and the journal is byte for byte `ledger ingest`'s."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumers.publish import publish_records
from consumers.topics import TopicNames, ensure_topics
from ledger.journal import verify_journal
from tests.conftest import free_port, run_server_script
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    hostile_records,
    last_header,
    read_topic,
    reference_journal,
    start_service,
    stop_service,
    store_journal,
    store_rejects,
    wait_until,
    write_lines,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
crash_records = 5_000
publish_chunk_records = 150
publish_pause_s = 0.6
kills = 12
kill_after_min_s = 0.4
kill_after_max_s = 3.5
outage_s = 8.0  # longer than the store's and clients' own quick retries
finish_timeout_s = 240.0


class Feeder(threading.Thread):
    """Publishes the inbox a chunk at a time while the service lives and dies."""

    def __init__(self, bootstrap: str, prefix: str, records: list[bytes]) -> None:
        super().__init__(daemon=True)
        self._kafka = bootstrap
        self._names = TopicNames(prefix)
        self._records = records
        self.error: BaseException | None = None
        # Chunks are published only while it is set: a test pauses the inbox while no
        # ledger runs, so that the records arrive while one is at work.
        self.publishing = threading.Event()
        self.publishing.set()

    def run(self) -> None:
        try:
            asyncio.run(ensure_topics(self._kafka, self._names))
            for start in range(0, len(self._records), publish_chunk_records):
                self.publishing.wait()
                chunk = self._records[start : start + publish_chunk_records]
                self._publish(chunk)
                time.sleep(publish_pause_s)
        except BaseException as error:  # reported by the test, not swallowed
            self.error = error

    def _publish(self, chunk: list[bytes]) -> None:
        # A broker restart can fail a send: republish the chunk. Duplicate inbox records
        # carry the same event_id and content, so the ledger books them once.
        for _attempt in range(30):
            try:
                asyncio.run(publish_records(self._kafka, self._names.inbox, chunk))
                return
            except Exception:
                time.sleep(1.0)
        raise TimeoutError("the inbox chunk could not be published")


def _records(tmp_path: Path) -> tuple[list[bytes], Path]:
    records = hand_written_stream(2024, 25, crash_records) + [r for r, _ in hostile_records()]
    return records, write_lines(tmp_path / "inbox.jsonl", records)


def _finish_and_check(
    store: str,
    bootstrap: str,
    prefix: str,
    tmp_path: Path,
    *,
    inbox: Path,
    feeder: Feeder,
    service: subprocess.Popen[bytes] | None = None,
) -> None:
    """Let `service` (or a new `ledger run`) finish the inbox; then check everything."""
    feeder.publishing.set()
    feeder.join(timeout=finish_timeout_s)
    assert feeder.error is None, feeder.error
    expected = reference_journal(inbox, tmp_path)
    reference_rejects = store_rejects(f"sqlite:///{tmp_path / 'reference.db'}")
    log = tmp_path / "run.log"
    if service is None:
        service = start_service(store, bootstrap, prefix, log, free_port())
    try:
        wait_until(
            lambda: (
                last_header(bootstrap, f"{prefix}events", "seq") >= len(expected)
                and last_header(bootstrap, f"{prefix}rejects", "number") >= len(reference_rejects)
            ),
            finish_timeout_s,
            "the whole journal and every reject on their topics",
        )
    finally:
        assert stop_service(service) == 0, log.read_text()[-3000:]
    journal = store_journal(store)
    assert len(journal) == len(expected), (len(journal), len(expected))
    assert journal == expected, "the journal of `ledger ingest`, byte for byte"
    published = read_topic(bootstrap, f"{prefix}events")
    assert [int(r.headers["seq"]) for r in published] == list(range(1, len(expected) + 1))
    assert [r.value for r in published] == expected
    assert verify_journal(r.value for r in published).ok
    rejects = read_topic(bootstrap, f"{prefix}rejects")
    assert [int(r.headers["number"]) for r in rejects] == list(range(1, len(rejects) + 1))
    stored_rejects = store_rejects(store)
    assert [json.loads(r.value) for r in rejects] == stored_rejects, "rejects published once"
    # An inbox chunk republished after a broker error repeats records; only those without
    # an event_id (malformed) can be refused twice, so the count may exceed the reference.
    assert len(stored_rejects) >= len(reference_rejects)


def test_kill_nine_at_random_instants_loses_and_duplicates_nothing(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(20261124)
    store = f"sqlite:///{tmp_path / 'run.db'}"
    records, inbox = _records(tmp_path)
    feeder = Feeder(kafka_bootstrap, kafka_topic_prefix, records)
    feeder.publishing.clear()
    feeder.start()
    log = tmp_path / "run.log"
    killed_at: list[int] = []  # the journal's last seq after each kill
    for kill in range(kills):
        # Every other kill counts its instant from the service's readiness: on a loaded
        # machine the start alone can outlast kill_after_max_s, and every kill then fell
        # before the first decision. The others may land in the start (replay, clients).
        ready = kill % 2 == 1
        service = start_service(
            store, kafka_bootstrap, kafka_topic_prefix, log, free_port() if ready else 0
        )
        feeder.publishing.set()
        time.sleep(rng.uniform(kill_after_min_s, kill_after_max_s))  # the random instant
        service.send_signal(signal.SIGKILL)
        feeder.publishing.clear()
        service.wait(timeout=30)
        killed_at.append(len(store_journal(store)))
    _finish_and_check(
        store, kafka_bootstrap, kafka_topic_prefix, tmp_path, inbox=inbox, feeder=feeder
    )
    # The kills interrupted a ledger at work, not one still starting or already idle: the
    # journal grew between kills and several kills left it short of its end.
    final = len(store_journal(store))
    mid_journal = {seq for seq in killed_at if 0 < seq < final}
    assert len(mid_journal) >= 3, killed_at


def _with_outage_in_the_middle(
    store: str, bootstrap: str, prefix: str, tmp_path: Path, outage: Callable[[], None]
) -> None:
    """One `ledger run` lives through the outage, while the inbox keeps arriving."""
    records, inbox = _records(tmp_path)
    feeder = Feeder(bootstrap, prefix, records)
    feeder.start()
    service = start_service(store, bootstrap, prefix, tmp_path / "run.log", free_port())
    wait_until(
        lambda: last_header(bootstrap, f"{prefix}events", "seq") > 0,
        finish_timeout_s,
        "the first journal records on the events topic",
    )
    outage()
    assert service.poll() is None, "the service survives the outage"
    _finish_and_check(
        store, bootstrap, prefix, tmp_path, inbox=inbox, feeder=feeder, service=service
    )


@pytest.fixture
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A broker of this test alone (it is stopped and started): its environment."""
    environment = {
        "LEDGER_KAFKA_PORT": str(free_port()),
        "LEDGER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGER_KAFKA_DATA": str(tmp_path_factory.mktemp("kafka-private")),
    }
    run_server_script("kafka", "start", environment)
    try:
        yield environment
    finally:
        run_server_script("kafka", "stop", environment)


def test_broker_restart_in_the_middle(
    private_kafka: dict[str, str], kafka_topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{private_kafka['LEDGER_KAFKA_PORT']}"

    def restart_broker() -> None:
        run_server_script("kafka", "stop", private_kafka)
        time.sleep(outage_s)
        run_server_script("kafka", "start", private_kafka)

    store = f"sqlite:///{tmp_path / 'run.db'}"
    _with_outage_in_the_middle(store, bootstrap, kafka_topic_prefix, tmp_path, restart_broker)


@pytest.fixture
def private_postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of this test alone (it is stopped and started)."""
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-pg-private-"))
    environment = {"LEDGER_PG_PORT": str(free_port()), "LEDGER_PG_DATA": str(data_dir)}
    try:
        environment["url"] = run_server_script("postgres", "start", environment)
        yield environment
    finally:
        try:
            run_server_script("postgres", "stop", environment)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def test_postgres_restart_in_the_middle(
    private_postgres: dict[str, str], kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    def restart_postgres() -> None:
        run_server_script("postgres", "stop", private_postgres)
        time.sleep(outage_s)
        run_server_script("postgres", "start", private_postgres)

    store = f"{private_postgres['url']}?schema=crash"
    _with_outage_in_the_middle(
        store, kafka_bootstrap, kafka_topic_prefix, tmp_path, restart_postgres
    )
