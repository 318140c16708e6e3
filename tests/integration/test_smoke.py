"""The local servers work with the libraries we build on: aiokafka and eventsourcing.postgres."""

import asyncio
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

pytestmark = pytest.mark.integration

kafka_request_timeout_ms = 30_000
consume_timeout_s = 30.0
consume_poll_timeout_ms = 500
consume_batch_records_max = 100


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=kafka_request_timeout_ms
    )
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=1, replication_factor=1)],
            timeout_ms=kafka_request_timeout_ms,
        )
    finally:
        await admin.close()


def committed_reader(bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,  # the reader commits what it has handled, explicitly
        auto_offset_reset="earliest",  # a new group reads the topic from its start
        isolation_level="read_committed",  # aborted transactional records stay invisible
        max_poll_records=consume_batch_records_max,
        request_timeout_ms=kafka_request_timeout_ms,
    )


async def read_to_end(consumer: AIOKafkaConsumer, partition: TopicPartition) -> list[bytes]:
    """Every committed value up to the partition's end (last stable offset) at call time."""
    (end,) = (await consumer.end_offsets([partition])).values()
    values: list[bytes] = []
    async with asyncio.timeout(consume_timeout_s):
        while await consumer.position(partition) < end:
            batches = await consumer.getmany(partition, timeout_ms=consume_poll_timeout_ms)
            values.extend(record.value for record in batches.get(partition, []))
    return values


@pytest.mark.asyncio
async def test_kafka_round_trip_idempotent_producer_read_committed_consumer(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}smoke"
    await create_topic(kafka_bootstrap, topic)
    sent = [f"record-{number}".encode() for number in range(10)]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",  # written to every in-sync replica before it counts
        enable_idempotence=True,  # a retried send is not written twice
        request_timeout_ms=kafka_request_timeout_ms,
    )
    await producer.start()
    try:
        for value in sent:
            await producer.send_and_wait(topic, value, key=b"account-1")
    finally:
        await producer.stop()

    partition = TopicPartition(topic, 0)
    consumer = committed_reader(kafka_bootstrap, f"{kafka_topic_prefix}reader")
    consumer.assign([partition])
    await consumer.start()
    try:
        received = await read_to_end(consumer, partition)
        await consumer.commit()
        committed = await consumer.committed(partition)
    finally:
        await consumer.stop()
    assert received == sent
    assert committed == len(sent)


@pytest.mark.asyncio
async def test_kafka_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    topic = f"{kafka_topic_prefix}transactions"
    await create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",  # required by transactions
        enable_idempotence=True,  # required by transactions
        transactional_id=f"{kafka_topic_prefix}writer",
        request_timeout_ms=kafka_request_timeout_ms,
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
            await producer.send_and_wait(topic, b"committed-2")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3")
    finally:
        await producer.stop()

    partition = TopicPartition(topic, 0)
    consumer = committed_reader(kafka_bootstrap, f"{kafka_topic_prefix}reader")
    consumer.assign([partition])
    await consumer.start()
    try:
        received = await read_to_end(consumer, partition)
    finally:
        await consumer.stop()
    assert received == [b"committed-1", b"committed-2", b"committed-3"]


class CollateralAccount(Aggregate):
    """A tiny aggregate: enough to round-trip events through the PostgreSQL recorder."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.deposits: list[str] = []

    @event("Deposited")
    def deposit(self, amount: str) -> None:
        self.deposits.append(amount)


def postgres_environment(schema_url: str) -> dict[str, str]:
    parts = urlsplit(schema_url)
    assert parts.hostname is not None
    assert parts.username is not None
    (schema,) = parse_qs(parts.query)["schema"]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.removeprefix("/"),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username,
        "POSTGRES_PASSWORD": parts.password or "",  # trust authentication: not checked
        "POSTGRES_SCHEMA": schema,
        "CREATE_TABLE": "y",
    }


def test_eventsourcing_postgres_records_and_reloads_an_aggregate(pg_schema_url: str) -> None:
    environment = postgres_environment(pg_schema_url)
    writer = Application[UUID](env=environment)
    try:
        account = CollateralAccount("account-1")
        account.deposit("100.00")
        account.deposit("0.00000001")
        writer.save(account)
    finally:
        writer.close()

    reader = Application[UUID](env=environment)  # a new application: nothing cached
    try:
        reloaded: CollateralAccount = reader.repository.get(account.id)
        notifications = reader.recorder.select_notifications(start=None, limit=10)
    finally:
        reader.close()
    assert isinstance(reloaded, CollateralAccount)
    assert reloaded.account_id == "account-1"
    assert reloaded.deposits == ["100.00", "0.00000001"]
    assert reloaded.version == 3
    assert len(notifications) == 3
