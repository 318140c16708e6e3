"""`ledger run` serves GET /metrics in Prometheus text format: inbox lag per partition,
records and events counters, rejects by reason, relay lag, store and broker health, and
the batch-duration histogram, with one Content-Type."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaConnectionError

from consumers.health import start_health_server
from consumers.metrics import (
    BATCH_SECONDS_BUCKETS,
    METRICS_CONTENT_TYPE,
    Histogram,
    ServiceCounters,
    ServiceReading,
    metrics_text,
)
from consumers.service import CoordinatorNotYetAvailable


def reading() -> ServiceReading:
    counters = ServiceCounters(events=42, rejects_by_reason=Counter(malformed_json=2))
    counters.batch_seconds.observe(0.003)
    counters.batch_seconds.observe(0.2)
    return ServiceReading(
        lag={("ledger.inbox", 0): 7, ("ledger.inbox", 1): 0},
        records=120,
        journal_seq=300,
        counters=counters,
        relay_lag={"journal": 5, "rejects": 0},
        store_up=True,
        broker_up=False,
    )


def test_the_metrics_text_holds_each_family() -> None:
    samples = dict(
        line.rsplit(" ", 1) for line in metrics_text(reading()).splitlines() if line[0] != "#"
    )
    assert samples['ledger_inbox_lag{topic="ledger.inbox",partition="0"}'] == "7"
    assert samples['ledger_inbox_lag{topic="ledger.inbox",partition="1"}'] == "0"
    assert samples["ledger_inbox_records_total"] == "120"
    assert samples["ledger_journal_events_total"] == "42"
    assert samples["ledger_journal_seq"] == "300"
    assert samples['ledger_rejects_total{reason="malformed_json"}'] == "2"
    assert samples['ledger_relay_lag{relay="journal"}'] == "5"
    assert (samples["ledger_store_up"], samples["ledger_broker_up"]) == ("1", "0")
    assert samples['ledger_batch_duration_seconds_bucket{le="0.001"}'] == "0"
    assert samples['ledger_batch_duration_seconds_bucket{le="0.005"}'] == "1"
    assert samples['ledger_batch_duration_seconds_bucket{le="0.25"}'] == "2"
    assert samples['ledger_batch_duration_seconds_bucket{le="+Inf"}'] == "2"
    assert samples["ledger_batch_duration_seconds_count"] == "2"
    assert samples["ledger_batch_duration_seconds_sum"] == "0.203000"


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram(BATCH_SECONDS_BUCKETS)
    for seconds in (0.0005, 0.02, 30.0):
        histogram.observe(seconds)
    assert histogram.counts[0] == 1  # le 0.001
    assert histogram.counts[BATCH_SECONDS_BUCKETS.index(0.025)] == 2
    assert histogram.counts[-1] == 2  # 30 s is only in +Inf
    assert histogram.count == 3


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_the_health_port_serves_metrics_with_one_content_type() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        server = await start_health_server(
            "127.0.0.1", 0, lambda: {"status": "ok"}, lambda: metrics_text(reading())
        )
        port = server.sockets[0].getsockname()[1]
        try:
            return await _get(port, "/metrics"), await _get(port, "/health")
        finally:
            server.close()
            await server.wait_closed()

    metrics, health = asyncio.run(scenario())
    head, body = metrics.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    content_types = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-type:")]
    assert content_types == [f"Content-Type: {METRICS_CONTENT_TYPE}".encode()]
    assert b"ledger_inbox_records_total 120\n" in body
    assert health.startswith(b"HTTP/1.1 200 OK")


def test_a_fresh_brokers_missing_coordinator_is_logged_at_info() -> None:
    not_yet = logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        __file__,
        1,
        "Group Coordinator Request failed: %s",
        (GroupCoordinatorNotAvailableError(),),
        None,
    )
    other = logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        __file__,
        1,
        "Group Coordinator Request failed: %s",
        (KafkaConnectionError(),),
        None,
    )
    coordinator_filter = CoordinatorNotYetAvailable()
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert coordinator_filter.filter(not_yet)
        assert coordinator_filter.filter(other)
        logger.setLevel(logging.WARNING)  # `ledger demo --kafka` runs the service so
        assert not coordinator_filter.filter(not_yet)
        assert coordinator_filter.filter(other)
    finally:
        logger.setLevel(level)
    assert (not_yet.levelno, not_yet.levelname) == (logging.INFO, "INFO")
    assert other.levelno == logging.ERROR
