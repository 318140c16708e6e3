"""`ledger run` stops within its drain timeout on SIGTERM in every state: idle, mid-batch,
broker unreachable at start, broker gone while serving, store unavailable.

Before the fix, the broker-gone case did not stop at all: SIGTERM set the stop, the inbox
loop's final offset commit waited for a group coordinator that never came back, and the
supervisor waited for the ingest without a deadline (measured: still running 90 s after
SIGTERM, logging connection errors ten times a second)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerStartError, free_port, run_server_script
from tests.integration.test_pipeline_support import (
    REPOSITORY,
    hand_written_stream,
    health,
    ledger_command,
    run_ledger,
    wait_until,
    write_lines,
)

pytestmark = pytest.mark.integration

drain_timeout_s = 5
# From SIGTERM to exit: the drain, closing the clients (5 s at most), and a margin for a
# loaded machine. Without the fix the broker-gone case never exits.
stop_within_s = drain_timeout_s + 5 + 10
ready_timeout_s = 120.0
# The probe's interval and timeout (5 s each), and a margin for a loaded machine.
outage_noticed_within_s = 25.0


def _start(
    store: str, bootstrap: str, prefix: str, log: Path, port: int
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            ledger_command(
                store, bootstrap, prefix, "run", "--health-port", str(port),
                "--drain-timeout", str(drain_timeout_s),
            ),
            stdout=sink, stderr=sink, cwd=REPOSITORY,
            env={**os.environ, "LEDGER_HEALTH_HOST": "127.0.0.1"},
        )  # fmt: skip


def _terminate(process: subprocess.Popen[bytes], log: Path) -> tuple[int, float]:
    """SIGTERM; the exit status and the seconds it took (killed and failed past the bound)."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=stop_within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {stop_within_s} s after SIGTERM:\n{log.read_text()[-3000:]}")
    return status, time.monotonic() - sent


def _ready(process: subprocess.Popen[bytes], port: int) -> dict[str, object]:
    wait_until(
        lambda: process.poll() is not None or health(port) is not None,
        ready_timeout_s,
        "ledger run's /health",
    )
    document = health(port)
    assert document is not None, "ledger run exited before serving"
    return document


def test_idle_at_lag_zero_stops_at_once(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    store, port, log = f"sqlite:///{tmp_path / 'ledger.db'}", free_port(), tmp_path / "run.log"
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(3, 4, 60))
    run_ledger(store, kafka_bootstrap, kafka_topic_prefix, "publish", str(inbox))
    service = _start(store, kafka_bootstrap, kafka_topic_prefix, log, port)
    _ready(service, port)
    wait_until(
        lambda: (
            (h := health(port)) is not None
            and h["inbox_lag"] == 0
            and h["published_seq"] == h["journal_seq"]
            and int(str(h["journal_seq"])) > 0
        ),
        ready_timeout_s,
        "everything decided and published",
    )
    status, took_s = _terminate(service, log)
    assert status == 0, log.read_text()[-3000:]
    assert took_s < drain_timeout_s


def test_mid_batch_finishes_the_batch_and_stops_in_time(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    store, port, log = f"sqlite:///{tmp_path / 'ledger.db'}", free_port(), tmp_path / "run.log"
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(5, 40, 20_000))
    run_ledger(store, kafka_bootstrap, kafka_topic_prefix, "publish", str(inbox))
    service = _start(store, kafka_bootstrap, kafka_topic_prefix, log, port)
    _ready(service, port)
    wait_until(
        lambda: (h := health(port)) is not None and int(str(h["journal_seq"])) > 0,
        ready_timeout_s,
        "the first batch recorded",
    )
    status, _ = _terminate(service, log)
    assert status in (0, 1), log.read_text()[-3000:]  # 1: the relays had not caught up
    assert "stopped status=" in log.read_text()


def test_a_broker_unreachable_at_start_stops_at_once(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "run.log"
    service = _start(store, f"127.0.0.1:{free_port()}", "nobroker.", log, 0)
    wait_until(lambda: "waiting_for_broker" in log.read_text(), ready_timeout_s, "the wait")
    status, took_s = _terminate(service, log)
    assert status == 0, log.read_text()[-3000:]
    assert took_s < drain_timeout_s
    assert "stopped_while_starting" in log.read_text()


def test_a_store_that_stays_locked_does_not_hold_the_stop(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"
    store, port, log = f"sqlite:///{path}", free_port(), tmp_path / "run.log"
    service = _start(store, kafka_bootstrap, kafka_topic_prefix, log, port)
    _ready(service, port)
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # the store answers nothing: every write and read waits
        inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(7, 3, 30))
        run_ledger(store, kafka_bootstrap, kafka_topic_prefix, "publish", str(inbox))
        wait_until(lambda: "store_error" in log.read_text(), ready_timeout_s, "the store fault")
        status, _ = _terminate(service, log)
    finally:
        holder.close()
    assert status in (0, 1), log.read_text()[-3000:]


@pytest.fixture
def private_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str]]]:
    """A broker of this test alone, which the test stops while the service uses it."""
    environment = {
        "LEDGER_KAFKA_PORT": str(free_port()),
        "LEDGER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEDGER_KAFKA_DATA": str(tmp_path_factory.mktemp("private-kafka")),
    }
    bootstrap = run_server_script("kafka", "start", environment)
    try:
        yield bootstrap, environment
    finally:
        with contextlib.suppress(ServerStartError):  # the test stopped it already
            run_server_script("kafka", "stop", environment)


def _serving_a_decided_inbox(
    bootstrap: str, prefix: str, tmp_path: Path, records: int
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`ledger run` serving, its inbox of `records` decided: the process, health port, log."""
    store, port, log = f"sqlite:///{tmp_path / 'ledger.db'}", free_port(), tmp_path / "run.log"
    inbox = write_lines(tmp_path / "in.jsonl", hand_written_stream(3, 4, records))
    run_ledger(store, bootstrap, prefix, "publish", str(inbox))
    service = _start(store, bootstrap, prefix, log, port)
    _ready(service, port)
    wait_until(
        lambda: (h := health(port)) is not None and h["inbox_lag"] == 0,
        ready_timeout_s,
        "the inbox decided",
    )
    return service, port, log


def test_a_broker_gone_while_serving_does_not_hold_the_stop(
    private_broker: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    bootstrap, environment = private_broker
    service, _, log = _serving_a_decided_inbox(bootstrap, "gone.", tmp_path, 60)
    run_server_script("kafka", "stop", environment)
    wait_until(lambda: "Unable connect" in log.read_text(), ready_timeout_s, "the broker gone")
    status, _ = _terminate(service, log)
    assert status in (0, 1), log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def test_health_says_degraded_while_the_broker_is_gone_and_ok_once_it_is_back(
    private_broker: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """With nothing to publish, /health said `ok` for as long as the broker was gone: only a
    relay's failed send made it `degraded`, 30 s or more into an outage."""
    bootstrap, environment = private_broker
    service, port, log = _serving_a_decided_inbox(bootstrap, "probe.", tmp_path, 20)
    try:
        run_server_script("kafka", "stop", environment)
        # The probe's own line too: a relay still starting when the broker goes makes /health
        # degraded at once, and the broker back before the next probe would leave it unseen.
        wait_until(
            lambda: (
                (h := health(port)) is not None
                and h["status"] == "degraded"
                and "broker_unreachable" in log.read_text()
            ),
            outage_noticed_within_s,
            "/health degraded, the probe's outage line",
        )
        run_server_script("kafka", "start", environment)
        wait_until(
            lambda: (h := health(port)) is not None and h["status"] == "ok",
            ready_timeout_s,
            "/health ok again",
        )
    finally:
        status, _ = _terminate(service, log)
    assert status == 0, log.read_text()[-3000:]
    assert log.read_text().count("broker_unreachable") == 1


def test_a_health_address_it_cannot_listen_on_is_one_line_and_status_2(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    """A health port another program held ended in 'ledger: cannot use: error while
    attempting to bind ...' with status 1, after an asyncio 'Unclosed AIOKafkaConsumer'."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        done = subprocess.run(
            ledger_command(
                f"sqlite:///{tmp_path / 'ledger.db'}", kafka_bootstrap, kafka_topic_prefix,
                "run", "--health-port", str(port),
            ),
            capture_output=True, text=True, cwd=REPOSITORY, check=False, timeout=120,
            env={**os.environ, "LEDGER_HEALTH_HOST": "127.0.0.1"},
        )  # fmt: skip
    finally:
        held.close()
    assert done.returncode == 2, done.stderr
    problems = [line for line in done.stderr.splitlines() if "level=INFO" not in line]
    assert problems == [
        f"ledger: --health-host 127.0.0.1 --health-port {port} ($LEDGER_HEALTH_HOST, "
        f"$LEDGER_HEALTH_PORT): cannot listen there: address already in use"
    ]


def test_the_cli_refuses_a_drain_timeout_of_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "run", "--drain-timeout", "0"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--drain-timeout '0' ($LEDGER_DRAIN_TIMEOUT) is not a number of seconds above 0" in (
        done.stderr
    )
