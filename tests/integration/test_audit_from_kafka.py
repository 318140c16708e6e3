"""`ledger audit verify --from-kafka` merges the journal topic's partitions by seq."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.simulation import simulate
from ledger.application import InboxItem, LedgerApplication
from ledger.policy import load_policy
from ledger.store import LedgerStore

pytestmark = pytest.mark.integration


def _journal() -> list[tuple[int, str, bytes]]:
    store = LedgerStore.open("sqlite:///:memory:")
    app = LedgerApplication(store, load_policy(None))
    records = list(simulate(4, 4, 1))[:1_500]
    app.process([InboxItem(r, None, "sim", 0, n) for n, r in enumerate(records)])
    return [(e.seq, e.type, e.record) for e in store.iter_journal()]


async def _publish(bootstrap: str, topic: str, journal: list[tuple[int, str, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for seq, type_, record in journal:
            # Spread over three partitions, each still in seq order: the reader must merge.
            headers = [("seq", str(seq).encode()), ("type", type_.encode())]
            await producer.send(topic, record, partition=seq % 3, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def _verify(bootstrap: str, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--bootstrap", bootstrap, "--topic-prefix", prefix,
         "audit", "verify", "--from-kafka"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent,
    )  # fmt: skip


def test_a_journal_spread_over_partitions_verifies_and_a_tampered_one_names_its_seq(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    journal = _journal()
    good, bad = f"{kafka_topic_prefix}good", f"{kafka_topic_prefix}bad"
    asyncio.run(_publish(kafka_bootstrap, f"{good}.events", journal))
    tampered = list(journal)
    seq, type_, record = tampered[100]
    tampered[100] = (seq, type_, record.replace(b'"recorded_at":"2026', b'"recorded_at":"2027'))
    asyncio.run(_publish(kafka_bootstrap, f"{bad}.events", tampered))

    verified = _verify(kafka_bootstrap, good)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert str(len(journal)) in verified.stdout
    broken = _verify(kafka_bootstrap, bad)
    assert broken.returncode == 1
    assert "seq 101" in broken.stdout
