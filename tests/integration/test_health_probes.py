"""What `ledger run` asks to fill its /health: the store on a connection of its own, the
broker with the cheapest request it answers.

Before: during a PostgreSQL outage /health said `ok` until a batch waited out the writer's
connection pool (10 s), and for as long as the outage lasted while the inbox was idle; the
broker probe asked for the metadata of every topic of the cluster every 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from consumers.probes import ask_broker, store_probe_interval_s
from consumers.topics import kafka_connection
from ledger.store import store_probe_timeout_s
from tests.conftest import ServerStartError, free_port, run_server_script
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    health,
    run_ledger,
    wait_until,
    write_lines,
)
from tests.integration.test_shutdown import _start as start_with_health
from tests.integration.test_shutdown import ready_timeout_s

pytestmark = pytest.mark.integration
# A probe every 2 s, bounded by twice its 2 s timeout, and a margin for a loaded machine.
# Before the fix an idle service said `ok` for the whole outage.
store_outage_noticed_within_s = store_probe_interval_s + 2 * store_probe_timeout_s + 6.0


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, dict[str, str]]]:
    """A PostgreSQL server of this test alone, which the test stops and starts."""
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-pg-probe-"))  # see conftest.postgres_url
    environment = {"LEDGER_PG_PORT": str(free_port()), "LEDGER_PG_DATA": str(data_dir)}
    try:
        yield run_server_script("postgres", "start", environment), environment
    finally:
        with contextlib.suppress(ServerStartError):  # the test stopped it already
            run_server_script("postgres", "stop", environment)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_health_says_degraded_within_seconds_of_a_postgres_outage_and_ok_after_it(
    private_postgres: tuple[str, dict[str, str]],
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
) -> None:
    store, environment = private_postgres
    port, log = free_port(), tmp_path / "run.log"
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(3, 3, 30))
    run_ledger(store, kafka_bootstrap, kafka_topic_prefix, "publish", str(inbox))
    service = start_with_health(store, kafka_bootstrap, kafka_topic_prefix, log, port)
    try:
        wait_until(
            lambda: (h := health(port)) is not None and h["inbox_lag"] == 0
            and h["status"] == "ok" and h["published_seq"] == h["journal_seq"],
            ready_timeout_s,
            "the inbox decided and published, /health ok",
        )  # fmt: skip
        run_server_script("postgres", "stop", environment)
        stopped = time.monotonic()
        wait_until(
            lambda: (h := health(port)) is not None and h["status"] == "degraded",
            store_outage_noticed_within_s,
            "/health degraded while the inbox is idle",
        )
        print(f"degraded {time.monotonic() - stopped:.1f} s after the server stopped")
        assert "store_unreachable" in log.read_text()
        run_server_script("postgres", "start", environment)
        wait_until(
            lambda: (h := health(port)) is not None and h["status"] == "ok",
            ready_timeout_s,
            "/health ok again",
        )
    finally:
        service.send_signal(signal.SIGTERM)
        status = service.wait(timeout=60)
    text = log.read_text()
    assert status == 0, text[-3000:]
    assert (text.count("store_unreachable"), text.count("store_answered")) == (1, 1)
    assert "Traceback" not in text


def test_the_broker_probe_asks_for_no_topic_and_creates_none(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    async def probe() -> tuple[object, set[str]]:
        consumer = AIOKafkaConsumer(**kafka_connection(kafka_bootstrap, "probe-test"))
        await consumer.start()
        try:
            answer = await ask_broker(consumer)
            return answer, await consumer.topics()
        finally:
            await consumer.stop()

    answer, topics = asyncio.run(probe())
    assert answer.topics == []  # type: ignore[attr-defined]  # aiokafka is untyped
    assert len(answer.brokers) == 1  # type: ignore[attr-defined]
    assert not any(topic.startswith(kafka_topic_prefix) for topic in topics)
