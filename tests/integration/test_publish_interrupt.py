"""`ledger publish` interrupted (Ctrl-C) says how many records the broker acknowledged and
that sending them again is safe; it exited 130 in silence, leaving an upstream engineer
to guess what went."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import REPOSITORY
from tests.integration.test_pipeline_support import wait_until

pytestmark = pytest.mark.integration
records_in_file = 400_000  # several seconds of publishing: the interrupt lands midway
interrupted_within_s = 60.0
# Interrupted once this many are on the topic: several producer batches, so the broker's
# answer to the first has certainly been read (a record can be on the topic a moment
# before its acknowledgement reaches the publisher, which then does not count it).
records_before_interrupt = 50_000


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return 0
        partition = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


def test_an_interrupted_publish_says_how_many_records_were_acknowledged(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "marks.jsonl"
    inbox.write_text(
        "".join(f'{{"event_id":"m-{n}","type":"mark_price"}}\n' for n in range(records_in_file))
    )
    topic = f"{kafka_topic_prefix.rstrip('.')}.inbox"
    publish = subprocess.Popen(
        [sys.executable, "-m", "app", "publish", str(inbox), "--bootstrap", kafka_bootstrap,
         "--topic-prefix", kafka_topic_prefix],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPOSITORY,
    )  # fmt: skip
    wait_until(
        lambda: asyncio.run(_end_offset(kafka_bootstrap, topic)) >= records_before_interrupt,
        interrupted_within_s,
        "records on the inbox topic",
    )
    publish.send_signal(signal.SIGINT)
    _, stderr = publish.communicate(timeout=interrupted_within_s)
    in_topic = asyncio.run(_end_offset(kafka_bootstrap, topic))
    assert publish.returncode == 130, stderr
    said = re.fullmatch(
        rf"ledger: interrupted after the broker acknowledged (\d+) records? to {topic}: "
        r"publishing the same records again is safe \(the ledger books a repeated "
        r"event_id with the same content once\)\n",
        stderr,
    )
    assert said is not None, stderr
    assert 0 < int(said.group(1)) <= in_topic < records_in_file
