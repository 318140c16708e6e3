"""`ledger demo --kafka` decides what the embedded demo decides, with the policy it is given.

Its `ledger run` took the demonstration policy (or LEDGER_POLICY) whatever `--policy` said,
so with a policy of one's own the journal through Kafka differed from the embedded one the
venue had reacted to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_DEMONSTRATION_POLICY = Path(__file__).parents[2] / "ledger" / "policies" / "demo.toml"


def _last_hash(demo_output: str) -> str:
    (line,) = [line for line in demo_output.splitlines() if line.startswith("journal ")]
    return line.rsplit(" ", 1)[1]


def _demo(*options: str, cwd: Path) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "app", "demo", "--accounts", "4", "--days", "1", *options],
        capture_output=True, text=True, cwd=cwd, check=False, env=environment, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_through_kafka_decides_with_the_policy_given(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    text = _DEMONSTRATION_POLICY.read_text(encoding="utf-8")
    assert 'version = "' in text
    own = tmp_path / "own-policy.toml"
    own.write_text(text.replace('version = "', 'version = "own-', 1), encoding="utf-8")
    policy = ("--policy", str(own))
    embedded = _demo(*policy, "--folder", "embedded", cwd=tmp_path)
    through_kafka = _demo(
        *policy, "--kafka", "--bootstrap", kafka_bootstrap, "--folder", "kafka", cwd=tmp_path
    )
    assert _last_hash(through_kafka) == _last_hash(embedded)
    default = _demo("--folder", "default", cwd=tmp_path)
    assert _last_hash(default) != _last_hash(embedded)  # the policy is in the journal
