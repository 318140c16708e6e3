"""The relay trusts no journal topic tail it did not write: on start it compares the tail
record, byte for byte, with the store's record of that seq, and stops with an alarm
(exit status 5) when they differ. Before, it took the tail's `seq` header on trust and
never published the genuine record of that seq."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import free_port
from tests.integration.test_pipeline_support import (
    REPOSITORY,
    hand_written_stream,
    health,
    ledger_command,
    read_topic,
    run_ledger,
    start_service,
    stop_service,
    wait_until,
    write_lines,
)

pytestmark = pytest.mark.integration

ready_timeout_s = 120.0
alarm_timeout_s = 120.0


async def _append(
    bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"C1", headers=headers)
    finally:
        await producer.stop()


def _published_ledger(bootstrap: str, prefix: str, tmp_path: Path) -> tuple[str, int]:
    """A ledger run until its whole journal is on the topic, then stopped; (store, last seq)."""
    store, port = f"sqlite:///{tmp_path / 'ledger.db'}", free_port()
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(3, 3, 40))
    run_ledger(store, bootstrap, prefix, "publish", str(inbox))
    service = start_service(store, bootstrap, prefix, tmp_path / "first.log", port)
    wait_until(
        lambda: (
            (h := health(port)) is not None
            and h["inbox_lag"] == 0
            and int(str(h["journal_seq"])) > 0
            and h["published_seq"] == h["journal_seq"]
        ),
        ready_timeout_s,
        "the journal published",
    )
    last = int(str(health(port)["journal_seq"]))  # type: ignore[index]
    assert stop_service(service) == 0
    return store, last


@pytest.mark.parametrize("forgery", ["next_seq", "no_seq_header"])
def test_a_foreign_tail_on_the_journal_topic_stops_the_relay_with_an_alarm(
    forgery: str, kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    store, last = _published_ledger(kafka_bootstrap, kafka_topic_prefix, tmp_path)
    events = f"{kafka_topic_prefix}events"
    genuine = read_topic(kafka_bootstrap, events)[-1]
    headers = [] if forgery == "no_seq_header" else [("seq", str(last + 1).encode())]
    forged = genuine.value.replace(f'"seq":{last}'.encode(), f'"seq":{last + 1}'.encode())
    asyncio.run(_append(kafka_bootstrap, events, forged, headers))
    log = tmp_path / "second.log"
    with log.open("ab") as sink:
        second = subprocess.run(
            ledger_command(store, kafka_bootstrap, kafka_topic_prefix, "run",
                           "--health-port", "0"),
            stdout=sink, stderr=sink, cwd=REPOSITORY, timeout=alarm_timeout_s, check=False,
        )  # fmt: skip
    text = log.read_text()
    assert second.returncode == 5, text[-3000:]
    assert "alarm=journal_topic_diverged" in text
    assert len(read_topic(kafka_bootstrap, events)) == last + 1  # nothing published past it
