"""The relay process stops as soon as the service that feeds it is gone (a `kill -9` of
`ledger run` closes its standard input), and it ignores the SIGTERM meant for the service.
No broker is needed: the relays cannot reach one, and the child must stop anyway."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from consumers.exit_status import EXIT_FAILED
from consumers.relay_process import RelayConfig
from ledger.store import LedgerStore
from tests.conftest import REPOSITORY

child_exit_timeout_s = 30.0
child_settle_s = 3.0  # long enough for the child to be serving its relays


def _child(tmp_path: Path) -> subprocess.Popen[bytes]:
    store_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    LedgerStore.open(store_url).close()  # the service creates the store before the child
    config = RelayConfig(
        store_url=store_url, bootstrap="127.0.0.1:1", prefix="unit", log_level="INFO"
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "consumers.relay_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPOSITORY,
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps(vars(config)).encode() + b"\n")
    child.stdin.flush()
    return child


def test_the_relay_process_stops_when_the_service_is_gone(tmp_path: Path) -> None:
    child = _child(tmp_path)
    time.sleep(child_settle_s)
    assert child.poll() is None, child.communicate()
    began = time.monotonic()
    _, stderr = child.communicate(b"", timeout=child_exit_timeout_s)  # closes its input
    assert child.returncode == EXIT_FAILED
    assert b"relay_process_orphaned" in stderr
    assert time.monotonic() - began < child_exit_timeout_s / 2


def test_the_relay_process_leaves_sigterm_to_the_service(tmp_path: Path) -> None:
    child = _child(tmp_path)
    time.sleep(child_settle_s)
    child.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert child.poll() is None, "a SIGTERM to the process group must not stop the relays"
    child.communicate(b"", timeout=child_exit_timeout_s)
    assert child.returncode == EXIT_FAILED
