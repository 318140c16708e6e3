"""The ledger's four topics (docs/events.md), created when missing, and the bounds of talking to
Kafka that every module of `consumers/` shares.

`<prefix>.inbox` (upstream facts and requests), `<prefix>.events` (the journal, one
partition, kept forever), `<prefix>.rejects` (refused inputs, kept forever) and
`<prefix>.checkpoints` (signed checkpoints of the journal's end, kept forever). Production
clusters create them with their own settings (deploy/k8s/topics.yaml); `ensure_topics` only
creates the ones that are missing, so a local broker or a test works out of the box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from consumers import kafka_security

log = logging.getLogger("consumers.topics")

# -- bounds shared by every Kafka client of the ledger (units last) -----------------------
# A request the broker has not answered in this time failed; the client retries it.
kafka_request_timeout_ms = 30_000
# Wait between retries of a failed request (aiokafka's default, stated).
kafka_retry_backoff_ms = 100
# Refresh topic metadata at least this often, so a leader change is noticed quickly.
kafka_metadata_max_age_ms = 60_000
# Close connections idle this long (aiokafka's default, stated).
kafka_connections_max_idle_ms = 540_000
# Create-topics request: the broker waits this long for the topics to exist.
topic_create_timeout_ms = 30_000
inbox_partitions_default = 1  # docs/pipeline.md: one partition, byte-identical re-runs
events_partitions = 1  # the journal's total order is the topic's order
rejects_partitions = 1  # rejects are numbered 1, 2, … in one order too
checkpoints_partitions = 1  # checkpoints are numbered 1, 2, … in one order too
replication_factor_default = 1  # one local broker; production uses 3 (deploy/k8s)
_TOPIC_ALREADY_EXISTS = 36  # Kafka error code: another process created it first
_TOPIC_AUTHORIZATION_FAILED = 29  # Kafka's error code: the principal's ACLs refuse it


# Kafka's own rule for a topic name: these characters, at most 249 of them.
_TOPIC_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)
topic_name_chars_max = 249
_LONGEST_SUFFIX = ".checkpoints"


class TopicPrefixError(ValueError):
    """A topic prefix Kafka would refuse in a topic name: a sentence a person can act on."""


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The topic names for one prefix (`ledger` gives `ledger.inbox`, ...)."""

    prefix: str

    def __post_init__(self) -> None:
        # Refused here, in one line, rather than by the broker's CreateTopics answer.
        if not self.base or not set(self.base) <= _TOPIC_NAME_CHARACTERS:
            raise TopicPrefixError(
                f"--topic-prefix {self.prefix!r} cannot start a Kafka topic name: use "
                "letters, digits, '.', '_' and '-'"
            )
        if len(self.base + _LONGEST_SUFFIX) > topic_name_chars_max:
            raise TopicPrefixError(
                f"--topic-prefix is {len(self.prefix)} characters: a Kafka topic name holds "
                f"at most {topic_name_chars_max}, suffix included"
            )

    @property
    def base(self) -> str:
        # A prefix given with its trailing dot (`test.x.`) names the same topics.
        return self.prefix.rstrip(".")

    @property
    def inbox(self) -> str:
        return f"{self.base}.inbox"

    @property
    def events(self) -> str:
        return f"{self.base}.events"

    @property
    def rejects(self) -> str:
        return f"{self.base}.rejects"

    @property
    def checkpoints(self) -> str:
        return f"{self.base}.checkpoints"

    @property
    def consumer_group(self) -> str:
        return f"{self.base}.sequencer"

    @property
    def journal_transactional_id(self) -> str:
        return f"{self.base}.journal-relay"

    @property
    def rejects_transactional_id(self) -> str:
        return f"{self.base}.rejects-relay"

    @property
    def checkpoints_transactional_id(self) -> str:
        return f"{self.base}.checkpoint-relay"


class BootstrapError(ValueError):
    """A broker list the Kafka client cannot read: a sentence a person can act on."""


_PORT_MAX = 65_535


def require_bootstrap(bootstrap: str) -> None:
    """`HOST:PORT[,HOST:PORT...]`, refused in one line when the Kafka client could not read
    it: it raised a bare ValueError for a port that is not a number (a traceback), an
    OverflowError for one over 65535, and took an empty list for a broker that never
    answers. A host without a port is the client's (port 9092)."""
    for address in bootstrap.split(","):
        host, colon, port = address.strip().rpartition(":")
        if not colon:
            host, port = port, "9092"
        if not host or not (port.isascii() and port.isdigit() and 0 < int(port) <= _PORT_MAX):
            raise BootstrapError(
                f"--bootstrap {bootstrap!r} ($LEDGER_KAFKA_BOOTSTRAP) is not a list of Kafka "
                "brokers: write HOST:PORT, several separated by commas, each port 1 to 65535"
            )


def kafka_connection(bootstrap: str, client_id: str) -> dict[str, Any]:
    """The options every Kafka client of the ledger states alike: where, as whom (SASL/SCRAM
    over TLS when configured), named `client_id` in the broker's logs, and the bounds above."""
    require_bootstrap(bootstrap)
    return {
        "bootstrap_servers": bootstrap,
        **kafka_security.client_options(),
        "client_id": client_id,
        "request_timeout_ms": kafka_request_timeout_ms,  # see the constant
        "retry_backoff_ms": kafka_retry_backoff_ms,  # stated, not defaulted
        "metadata_max_age_ms": kafka_metadata_max_age_ms,  # notice a leader change soon
        "connections_max_idle_ms": kafka_connections_max_idle_ms,  # stated
    }


def _forever() -> dict[str, str]:
    return {
        # Keys repeat (one per account): compaction would drop history.
        "cleanup.policy": "delete",
        "retention.ms": "-1",  # kept forever: the journal is the books of record
        "retention.bytes": "-1",  # never dropped for size either
    }


def _admin(bootstrap: str) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    return AIOKafkaAdminClient(**kafka_connection(bootstrap, "ledger-admin"))


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of `topic`, ascending; raises KafkaError when it is missing."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    admin = _admin(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] == topic and entry["error_code"] == 0 and entry["partitions"]:
            return sorted(int(p["partition"]) for p in entry["partitions"])
    raise KafkaError(f"topic {topic} does not exist")


async def ensure_topics(
    bootstrap: str,
    names: TopicNames,
    *,
    inbox_partitions: int = inbox_partitions_default,
    replication_factor: int = replication_factor_default,
) -> list[str]:
    """Create whichever of the four topics is missing; returns the names created. A topic
    this principal may neither see nor create is `TopicsNotOurs`: the ledger needs all
    four, and going on ended later in 'topic ... does not exist', which read as a topic to
    create rather than a principal without the ledger's rights."""
    from aiokafka.admin import NewTopic  # noqa: PLC0415

    wanted = [
        NewTopic(names.inbox, inbox_partitions, replication_factor, topic_configs=_forever()),
        NewTopic(names.events, events_partitions, replication_factor, topic_configs=_forever()),
        NewTopic(names.rejects, rejects_partitions, replication_factor, topic_configs=_forever()),
        NewTopic(
            names.checkpoints, checkpoints_partitions, replication_factor, topic_configs=_forever()
        ),
    ]
    created, not_ours = await _create_missing(bootstrap, wanted)
    if not_ours:
        # On a broker with ACLs a principal sees only its own topics (`upstream` sees
        # the inbox alone): this one is not the ledger's principal.
        raise TopicsNotOurs(not_ours)
    return created


class TopicsNotOurs(Exception):
    """The Kafka principal may neither see nor create some of the ledger's topics."""

    def __init__(self, topics: list[str]) -> None:
        super().__init__(
            f"this Kafka principal may neither see nor create {', '.join(sorted(topics))}: "
            "`ledger run` needs Describe, Read and Write on its four topics (the `ledger` "
            "principal's ACLs, docs/security.md); check LEDGER_KAFKA_USERNAME"
        )
        self.topics = topics


async def ensure_inbox_topic(
    bootstrap: str, names: TopicNames, *, inbox_partitions: int, replication_factor: int
) -> None:
    """Create the inbox topic when it is missing and this principal may (upstream's
    `ledger publish`). The other three are the ledger's, never upstream's to see; an inbox
    it may not create is left to the send, whose refusal is the command's one line."""
    from aiokafka.admin import NewTopic  # noqa: PLC0415

    inbox = NewTopic(names.inbox, inbox_partitions, replication_factor, topic_configs=_forever())
    await _create_missing(bootstrap, [inbox])


async def _create_missing(bootstrap: str, wanted: list[Any]) -> tuple[list[str], list[str]]:
    """Create the topics of `wanted` (aiokafka `NewTopic`s) this principal does not see:
    the names created, and those the broker's ACLs refused it."""
    admin = _admin(bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if not missing:
            return [], []
        response = await admin.create_topics(missing, timeout_ms=topic_create_timeout_ms)
    finally:
        await admin.close()
    created, not_ours = [], []
    for name, code, *_rest in response.topic_errors:
        if code == _TOPIC_AUTHORIZATION_FAILED:
            not_ours.append(name)
            continue
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"cannot create topic {name}: Kafka error code {code}")
        if code == 0:
            created.append(name)
            log.info("topic_created topic=%s", name)
    return created, not_ours
