"""`ledger run` end to end: records per second from the service's start until its store
holds the inbox's last position, and until the journal topic holds the store's last seq.

    python -m tests.benchmarks.run_bench RECORDS BOOTSTRAP [PG_URL]

against a broker (and a PostgreSQL server) already running, e.g. the ones
`deploy/local/kafka start` and `deploy/local/postgres start` print; `make bench` runs the
same measure on the servers it starts. Each run publishes `hand_written_stream(42, 500, N)`
to a fresh topic prefix and starts `ledger run` on an empty store.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from consumers.publish import publish_records
from consumers.topics import TopicNames, ensure_topics
from ledger.store import LedgerStore
from tests.conftest import free_port
from tests.integration.test_pipeline_support import (
    hand_written_stream,
    health,
    start_service,
    stop_service,
    wait_until,
)

run_timeout_s = 3_600.0
bench_stream_seed = 42
bench_stream_accounts = 500


@dataclass(frozen=True)
class RunRate:
    """Records per second of one `ledger run`: until recorded, and until published; and
    the CPU seconds of the service's process and of its children (the relay process)
    when its store held the last position: steadier than wall time on a shared machine."""

    recorded_per_s: float  # float-ok: a benchmark rate
    published_per_s: float  # float-ok: a benchmark rate
    service_cpu_s: float  # float-ok: seconds
    children_cpu_s: float  # float-ok: seconds


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process `pid` and of its live children (Linux)."""
    tick_s = 1 / os.sysconf("SC_CLK_TCK")

    def own(stat_path: Path) -> float:
        fields = stat_path.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) * tick_s  # utime, stime

    children = [
        path / "stat"
        for path in Path("/proc").iterdir()
        if path.name.isdigit() and _parent(path) == pid
    ]
    return own(Path(f"/proc/{pid}/stat")), sum(own(path) for path in children)


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return -1


async def publish(bootstrap: str, prefix: str, records: list[bytes]) -> float:
    """Publish `records` to `<prefix>.inbox`; records per second."""
    names = TopicNames(prefix)
    await ensure_topics(bootstrap, names)
    began = time.perf_counter()
    await publish_records(bootstrap, names.inbox, records)
    return len(records) / (time.perf_counter() - began)


def run_rate(store: str, bootstrap: str, prefix: str, count: int, workdir: Path) -> RunRate:
    """`ledger run` from its start (interpreter and replay of an empty store included) until
    its store holds the inbox's last position, and until `/health` says the journal topic
    holds everything the store does."""
    name = f"{TopicNames(prefix).inbox}:0"
    port = free_port()
    began = time.perf_counter()
    service = start_service(store, bootstrap, prefix, workdir / f"{prefix}.log", port)
    try:
        with LedgerStore.open(store) as reader:
            wait_until(lambda: reader.max_tracking_id(name) == count - 1, run_timeout_s, name)
        recorded_s = time.perf_counter() - began
        service_cpu_s, children_cpu_s = _cpu_s(service.pid)
        wait_until(lambda: journal_published(port), run_timeout_s, "the journal published")
        published_s = time.perf_counter() - began
    finally:
        stop_service(service)
    return RunRate(count / recorded_s, count / published_s, service_cpu_s, children_cpu_s)


def journal_published(port: int) -> bool:
    document = health(port) or {}
    return document.get("published_seq") == document.get("journal_seq")


def main() -> None:
    count, bootstrap = int(sys.argv[1]), sys.argv[2]
    stores = {"sqlite": ""}
    if len(sys.argv) > 3:
        stores["pg"] = f"{sys.argv[3]}?schema=run_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="ledger-run-bench-"))
    records = hand_written_stream(bench_stream_seed, bench_stream_accounts, count)[:count]
    for kind, url in stores.items():
        prefix = f"bench-run-{kind}-{uuid.uuid4().hex[:6]}"
        asyncio.run(publish(bootstrap, prefix, records))
        store = url or f"sqlite:///{workdir / f'{prefix}.db'}"
        rate = run_rate(store, bootstrap, prefix, count, workdir)
        print(
            f"{kind}: {count:,} records, recorded {rate.recorded_per_s:,.0f} records/s, "
            f"published {rate.published_per_s:,.0f} records/s, CPU {rate.service_cpu_s:.1f} s "
            f"service + {rate.children_cpu_s:.1f} s children (log {workdir / prefix}.log)"
        )


if __name__ == "__main__":
    main()
