"""`ledger publish` → Kafka → `ledger run` → store → `<prefix>.events` / `<prefix>.rejects`,
against the real broker and the real stores: every journal record published once and in
order, the chain verifies, and the journal is byte for byte `ledger ingest`'s."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from consumers.metrics import METRICS_CONTENT_TYPE
from ledger.journal import verify_journal
from tests.conftest import free_port
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    hostile_records,
    last_header,
    read_topic,
    reference_journal,
    run_ledger,
    start_service,
    stop_service,
    store_journal,
    store_rejects,
    wait_until,
    write_lines,
)

pytestmark = pytest.mark.integration
pipeline_timeout_s = 180.0
pipeline_records = 2_500


def _check_published(bootstrap: str, prefix: str, expected: list[bytes]) -> None:
    records = read_topic(bootstrap, f"{prefix.rstrip('.')}.events")
    seqs = [int(record.headers["seq"]) for record in records]
    assert seqs == list(range(1, len(expected) + 1)), "every seq once, in order"
    assert [record.value for record in records] == expected, "values exactly as stored"
    report = verify_journal(record.value for record in records)
    assert report.ok, report
    for record in records:
        body = json.loads(record.value)
        assert record.headers["type"] == body["type"].encode()
        assert record.headers["hash"] == body["hash"].encode()
        key = body.get("account_id") or body.get("instrument") or body.get("market")
        assert record.key == (key or body["type"]).encode()


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_run_publishes_the_journal_of_ingest_once_in_order(
    store_kind: str,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    store = (
        f"sqlite:///{tmp_path / 'run.db'}"
        if store_kind == "sqlite"
        else str(request.getfixturevalue("pg_schema_url"))
    )
    hostile = hostile_records()
    records = hand_written_stream(7, 15, pipeline_records) + [raw for raw, _ in hostile]
    inbox = write_lines(tmp_path / "inbox.jsonl", records)
    expected = reference_journal(inbox, tmp_path)
    # The hostile records include lines that are not JSON: sent to exercise the rejects.
    arguments = ("publish", str(inbox), "--send-malformed")
    output = run_ledger(store, kafka_bootstrap, kafka_topic_prefix, *arguments)
    assert f"published {len(records)} records" in output

    port = free_port()
    service = start_service(store, kafka_bootstrap, kafka_topic_prefix, tmp_path / "run.log", port)
    try:
        wait_until(
            lambda: (
                last_header(kafka_bootstrap, f"{kafka_topic_prefix}events", "seq") >= len(expected)
            ),
            pipeline_timeout_s,
            "the journal's last seq on the events topic",
        )
        _check_metrics(port, len(records), len(expected), hostile)
    finally:
        assert stop_service(service) == 0, (tmp_path / "run.log").read_text()[-3000:]

    assert store_journal(store) == expected
    _check_published(kafka_bootstrap, kafka_topic_prefix, expected)
    _check_rejects(kafka_bootstrap, kafka_topic_prefix, store, hostile)


def _check_metrics(
    port: int, records: int, journal_seq: int, hostile: list[tuple[bytes, str]]
) -> None:
    """ledger run's /metrics counts what it decided; one Content-Type."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.headers.get_all("Content-Type") == [METRICS_CONTENT_TYPE]
        text = answer.read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples["ledger_inbox_records_total"] == str(records)
    assert samples["ledger_journal_seq"] == str(journal_seq)
    assert samples["ledger_journal_events_total"] == str(journal_seq)
    assert samples['ledger_inbox_lag{topic="' + _inbox_topic(samples) + '",partition="0"}'] == "0"
    refused = Counter(reason for _, reason in hostile)
    for reason, count in refused.items():
        assert int(samples[f'ledger_rejects_total{{reason="{reason}"}}']) >= count
    assert samples["ledger_store_up"] == "1"
    assert int(samples["ledger_batch_duration_seconds_count"]) >= 1


def _inbox_topic(samples: dict[str, str]) -> str:
    (name,) = (n for n in samples if n.startswith("ledger_inbox_lag{"))
    return name.split('topic="', 1)[1].split('"', 1)[0]


def _check_rejects(
    bootstrap: str, prefix: str, store: str, hostile: list[tuple[bytes, str]]
) -> None:
    stored = store_rejects(store)
    published = read_topic(bootstrap, f"{prefix.rstrip('.')}.rejects")
    assert [json.loads(r.value) for r in published] == stored
    assert [int(r.headers["number"]) for r in published] == list(range(1, len(stored) + 1))
    # The hostile records come last in the inbox, so their rejects are the last ones.
    tail = stored[-len(hostile) :]
    assert [r["reason_code"] for r in tail] == [reason for _, reason in hostile]
    for reject, (raw, _) in zip(tail, hostile, strict=True):
        assert reject["topic"] == f"{prefix.rstrip('.')}.inbox"
        assert reject["partition"] == 0
        if reject["value_encoding"] == "utf-8":
            assert str(reject["value"]).encode() == raw
        else:
            assert reject["value_encoding"] == "base64"
            assert base64.b64decode(str(reject["value"])) == raw
    assert {r["value_encoding"] for r in tail} == {"utf-8", "base64"}


def test_hostile_records_change_no_balance(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    """The same stream with and without the hostile records: the same journal."""
    hostile = hostile_records()
    clean = hand_written_stream(11, 5, 300)
    store = f"sqlite:///{tmp_path / 'run.db'}"
    inbox = write_lines(tmp_path / "inbox.jsonl", clean + [raw for raw, _ in hostile])
    expected = reference_journal(write_lines(tmp_path / "clean.jsonl", clean), tmp_path)
    full_reference = f"sqlite:///{tmp_path / 'full.db'}"
    run_ledger(full_reference, kafka_bootstrap, kafka_topic_prefix, "ingest", str(inbox))
    rejects = store_rejects(full_reference)
    assert [r["reason_code"] for r in rejects[-len(hostile) :]] == [r for _, r in hostile]
    run_ledger(
        store, kafka_bootstrap, kafka_topic_prefix, "publish", str(inbox), "--send-malformed"
    )
    service = start_service(
        store, kafka_bootstrap, kafka_topic_prefix, tmp_path / "run.log", free_port()
    )
    try:
        wait_until(
            lambda: (
                last_header(kafka_bootstrap, f"{kafka_topic_prefix}rejects", "number")
                >= len(rejects)
            ),
            pipeline_timeout_s,
            "every reject, the hostile records' last",
        )
    finally:
        assert stop_service(service) == 0
    assert store_journal(store) == expected
