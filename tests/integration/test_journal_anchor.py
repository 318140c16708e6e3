"""The relays trust no topic tail they did not write: on start each compares the tail
record, byte for byte, with the store's record of that seq (reject number), and stops with
an alarm (exit status 5) when they differ. Before, the journal relay took the tail's `seq`
header on trust and never published the genuine record of that seq, and the rejects relay
checked nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from ledger.checkpoints import checkpoint_position
from ledger.store import LedgerStore
from tests.conftest import free_port
from tests.integration.test_pipeline_support import (
    REPOSITORY,
    hand_written_stream,
    health,
    hostile_records,
    ledger_command,
    read_topic,
    run_ledger,
    start_service,
    stop_service,
    wait_until,
    write_lines,
)
from tests.signing_keys import write_keys

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


def _published_ledger(
    bootstrap: str, prefix: str, tmp_path: Path, store: str | None = None
) -> tuple[str, int]:
    """A ledger run until its whole journal is on the topic, then stopped; (store, last
    seq). The store is a new SQLite file unless given."""
    store, port = store or f"sqlite:///{tmp_path / 'ledger.db'}", free_port()
    refused = [record for record, _ in hostile_records()]
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(3, 3, 40) + refused)
    run_ledger(store, bootstrap, prefix, "publish", str(inbox), "--send-malformed")
    service = start_service(store, bootstrap, prefix, tmp_path / "first.log", port)
    try:
        wait_until(
            lambda: (
                (h := health(port)) is not None
                and h["inbox_lag"] == 0
                and int(str(h["journal_seq"])) > 0
                and h["published_seq"] == h["journal_seq"]
                and h["rejects"] == len(refused)
                and h["rejects_published"] == h["rejects"]
            ),
            ready_timeout_s,
            "the journal published",
        )
        last = int(str(health(port)["journal_seq"]))  # type: ignore[index]
    finally:
        status = stop_service(service)  # never left running past a failed wait
    assert status == 0
    return store, last


@pytest.mark.parametrize(
    ("forgery", "topic"),
    [
        ("next_seq", "events"),
        ("no_seq_header", "events"),
        ("next_number", "rejects"),
        ("same_number_other_bytes", "rejects"),
    ],
)
def test_a_foreign_tail_on_a_ledger_topic_stops_the_relay_with_an_alarm(
    forgery: str, topic: str, kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    header = "seq" if topic == "events" else "number"
    store, _ = _published_ledger(kafka_bootstrap, kafka_topic_prefix, tmp_path)
    name = f"{kafka_topic_prefix}{topic}"
    genuine = read_topic(kafka_bootstrap, name)[-1]
    last = int(genuine.headers[header])
    position = last if forgery == "same_number_other_bytes" else last + 1
    headers = [] if forgery == "no_seq_header" else [(header, str(position).encode())]
    forged = genuine.value.replace(f'"{header}":{last}'.encode(), f'"{header}":{last + 1}'.encode())
    assert forged != genuine.value
    asyncio.run(_append(kafka_bootstrap, name, forged, headers))
    log = tmp_path / "second.log"
    with log.open("ab") as sink:
        second = subprocess.run(
            ledger_command(store, kafka_bootstrap, kafka_topic_prefix, "run",
                           "--health-port", "0"),
            stdout=sink, stderr=sink, cwd=REPOSITORY, timeout=alarm_timeout_s, check=False,
        )  # fmt: skip
    text = log.read_text()
    assert second.returncode == 5, text[-3000:]
    stream = "journal" if topic == "events" else "rejects"
    assert f"alarm={stream}_topic_diverged" in text
    assert len(read_topic(kafka_bootstrap, name)) == last + 1  # nothing published past it


def test_audit_from_kafka_of_a_topic_with_a_foreign_record_or_no_topic_is_one_line(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    _, last = _published_ledger(kafka_bootstrap, kafka_topic_prefix, tmp_path)
    events = f"{kafka_topic_prefix}events"
    asyncio.run(_append(kafka_bootstrap, events, b'{"seq":0}', []))
    for prefix, says in (
        (kafka_topic_prefix, "has no seq header"),
        (f"{kafka_topic_prefix}missing.", "does not exist"),
    ):
        # Without --log-level: the Kafka client's own errors stay out of the one line.
        done = subprocess.run(
            [sys.executable, "-m", "app", "--bootstrap", kafka_bootstrap, "--topic-prefix",
             prefix, "audit", "verify", "--from-kafka"],
            capture_output=True, text=True, cwd=tmp_path, check=False, timeout=alarm_timeout_s,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert says in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert last > 0


def _audit(store: str, bootstrap: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--store", store, "--bootstrap", bootstrap,
         "--topic-prefix", prefix, "audit", "verify", *args],
        capture_output=True, text=True, cwd=REPOSITORY, check=False, timeout=alarm_timeout_s,
    )  # fmt: skip


def _as(url: str, role: str) -> str:
    return url.replace("//postgres@", f"//{role}@", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def run_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The URL `ledger run` writes and the URL an audit reads: one SQLite file, or on
    PostgreSQL the deployment's roles (the owner prepares, the writer runs, the reader
    audits)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        return url, url
    owner = str(request.getfixturevalue("pg_schema_url"))
    LedgerStore.open(owner).close()
    return _as(owner, "ledger_writer"), _as(owner, "ledger_reader")


@pytest.fixture
def checkpoint_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`ledger run` started by the test signs a checkpoint every second; the public key."""
    private, public = write_keys(tmp_path)
    monkeypatch.setenv("LEDGER_CHECKPOINT_KEY", str(private))
    monkeypatch.setenv("LEDGER_CHECKPOINT_INTERVAL", "1")
    return public


def test_run_signs_checkpoints_into_the_store_and_their_topic_and_audit_anchors_with_them(
    run_store: tuple[str, str],
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
    checkpoint_public_key: Path,
) -> None:
    public = checkpoint_public_key
    written, store = run_store
    _, last = _published_ledger(kafka_bootstrap, kafka_topic_prefix, tmp_path, written)
    with LedgerStore.open(store, read_only=True) as ledger:
        stored = ledger.read_checkpoints()
        records = [entry.record for entry in ledger.iter_journal()]
    published = read_topic(kafka_bootstrap, f"{kafka_topic_prefix}checkpoints")
    assert [record.value for record in published] == stored
    assert [record.headers["number"] for record in published] == [
        str(number).encode() for number in range(1, len(stored) + 1)
    ]
    # The stop signs the journal's end; each checkpoint is of a later seq than the one before.
    seqs = [checkpoint_position(document)[0] for document in stored]
    assert seqs[-1] == last
    assert seqs == sorted(set(seqs))
    anchored = ["--public-key", str(public), "--signed-checkpoints"]
    held = "1 anchor holds" if len(stored) == 1 else f"{len(stored)} anchors hold"
    for audit in (("kafka",), ("store", "--from-kafka")):
        done = _audit(store, kafka_bootstrap, kafka_topic_prefix, *anchored, *audit)
        assert done.returncode == 0, done.stderr
        assert held in done.stdout
    shortened = tmp_path / "shortened.jsonl"
    shortened.write_bytes(b"\n".join(records[:-1]) + b"\n")  # its chain still verifies
    done = _audit(store, kafka_bootstrap, kafka_topic_prefix, "--file", str(shortened),
                  *anchored, "kafka")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"vouches for seq {last}, but the journal ends at seq {last - 1}" in done.stdout
