"""The `ledger` console script and `python -m app`: the command line of `app.cli`, with a
stop while its modules load ending as a stop during the command does. Loading them takes
about half a second, longer on a busy machine: a Ctrl-C then was Python's traceback of
whatever module was loading, and later 130 even for `ledger run`, whose stop before it
serves is status 0 (docs/pipeline.md).

SIGINT and SIGTERM are held while the modules load, then acted on once the command line
is read (`app.cli.main`): `ledger run` stops with status 0, any other command ends as
before (130 for a Ctrl-C, killed by SIGTERM)."""

from __future__ import annotations

import signal
from types import FrameType

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def main() -> int:
    held: list[signal.Signals] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signal.Signals(signum))

    previous = {signum: signal.signal(signum, hold) for signum in _HELD_SIGNALS}
    try:
        from app import cli  # noqa: PLC0415 (loaded here, so that a stop meanwhile is held)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return cli.main(stopped_while_loading=held[0] if held else None)
