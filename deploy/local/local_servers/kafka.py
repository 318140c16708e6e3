"""A single-node Apache Kafka broker (KRaft, broker and controller in one JVM) on 127.0.0.1.

The jars come from Maven Central through `deploy/kafka-runtime/pom.xml` into
`<cache>/kafka-<version>/lib`; `start` formats the storage once, starts `kafka.Kafka` in the
background and returns when the broker answers a Metadata request with itself in it.

Broker settings are for tests and local runs: automatic topic creation is OFF (the code
creates its topics, so a typo in a topic name fails instead of creating a topic), every
replication factor and min ISR is 1, consumer groups start without the initial rebalance
delay, and both listeners bind 127.0.0.1 only.
"""

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local_servers import class_archive, kafka_secure
from local_servers.process import (
    ServerError,
    cache_root,
    env_path,
    env_port,
    log_tail,
    pid_runs,
    port_accepts,
    read_pid,
    repository_root,
    stop_pid,
    wait_for,
)

kafka_version = "4.1.1"
java_major_min = 17
main_class = "kafka.Kafka"
broker_ready_timeout_s = 120.0
broker_ready_poll_s = 0.2
broker_stop_grace_s = 30.0
maven_resolve_timeout_s = 900.0
storage_format_timeout_s = 120.0
# A 2-core machine: small heap, serial GC, few threads.
jvm_options = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:MaxDirectMemorySize=256m",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True, kw_only=True)
class KafkaSettings:
    port: int
    controller_port: int
    data_dir: Path
    lib_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"


def settings_from_env() -> KafkaSettings:
    port = env_port("LEDGER_KAFKA_PORT", 9092)
    controller_port = env_port("LEDGER_KAFKA_CONTROLLER_PORT", port + 1)
    if controller_port == port:
        raise ServerError("LEDGER_KAFKA_CONTROLLER_PORT must differ from LEDGER_KAFKA_PORT.")
    return KafkaSettings(
        port=port,
        controller_port=controller_port,
        data_dir=env_path("LEDGER_KAFKA_DATA", cache_root() / "kafka-data"),
        lib_dir=cache_root() / f"kafka-{kafka_version}" / "lib",
    )


def server_properties(settings: KafkaSettings, secure: bool = False) -> str:
    lines = plaintext_properties(settings)
    if secure:
        layout = kafka_secure.SecureLayout(settings.data_dir)
        lines |= kafka_secure.secure_properties(layout, settings.port, settings.controller_port)
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def plaintext_properties(settings: KafkaSettings) -> dict[str, str]:
    voters = f"1@127.0.0.1:{settings.controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{settings.port},CONTROLLER://127.0.0.1:{settings.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{settings.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(settings.log_dirs),
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
    }


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME", "")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    needed = f"Java {java_major_min} or newer is needed to run Kafka"
    if java is None:
        raise ServerError(
            f"{needed}: install it (Debian: apt-get install -y openjdk-17-jre-headless)."
        )
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    major = 0 if match is None else int(match.group(1))
    if major == 1 and match is not None and match.group(2):
        major = int(match.group(2))
    if major < java_major_min:
        raise ServerError(
            f"{needed}, but {java} is version {major or 'unknown'}: install a newer one."
        )
    return java


def pom_file() -> Path:
    return repository_root() / "deploy" / "kafka-runtime" / "pom.xml"


def runtime_fingerprint() -> str:
    return hashlib.sha256(pom_file().read_bytes()).hexdigest()


@contextlib.contextmanager
def cache_lock(lib_dir: Path) -> Iterator[None]:
    """One process at a time resolves jars or chooses the class archive of this cache."""
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    with (lib_dir.parent / "cache.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_runtime_jars(lib_dir: Path) -> None:
    """Resolve the broker's jars with Maven once per pom.xml content; later starts reuse them."""
    with cache_lock(lib_dir):
        if runtime_jars_cached(lib_dir):
            return
        resolve_jars(lib_dir)
        (lib_dir.parent / "lib.sha256").write_text(runtime_fingerprint() + "\n")


def resolve_jars(lib_dir: Path) -> None:
    maven = shutil.which("mvn")
    if maven is None:
        raise ServerError(
            "Maven is needed once to fetch the Kafka jars: install it "
            "(Debian: apt-get install -y maven)."
        )
    staging = lib_dir.parent / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        maven, "--batch-mode", "--quiet", "--file", str(pom_file()),
        "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    print(f"Resolving Kafka {kafka_version} jars with Maven into {lib_dir}", file=sys.stderr)
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=maven_resolve_timeout_s
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise ServerError(f"Maven could not resolve the Kafka jars:\n{output}")
    shutil.rmtree(lib_dir, ignore_errors=True)
    staging.rename(lib_dir)


def java_command(
    java: str, settings: KafkaSettings, main: str, *arguments: str, extra: tuple[str, ...] = ()
) -> list[str]:
    log4j_config = repository_root() / "deploy" / "kafka-runtime" / "log4j2.properties"
    return [
        java,
        *jvm_options,
        *extra,
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        class_path(settings),
        main,
        *arguments,
    ]


def class_path(settings: KafkaSettings) -> str:
    return str(settings.lib_dir / "*")


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them: URL-safe base64 of a UUID. One that
    starts with '-' would be read by the storage tool as an option (1 in 64 starts)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def format_storage(java: str, settings: KafkaSettings, secure: bool = False) -> None:
    if (settings.log_dirs / "meta.properties").is_file():
        return
    cluster_id = _cluster_id()
    archive = class_archive.archive_path(java, settings.lib_dir, runtime_fingerprint())
    main, arguments = "kafka.tools.StorageTool", [
        "format", "--cluster-id", cluster_id, "--config", str(settings.properties_file),
    ]  # fmt: skip
    argument_file = None
    if secure:
        # The SCRAM users' passwords go in a 0600 argument file, never on a command line.
        layout = kafka_secure.SecureLayout(settings.data_dir)
        argument_file = kafka_secure.scram_argument_file(layout, main, arguments)
        main, arguments = f"@{argument_file}", []
    command = java_command(
        java, settings, main, *arguments, extra=tuple(class_archive.read_only_options(archive))
    )
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=storage_format_timeout_s
        )
    finally:
        if argument_file is not None:
            argument_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise ServerError(f"Formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def metadata_brokers(port: int, timeout_s: float = 2.0) -> int:
    """Number of brokers in a Metadata (v4) response from 127.0.0.1:port; -1 if no answer."""
    client_id = b"ledger-local"
    # Header v1: api_key 3 (Metadata), version 4, correlation id, client id. Body: all topics
    # (null array), allow_auto_topic_creation false.
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
            connection.sendall(struct.pack(">i", len(body)) + body)
            response = receive_exactly(connection, 4)
            (size,) = struct.unpack(">i", response)
            payload = receive_exactly(connection, size)
    except OSError:
        return -1
    correlation_id, _throttle_ms, broker_count = struct.unpack_from(">iii", payload)
    return broker_count if correlation_id == 7 else -1


def receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return bytes(chunks)


def running_pid(settings: KafkaSettings) -> int | None:
    pid = read_pid(settings.pid_file)
    return pid if pid is not None and pid_runs(pid, main_class) else None


def answers(settings: KafkaSettings, secure: bool) -> bool:
    if secure:
        ca_file = kafka_secure.SecureLayout(settings.data_dir).ca_file
        return kafka_secure.api_versions_over_tls(settings.port, ca_file)
    return metadata_brokers(settings.port) > 0


def start(settings: KafkaSettings, secure: bool = False) -> str:
    if running_pid(settings) is not None:
        kafka_secure.check_mode(settings.data_dir, secure, formatted=True)
        if wait_for(lambda: answers(settings, secure), 30.0, broker_ready_poll_s):
            return settings.bootstrap
        raise ServerError(f"Kafka runs but does not answer.\n{log_tail(settings.log_file)}")
    for port in (settings.port, settings.controller_port):
        if port_accepts(port):
            raise ServerError(f"Port {port} on 127.0.0.1 is in use by another program.")
    java = find_java()
    ensure_runtime_jars(settings.lib_dir)
    formatted = (settings.log_dirs / "meta.properties").is_file()
    kafka_secure.check_mode(settings.data_dir, secure, formatted)
    if secure:
        layout = kafka_secure.SecureLayout(settings.data_dir)
        kafka_secure.ensure_credentials(layout)
        kafka_secure.ensure_certificates(layout)
    kafka_secure.write_secret(settings.properties_file, server_properties(settings, secure))
    format_storage(java, settings, secure)
    broker = launch_broker(java, settings)
    answered = wait_for(
        lambda: broker.poll() is not None or answers(settings, secure),
        broker_ready_timeout_s,
        broker_ready_poll_s,
    )
    if broker.poll() is not None:
        settings.pid_file.unlink(missing_ok=True)
        raise ServerError(
            f"Kafka exited with code {broker.returncode} while starting.\n"
            f"{log_tail(settings.log_file)}"
        )
    if not answered:
        stop_pid(broker.pid, main_class, broker_stop_grace_s)
        settings.pid_file.unlink(missing_ok=True)
        raise ServerError(
            f"Kafka did not answer within {broker_ready_timeout_s:.0f} s.\n"
            f"{log_tail(settings.log_file)}"
        )
    if secure:
        grant_acls(java, settings)
    return settings.bootstrap


def grant_acls(java: str, settings: KafkaSettings) -> None:
    """The principals' ACLs for LEDGER_TOPIC_PREFIX, once per prefix and data folder."""
    prefix = os.environ.get("LEDGER_TOPIC_PREFIX") or "ledger"
    done = settings.data_dir / f"acls-{prefix}.done"
    if done.is_file():
        return
    archive = class_archive.archive_path(java, settings.lib_dir, runtime_fingerprint())
    command = java_command(
        java, settings, "org.apache.kafka.tools.AclCommand",
        extra=tuple(class_archive.read_only_options(archive)),
    )  # fmt: skip
    layout = kafka_secure.SecureLayout(settings.data_dir)
    kafka_secure.add_acls(kafka_secure.AclRunner(command, settings.bootstrap, layout), prefix)
    done.write_text(prefix + "\n")


def launch_broker(java: str, settings: KafkaSettings) -> "subprocess.Popen[bytes]":
    with cache_lock(settings.lib_dir):
        archive = class_archive.archive_path(java, settings.lib_dir, runtime_fingerprint())
        archive_options, writes_archive = class_archive.jvm_options(
            java, archive, class_path(settings), main_class
        )
        command = java_command(
            java, settings, main_class, str(settings.properties_file), extra=tuple(archive_options)
        )
        with settings.log_file.open("ab") as log:
            broker = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=settings.data_dir,
                start_new_session=True,
            )
        if writes_archive:
            class_archive.record_claim(archive, broker.pid)
    settings.pid_file.write_text(f"{broker.pid}\n")
    return broker


def stop(settings: KafkaSettings) -> bool:
    """Stop the broker; False when none was running."""
    pid = running_pid(settings)
    if pid is not None:
        stop_pid(pid, main_class, broker_stop_grace_s)
    settings.pid_file.unlink(missing_ok=True)
    return pid is not None


def runtime_jars_cached(lib_dir: Path) -> bool:
    stamp = lib_dir.parent / "lib.sha256"
    return (
        lib_dir.is_dir() and stamp.is_file() and stamp.read_text().strip() == runtime_fingerprint()
    )


def check_tools(settings: KafkaSettings) -> None:
    """Java 17+ always; Maven only while the jars are not cached yet."""
    find_java()
    if not runtime_jars_cached(settings.lib_dir) and shutil.which("mvn") is None:
        raise ServerError(
            "Maven is needed once to fetch the Kafka jars: install it "
            "(Debian: apt-get install -y maven)."
        )


def command_start(settings: KafkaSettings, secure: bool = False) -> int:
    began = time.monotonic()
    bootstrap = start(settings, secure)
    elapsed_s = time.monotonic() - began
    print(f"Kafka answers on {bootstrap} ({elapsed_s:.1f} s)", file=sys.stderr)
    if secure:
        layout = kafka_secure.SecureLayout(settings.data_dir)
        print(kafka_secure.describe_credentials(layout, bootstrap), file=sys.stderr)
    print(bootstrap)
    return 0


def command_stop(settings: KafkaSettings) -> int:
    was_running = stop(settings)
    print("Kafka stopped." if was_running else "Kafka was not running.", file=sys.stderr)
    return 0


def command_status(settings: KafkaSettings) -> int:
    pid = running_pid(settings)
    if pid is None:
        print(f"Kafka is not running (data: {settings.data_dir}).")
        return 3
    print(f"Kafka is running on {settings.bootstrap} (pid {pid}, data: {settings.data_dir}).")
    return 0


def command_resolve(settings: KafkaSettings) -> int:
    ensure_runtime_jars(settings.lib_dir)
    print(settings.lib_dir)
    return 0


def command_check(settings: KafkaSettings) -> int:
    check_tools(settings)
    return 0


commands = {
    "start": command_start,
    "stop": command_stop,
    "status": command_status,
    "resolve": command_resolve,  # only fetch the jars (make kafka-runtime)
    "check": command_check,  # Java 17+ present, and Maven if the jars are not cached
}


def main(argv: list[str]) -> int:
    secure = argv[1:] == ["--secure"] and argv[0] == "start"
    if not (len(argv) == 1 or secure) or argv[0] not in commands:
        print(f"usage: deploy/local/kafka {'|'.join(commands)} (start [--secure])", file=sys.stderr)
        return 2
    try:
        if secure:
            return command_start(settings_from_env(), secure=True)
        return commands[argv[0]](settings_from_env())
    except ServerError as error:
        print(error, file=sys.stderr)
        return 1
