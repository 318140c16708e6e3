"""The secure broker (`deploy/local/kafka start --secure`): nobody gets in without a SCRAM
password over TLS, each principal does only its job, and the pipeline runs with its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from consumers import kafka_security
from consumers.topics import TopicNames, ensure_topics, topic_partitions
from tests.conftest import REPOSITORY, SecureKafka, free_port
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    last_header,
    reference_journal,
    run_ledger,
    start_service,
    stop_service,
    store_journal,
    wait_until,
    write_lines,
)
from tests.integration.test_reporting_consumer import position, start_consumer
from tests.unit.test_api_tls import _certificate

pytestmark = pytest.mark.integration
client_timeout_ms = 10_000
topic_authorization_failed = 29  # Kafka's error code
pipeline_records = 400
pipeline_timeout_s = 180.0


@contextmanager
def acting_as(kafka: SecureKafka, principal: str) -> Iterator[None]:
    """The LEDGER_KAFKA_* settings of `principal` for this process and its children."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in kafka.environment(principal).items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def topics(secure_kafka: SecureKafka) -> TopicNames:
    """The ledger's three topics, made by the admin."""
    names = TopicNames(secure_kafka.prefix)
    with acting_as(secure_kafka, "admin"):
        asyncio.run(ensure_topics(secure_kafka.bootstrap, names))
    return names


async def _produce(bootstrap: str, topic: str, options: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=client_timeout_ms, **options
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b'{"forged": true}')
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str) -> None:
    """Ask for the topic's end offset: a principal without READ never gets an answer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=client_timeout_ms,
        **kafka_security.client_options(),
    )
    try:
        await consumer.start()
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.end_offsets([partition])
    finally:
        await consumer.stop()


async def _describe_error(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=client_timeout_ms,
        **kafka_security.client_options(),
    )
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return int(described[0]["error_code"])


async def _delete(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=client_timeout_ms,
        **kafka_security.client_options(),
    )
    await admin.start()
    try:
        response = await admin.delete_topics([topic])
    finally:
        await admin.close()
    return [code for _name, code, *_rest in response.topic_error_codes]


# A refused client runs in a process of its own: aiokafka leaves the socket of a refused
# bootstrap for the garbage collector, whose warning would land in some later test.
CONNECT_PROBE = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
from consumers import kafka_security

async def connect():
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1], request_timeout_ms=10_000,
                                **kafka_security.client_options())
    try:
        await producer.start()  # the bootstrap authenticates: nothing is sent
    finally:
        await producer.stop()

try:
    asyncio.run(connect())
except Exception as error:
    print(type(error).__name__)
else:
    print("connected")
"""


def _connect(bootstrap: str, environment: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CONNECT_PROBE, bootstrap],
        env={**os.environ, **environment}, capture_output=True, text=True, check=False,
        cwd=REPOSITORY, timeout=120,
    )  # fmt: skip
    return result.stdout.strip()


def test_a_client_without_the_password_cannot_connect(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    bootstrap = secure_kafka.bootstrap
    plaintext = {"LEDGER_KAFKA_SECURITY": "plaintext"}
    assert _connect(bootstrap, plaintext) == "KafkaConnectionError"
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    upstream = secure_kafka.environment("upstream")
    impostor = upstream | {"LEDGER_KAFKA_PASSWORD_FILE": str(wrong)}
    assert _connect(bootstrap, impostor) == "KafkaConnectionError"
    # The same probe with the right password gets in: the refusals above are the broker's.
    assert _connect(bootstrap, upstream) == "connected"


def test_a_command_refused_by_the_broker_says_so_not_that_it_is_down(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """Wrong SCRAM credentials or an untrusted certificate said 'cannot be reached: no broker
    answered (is it running...?)': the client logs the broker's refusal and raises only
    'Unable to bootstrap'."""
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text('{"type":"mark_price"}\n')
    untrusted, _ = _certificate(tmp_path)  # a CA that signed nothing of the broker's
    upstream = secure_kafka.environment("upstream")
    for settings, says in (
        ({"LEDGER_KAFKA_PASSWORD_FILE": str(wrong)}, "SaslAuthenticationFailed"),
        ({"LEDGER_KAFKA_CA_FILE": str(untrusted)}, "CERTIFICATE_VERIFY_FAILED"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "app", "publish", str(inbox)],
            capture_output=True, text=True, check=False, timeout=120,
            env={**os.environ, **upstream, **settings,
                 "LEDGER_KAFKA_BOOTSTRAP": secure_kafka.bootstrap},
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.startswith(
            f"ledger: the Kafka broker at {secure_kafka.bootstrap} refused the connection: "
        ), done.stderr
        assert says in done.stderr
        assert len(done.stderr.splitlines()) == 1


def _ledger_as(
    kafka: SecureKafka, principal: str, prefix: str, folder: Path, *arguments: str
) -> subprocess.CompletedProcess[str]:
    """`ledger ARGUMENTS` in `folder` as `principal`, on the secure broker's `prefix`."""
    return subprocess.run(
        [sys.executable, "-m", "app", *arguments],
        capture_output=True, text=True, check=False, timeout=120, cwd=folder,
        env={**os.environ, **kafka.environment(principal),
             "LEDGER_KAFKA_BOOTSTRAP": kafka.bootstrap, "LEDGER_TOPIC_PREFIX": prefix},
    )  # fmt: skip


def test_upstreams_publish_says_its_one_line_and_nothing_of_the_ledgers_topics(
    secure_kafka: SecureKafka, topics: TopicNames, tmp_path: Path
) -> None:
    """Every publish as `upstream` logged three warnings first: it tried to create the
    journal, rejects and checkpoints topics, which upstream may not even see."""
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text('{"type":"mark_price"}\n')
    done = _ledger_as(secure_kafka, "upstream", topics.prefix, tmp_path, "publish", str(inbox))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"published 1 record to {topics.inbox}\n"


# Each sees only what it may use: upstream the inbox, the reader the three it reads.
@pytest.mark.parametrize(("principal", "unseen"), [("upstream", "events"), ("reader", "inbox")])
def test_ledger_run_as_another_principal_stops_at_start_naming_the_topics(
    secure_kafka: SecureKafka, topics: TopicNames, principal: str, unseen: str, tmp_path: Path
) -> None:
    """It logged `topic_not_ours` for the topics it could not see, then ended in 'topic
    ....inbox does not exist' (exit 1), which read as a topic to create."""
    done = _ledger_as(
        secure_kafka, principal, topics.prefix, tmp_path,
        "--store", "sqlite:///ledger.db", "run", "--health-port", "0", "--broker-wait", "30",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("ledger: this Kafka principal may neither see nor create "), last
    assert getattr(topics, unseen) in last
    assert "check LEDGER_KAFKA_USERNAME" in last
    assert "Traceback" not in done.stderr


def test_the_readers_publish_says_its_principal_may_not(
    secure_kafka: SecureKafka, topics: TopicNames, tmp_path: Path
) -> None:
    """It said only '... cannot be used: [Error 31] ClusterAuthorizationFailedError'."""
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text('{"type":"mark_price"}\n')
    done = _ledger_as(secure_kafka, "reader", topics.prefix, tmp_path, "publish", str(inbox))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"ledger: the Kafka broker at {secure_kafka.bootstrap} does not allow this principal"
    ), done.stderr
    assert "check LEDGER_KAFKA_USERNAME" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_upstream_cannot_write_read_or_delete_the_journal(
    secure_kafka: SecureKafka, topics: TopicNames
) -> None:
    bootstrap = secure_kafka.bootstrap
    with acting_as(secure_kafka, "upstream"):
        for topic in (topics.events, topics.rejects):
            with pytest.raises(TopicAuthorizationFailedError):
                asyncio.run(_produce(bootstrap, topic, kafka_security.client_options()))
        assert asyncio.run(_describe_error(bootstrap, topics.events)) == topic_authorization_failed
        with pytest.raises(KafkaTimeoutError):
            asyncio.run(_consume(bootstrap, topics.events))
        assert asyncio.run(_delete(bootstrap, topics.events)) == [topic_authorization_failed]
    with acting_as(secure_kafka, "admin"):
        assert asyncio.run(topic_partitions(bootstrap, topics.events)) == [0]


def test_the_reader_cannot_write_anything(secure_kafka: SecureKafka, topics: TopicNames) -> None:
    with acting_as(secure_kafka, "reader"):
        for topic in (topics.inbox, topics.events, topics.rejects):
            with pytest.raises(TopicAuthorizationFailedError):
                asyncio.run(
                    _produce(secure_kafka.bootstrap, topic, kafka_security.client_options())
                )
        inbox_error = asyncio.run(_describe_error(secure_kafka.bootstrap, topics.inbox))
        assert inbox_error == topic_authorization_failed


def test_the_pipeline_runs_with_its_own_principals(
    secure_kafka: SecureKafka, topics: TopicNames, tmp_path: Path, pg_schema_url: str
) -> None:
    bootstrap, prefix = secure_kafka.bootstrap, secure_kafka.prefix
    inbox = write_lines(tmp_path / "inbox.jsonl", hand_written_stream(5, 6, pipeline_records))
    expected = reference_journal(inbox, tmp_path)
    store = f"sqlite:///{tmp_path / 'run.db'}"
    with acting_as(secure_kafka, "upstream"):
        published = run_ledger(store, bootstrap, prefix, "publish", str(inbox))
    assert f"published {pipeline_records} records" in published
    with acting_as(secure_kafka, "ledger"):
        service = start_service(store, bootstrap, prefix, tmp_path / "run.log", free_port())
    try:
        with acting_as(secure_kafka, "reader"):
            wait_until(
                lambda: last_header(bootstrap, topics.events, "seq") >= len(expected),
                pipeline_timeout_s,
                "the journal's last seq on the secure events topic",
            )
    finally:
        assert stop_service(service) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert store_journal(store) == expected
    with acting_as(secure_kafka, "reader"):
        verified = subprocess.run(
            [sys.executable, "-m", "app", "--bootstrap", bootstrap, "--topic-prefix", prefix,
             "audit", "verify", "--from-kafka"],
            capture_output=True, text=True, check=False, cwd=REPOSITORY, timeout=300,
        )  # fmt: skip
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert f"journal verified: {len(expected)} records" in verified.stdout
    with acting_as(secure_kafka, "reader"):
        consumer = start_consumer(bootstrap, prefix, pg_schema_url)
    try:
        wait_until(
            lambda: (
                consumer.poll() is not None
                or (position(pg_schema_url) or (0, ""))[0] >= len(expected)
            ),
            pipeline_timeout_s,
            "the reporting consumer's position at the journal's end",
        )
    finally:
        consumer.terminate()
        consumer.wait(timeout=60)
        if consumer.stderr is not None:
            consumer.stderr.close()
    assert position(pg_schema_url) == (len(expected), json.loads(expected[-1])["hash"])
    run_log = (tmp_path / "run.log").read_text()
    for principal in ("ledger", "upstream", "reader", "admin"):
        password = (secure_kafka.data_dir / "credentials" / f"{principal}.password").read_text()
        assert password.strip() not in run_log + published + verified.stdout + verified.stderr
