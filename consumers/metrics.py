"""`GET /metrics` of `ledger run`: Prometheus text format 0.0.4.

Inbox lag per partition, records and journal events as counters (Prometheus's `rate()`
makes them per second), rejects by reason, each relay's lag behind the store, store and
broker health, and a histogram of the inbox batches' durations (decide and store).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds of the batch-duration buckets, seconds (`+Inf` is added).
BATCH_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Cumulative bucket counts, their sum and count, as Prometheus exposes them."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0  # float-ok: seconds
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, seconds: float) -> None:  # float-ok: a duration
        for index, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[index] += 1
        self.total += seconds
        self.count += 1


@dataclass
class ServiceCounters:
    """What `ledger run` counts since it started, beside its positions (IngestState)."""

    events: int = 0  # journal events recorded
    rejects_by_reason: Counter[str] = field(default_factory=Counter)
    batch_seconds: Histogram = field(default_factory=lambda: Histogram(BATCH_SECONDS_BUCKETS))


@dataclass(frozen=True)
class ServiceReading:
    """One reading of the service's figures, rendered by `metrics_text`."""

    lag: dict[tuple[str, int], int]
    records: int
    journal_seq: int
    counters: ServiceCounters
    relay_lag: dict[str, int]  # relay name -> records stored but not yet published
    store_up: bool
    broker_up: bool


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(reading: ServiceReading) -> str:
    counters = reading.counters
    lines = _family("ledger_inbox_lag", "gauge", "Inbox records not yet decided, per partition.")
    for (topic, partition), lag in sorted(reading.lag.items()):
        lines.append(f'ledger_inbox_lag{{topic="{_label(topic)}",partition="{partition}"}} {lag}')
    lines += _family("ledger_inbox_records_total", "counter", "Inbox records decided.")
    lines.append(f"ledger_inbox_records_total {reading.records}")
    lines += _family("ledger_journal_events_total", "counter", "Journal events recorded.")
    lines.append(f"ledger_journal_events_total {counters.events}")
    lines += _family("ledger_journal_seq", "gauge", "The last journal seq in the store.")
    lines.append(f"ledger_journal_seq {reading.journal_seq}")
    lines += _family("ledger_rejects_total", "counter", "Inbox records refused, by reason.")
    for reason, count in sorted(counters.rejects_by_reason.items()):
        lines.append(f'ledger_rejects_total{{reason="{_label(reason)}"}} {count}')
    lines += _family("ledger_relay_lag", "gauge", "Records stored but not yet published.")
    for relay, lag in sorted(reading.relay_lag.items()):
        lines.append(f'ledger_relay_lag{{relay="{relay}"}} {lag}')
    lines += _family("ledger_store_up", "gauge", "1 when the store answers.")
    lines.append(f"ledger_store_up {int(reading.store_up)}")
    lines += _family(
        "ledger_broker_up", "gauge", "1 when the broker answers the service and its relays."
    )
    lines.append(f"ledger_broker_up {int(reading.broker_up)}")
    lines += _histogram(counters.batch_seconds)
    return "\n".join(lines) + "\n"


def _histogram(histogram: Histogram) -> list[str]:
    name = "ledger_batch_duration_seconds"
    lines = _family(name, "histogram", "Time to decide and store one inbox batch.")
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {histogram.count}')
    lines.append(f"{name}_sum {histogram.total:.6f}")
    lines.append(f"{name}_count {histogram.count}")
    return lines
