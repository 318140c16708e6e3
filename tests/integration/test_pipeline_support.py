"""What the pipeline and crash tests share: inbox streams, the `ledger` subprocess, topic
readers and waits. No tests here; the helpers drive the real broker and store."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers import kafka_security
from ledger.store import LedgerStore

REPOSITORY = Path(__file__).resolve().parents[2]
kafka_request_timeout_ms = 30_000
topic_poll_timeout_ms = 500
topic_read_records_max = 5_000
topic_read_timeout_s = 120.0
wait_poll_s = 0.2
service_stop_timeout_s = 60.0
service_ready_timeout_s = 120.0
_START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


# -- inbox streams ------------------------------------------------------------------------


def _line(record: dict[str, object]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


@dataclass
class _Clock:
    moment: datetime = _START

    def tick(self, seconds: int = 1) -> str:
        self.moment += timedelta(seconds=seconds)
        return self.moment.isoformat().replace("+00:00", "Z")


def _openings(accounts: list[str], clock: _Clock) -> Iterator[bytes]:
    for account in accounts:
        yield _line(
            {
                "event_id": f"open-{account}",
                "type": "account_opened",
                "occurred_at": clock.tick(),
                "account_id": account,
                "investor_class": "professional",
                "credit_limit": "50000",
            }
        )
        yield _line(
            {
                "event_id": f"dep-usd-{account}",
                "type": "deposit",
                "occurred_at": clock.tick(),
                "account_id": account,
                "asset": "USD",
                "amount": "100000.00",
            }
        )
        yield _line(
            {
                "event_id": f"dep-btc-{account}",
                "type": "deposit",
                "occurred_at": clock.tick(),
                "account_id": account,
                "asset": "BTC",
                "amount": "2",
            }
        )


def _activity(rng: random.Random, account: str, n: int, clock: _Clock, price: str) -> bytes:
    kind = rng.choice(["spot", "perp", "withdraw", "loan", "deposit"])
    base = {"event_id": f"{kind}-{n}", "occurred_at": clock.tick(), "account_id": account}
    side = rng.choice(["buy", "sell"])
    quantity = f"0.{rng.randint(1, 500):04d}"
    if kind == "spot":
        return _line(
            {
                **base,
                "type": "spot_trade",
                "trade_id": f"S-{n}",
                "symbol": "BTC/USD",
                "side": side,
                "quantity": quantity,
                "price": price,
                "fee": "1.25",
            }
        )
    if kind == "perp":
        return _line(
            {
                **base,
                "type": "perp_trade",
                "trade_id": f"P-{n}",
                "market": "BTC-PERP",
                "side": side,
                "quantity": quantity,
                "price": price,
                "fee": "2.50",
            }
        )
    if kind == "withdraw":
        amount = f"{rng.randint(1, 30000)}.00"
        return _line({**base, "type": "withdrawal_requested", "asset": "USD", "amount": amount})
    if kind == "loan":
        return _line({**base, "type": "loan_draw_requested", "amount": f"{rng.randint(1, 9)}000"})
    return _line({**base, "type": "deposit", "asset": "USD", "amount": f"{rng.randint(1, 99)}.50"})


def hand_written_stream(seed: int, accounts: int, records: int) -> list[bytes]:
    """About `records` inbox records: openings, deposits, marks every few records (BTC and
    BTC-PERP), trades, withdrawals, loan draws, funding and day closes."""
    rng = random.Random(seed)
    clock = _Clock()
    names = [f"C-{number:04d}" for number in range(1, accounts + 1)]
    stream = list(_openings(names, clock))
    price = 68_000.0
    n = 0
    while len(stream) < records:
        n += 1
        if n % 10 == 1:
            price = max(price * (1 + rng.uniform(-0.01, 0.01)), 1_000.0)
            for instrument in ("BTC", "BTC-PERP"):
                stream.append(
                    _line(
                        {
                            "event_id": f"mark-{instrument}-{n}",
                            "type": "mark_price",
                            "occurred_at": clock.tick(),
                            "instrument": instrument,
                            "price": f"{price:.2f}",
                        }
                    )
                )
        elif n % 500 == 0:
            at = clock.tick()
            stream.append(
                _line(
                    {
                        "event_id": f"fund-{n}",
                        "type": "funding_rate",
                        "occurred_at": at,
                        "market": "BTC-PERP",
                        "rate": "0.0001",
                        "funding_time": at,
                    }
                )
            )
        elif n % 1500 == 0:
            date = clock.moment.date().isoformat()
            stream.append(
                _line(
                    {
                        "event_id": f"eod-{date}-{n}",
                        "type": "day_closed",
                        "occurred_at": clock.tick(3600),
                        "business_date": date,
                    }
                )
            )
        else:
            stream.append(_activity(rng, rng.choice(names), n, clock, f"{price:.2f}"))
    return stream


def hostile_records() -> list[tuple[bytes, str]]:
    """Records the ledger must refuse, each with the reason code it must give."""
    at = _Clock(_START + timedelta(days=30)).tick()
    return [
        (
            b'{"event_id":"h-number","type":"deposit","occurred_at":"'
            + at.encode()
            + b'","account_id":"C-0001","asset":"USD","amount":2.5}',
            "number_not_string",
        ),
        (
            b'{"event_id":"h-unknown","type":"teleport","occurred_at":"' + at.encode() + b'"}',
            "unknown_type",
        ),
        (b'{"event_id":"h-utf8","type":"deposit","account_id":"C-\xff\xfe"}', "invalid_encoding"),
        (
            b'{"event_id":"dep-usd-C-0001","type":"deposit","occurred_at":"'
            + at.encode()
            + b'","account_id":"C-0001","asset":"USD","amount":"999999.00"}',
            "event_id_conflict",
        ),
        (b"not json at all", "malformed_json"),
    ]


def write_lines(path: Path, records: list[bytes]) -> Path:
    path.write_bytes(b"".join(record + b"\n" for record in records))
    return path


# -- the `ledger` command -----------------------------------------------------------------


def ledger_command(store: str, bootstrap: str, prefix: str, *arguments: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app",
        "--store",
        store,
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--log-level",
        "INFO",
        *arguments,
    ]


def run_ledger(store: str, bootstrap: str, prefix: str, *arguments: str) -> str:
    result = subprocess.run(
        ledger_command(store, bootstrap, prefix, *arguments),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPOSITORY,
        timeout=600,
    )
    assert result.returncode in (0, 1), f"ledger {arguments} failed:\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def start_service(
    store: str, bootstrap: str, prefix: str, log: Path, health_port: int = 0
) -> subprocess.Popen[bytes]:
    """`ledger run` as a subprocess, its log appended to `log`; with a `health_port`, returns
    once `/health` answers (the journal is replayed, the clients are started)."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            ledger_command(store, bootstrap, prefix, "run", "--health-port", str(health_port)),
            stdout=sink,
            stderr=sink,
            cwd=REPOSITORY,
            env={**os.environ, "LEDGER_HEALTH_HOST": "127.0.0.1"},
        )
    if health_port:
        wait_until(
            lambda: process.poll() is not None or health(health_port) is not None,
            service_ready_timeout_s,
            "ledger run's /health",
        )
    return process


def health(port: int) -> dict[str, object] | None:
    """The /health document, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            document: dict[str, object] = json.loads(answer.read())
            return document
    except urllib.error.HTTPError as error:
        degraded: dict[str, object] = json.loads(error.read())
        return degraded
    except OSError:
        return None


def stop_service(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    return process.wait(timeout=service_stop_timeout_s)


def store_journal(url: str) -> list[bytes]:
    with LedgerStore.open(url) as store:
        return [entry.record for entry in store.iter_journal()]


def store_rejects(url: str) -> list[dict[str, object]]:
    with LedgerStore.open(url) as store:
        return [json.loads(record) for record in store.read_rejects(0, 5_000)]


def reference_journal(records_file: Path, tmp: Path) -> list[bytes]:
    """`ledger ingest` of the same records into a store of its own: the journal that
    `ledger run` must have written, byte for byte."""
    url = f"sqlite:///{tmp / 'reference.db'}"
    run_ledger(url, "127.0.0.1:1", "unused", "ingest", str(records_file))
    return store_journal(url)


# -- reading topics and waiting ---------------------------------------------------------


@dataclass(frozen=True)
class TopicRecord:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


async def _read_topic(bootstrap: str, topic: str) -> list[TopicRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **kafka_security.client_options(),  # the environment's principal on a secure broker
        group_id=None,  # a one-off read: no group
        enable_auto_commit=False,  # nothing to commit
        auto_offset_reset="earliest",  # from the start
        isolation_level="read_committed",  # only what a downstream reader may see
        max_poll_records=topic_read_records_max,
        request_timeout_ms=kafka_request_timeout_ms,
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        found: list[TopicRecord] = []
        async with asyncio.timeout(topic_read_timeout_s):
            while await consumer.position(partition) < end:
                batches = await consumer.getmany(partition, timeout_ms=topic_poll_timeout_ms)
                found.extend(
                    TopicRecord(r.key, r.value, dict(r.headers)) for r in batches.get(partition, [])
                )
        return found
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[TopicRecord]:
    """Every committed record of partition 0 of `topic`, in order."""
    return asyncio.run(_read_topic(bootstrap, topic))


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(wait_poll_s)


def last_header(bootstrap: str, topic: str, header: str) -> int:
    records = read_topic(bootstrap, topic)
    return int(records[-1].headers[header]) if records else 0
