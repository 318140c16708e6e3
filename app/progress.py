"""Progress of long runs on a terminal; silent when stderr is piped."""

from __future__ import annotations

import sys
import time

redraw_interval_s = 0.5


class Progress:
    def __init__(self, label: str, unit: str) -> None:
        self.label = label
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()  # display only: never a decision
        self.drawn = 0.0
        self.enabled = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.drawn >= redraw_interval_s:
            self.drawn = now
            rate = self.done / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r{self.label}: {self.done:,} {self.unit} ({rate:,.0f}/s)   ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            sys.stderr.write("\n")
