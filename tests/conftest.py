"""Real servers for integration tests: a Kafka broker and a PostgreSQL server on 127.0.0.1.

The first test that asks for `kafka_bootstrap` or `postgres_url` starts that server through
`deploy/local/kafka` or `deploy/local/postgres` on free ports in a temporary folder; it
stops at the end of the session, whether tests passed or not. A server that cannot start
makes the tests that need it error, with the server's log tail in the message: nothing is
skipped. Tests that use these fixtures must be marked `integration` (checked at
collection), so `pytest -m 'not integration'` never starts Java or PostgreSQL.

Per test, `pg_schema_url` gives the server URL with a fresh, empty schema
(`...?schema=test_<hex>`) and `kafka_topic_prefix` a unique topic name prefix.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SERVER_FIXTURES = frozenset({"kafka_bootstrap", "secure_kafka", "postgres_url", "pg_schema_url"})
# The topic prefix the secure broker's ACLs are made for (deploy/local/kafka start --secure).
SECURE_TOPIC_PREFIX = "secure"
# A cold start resolves the Kafka jars with Maven or installs PostgreSQL with apt-get.
server_start_timeout_s = 1200.0
server_stop_timeout_s = 120.0
topic_prefix_test_name_chars_max = 60


class ServerStartError(Exception):
    """deploy/local/<server> start failed; the message holds its output and log tail."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used and item.get_closest_marker("integration") is None:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(used))}: mark it "
                "@pytest.mark.integration so that `-m 'not integration'` needs no servers."
            )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_server_script(server: str, command: str, environment: dict[str, str], *options: str) -> str:
    """Run `deploy/local/<server> <command> [options]` and return what it printed on stdout."""
    script = REPOSITORY / "deploy" / "local" / server
    timeout_s = server_start_timeout_s if command == "start" else server_stop_timeout_s
    result = subprocess.run(
        [sys.executable, str(script), command, *options],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise ServerStartError(
            f"deploy/local/{server} {command} exited with code {result.returncode}:\n"
            f"{result.stderr}{result.stdout}"
        )
    return result.stdout.strip()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`127.0.0.1:PORT` of a single-node Kafka 4.1 broker (KRaft) for the whole session.

    Automatic topic creation is off: create topics with the admin client.
    """
    environment = {
        "LEDGER_KAFKA_PORT": str(free_port()),
        "LEDGER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGER_KAFKA_DATA": str(tmp_path_factory.mktemp("kafka")),
    }
    try:
        yield run_server_script("kafka", "start", environment)
    finally:
        run_server_script("kafka", "stop", environment)


@dataclass(frozen=True)
class SecureKafka:
    """A broker started with `deploy/local/kafka start --secure`: SASL_SSL, SCRAM, ACLs."""

    bootstrap: str
    data_dir: Path
    prefix: str

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def environment(self, principal: str) -> dict[str, str]:
        """The LEDGER_KAFKA_* settings of a client acting as `principal`."""
        return {
            "LEDGER_KAFKA_SECURITY": "sasl_ssl",
            "LEDGER_KAFKA_USERNAME": principal,
            "LEDGER_KAFKA_PASSWORD_FILE": str(
                self.data_dir / "credentials" / f"{principal}.password"
            ),
            "LEDGER_KAFKA_CA_FILE": str(self.ca_file),
        }


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A second, secure broker for the session, its ACLs made for SECURE_TOPIC_PREFIX."""
    data_dir = tmp_path_factory.mktemp("kafka-secure")
    environment = {
        "LEDGER_KAFKA_PORT": str(free_port()),
        "LEDGER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGER_KAFKA_DATA": str(data_dir),
        "LEDGER_TOPIC_PREFIX": SECURE_TOPIC_PREFIX,
    }
    try:
        bootstrap = run_server_script("kafka", "start", environment, "--secure")
        yield SecureKafka(bootstrap, data_dir, SECURE_TOPIC_PREFIX)
    finally:
        run_server_script("kafka", "stop", environment)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://postgres@127.0.0.1:PORT/ledger` of a throwaway server (trust auth)."""
    # Not under pytest's 0700 temporary folder: as root, the cluster belongs to the
    # `postgres` user, who must be able to reach its data folder.
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    environment = {"LEDGER_PG_PORT": str(free_port()), "LEDGER_PG_DATA": str(data_dir)}
    try:
        yield run_server_script("postgres", "start", environment)
    finally:
        try:
            run_server_script("postgres", "stop", environment)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def pg_schema_url(postgres_url: str) -> str:
    """`postgres_url` with `?schema=test_<hex>`: a new empty schema for this test alone.

    The schema is left in place afterwards (the whole cluster goes at session end), so a
    failing test's tables can be inspected and teardown never waits on a lock.
    """
    import psycopg  # noqa: PLC0415 (unit test runs never need the driver)
    from psycopg import sql  # noqa: PLC0415

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{postgres_url}?schema={schema}"


@pytest.fixture
def kafka_topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic name prefix unique to this test, e.g. `test.test-round-trip.1a2b3c4d.`."""
    test_name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    return f"test.{test_name[:topic_prefix_test_name_chars_max]}.{uuid.uuid4().hex[:8]}."
