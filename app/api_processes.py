"""`ledger api --workers N`: N server processes answering on one port.

One process's HTTP stack answers at most about 1,500 requests a second on the project's
machine (docs/performance.md), and a pre-trade check's latency under many concurrent
callers is the queue in front of it: several processes share the callers. Each worker is a
whole `ledger api` of its own: it opens the store, builds its views from the journal, keeps
its figures, counts /metrics from the journal (so every worker gives the same counts at the
same journal seq) and has its own as_of pool. Each answer names its journal seq, so a caller
can tell answers of workers at different positions apart.

Each worker listens on its own socket bound to the same address with `SO_REUSEPORT`: the
kernel spreads new connections over the workers that listen (by a hash of the connection's
addresses), and a worker that stops takes only its own connections with it. The supervisor
(the process `ledger api` started as) serves nothing: it forks the workers, each in its own
process group so that a terminal's Ctrl-C reaches only the supervisor, passes SIGTERM or
SIGINT on to every worker as SIGTERM, stops what an exited worker left in its group (the
as_of pool of a worker that was killed), and when one worker exits stops the others and exits
with the first failing status, for the service manager to restart the whole (a worker
restarted alone would have to build its views while the others answer).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

from ledger.invariants import require


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other workers may bind too (SO_REUSEPORT); the
    server listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def run_workers(count: int, serve: Callable[[], int]) -> int:
    """Fork `count` workers each running `serve()`; wait for them; return the exit status
    (0 when they were stopped by a signal passed on, else the first non-zero status)."""
    require(count > 1, f"{count} API workers: one serves without a supervisor")
    sys.stdout.flush()
    sys.stderr.flush()
    workers: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            os.setpgid(0, 0)
            # A fault raised by `serve` unwinds to the command line's handler in this worker,
            # which reports it in one line and exits; a clean stop never returns from here.
            status = serve()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        workers.append(pid)
    return _supervise(workers)


def _supervise(workers: list[int]) -> int:
    stopping = False

    def stop(_signal_number: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _signal_all(workers)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    running = set(workers)
    while running:
        pid, wait_status = os.wait()
        running.discard(pid)
        # What the worker started (its as_of pool) is in its process group: a worker that
        # was killed left it running, orphaned, with the store open.
        _signal_group(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping:
            # One worker gone (a fault, or killed): stop the others, report its status.
            stopping = True
            status = code if code > 0 else 1
            _signal_all(running)
        elif code > 0 and status == 0:
            status = code
    return status


def _signal_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left in it: a clean exit
        os.killpg(group, signal.SIGTERM)


def _signal_all(pids: set[int] | list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it exited since the last wait
            os.kill(pid, signal.SIGTERM)
