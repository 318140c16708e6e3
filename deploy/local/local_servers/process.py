"""A server process in the background: where things live, is it alive, stop it, show its log."""

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

stop_poll_interval_s = 0.1
log_tail_lines_max = 60


class ServerError(Exception):
    """A server cannot be started or stopped; the message is for a person, in sentences."""


def repository_root() -> Path:
    """The checkout this file lives in (deploy/local/local_servers/process.py)."""
    return Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    """Downloads and default data folders, outside git: `LEDGER_CACHE` or `<repo>/.cache`."""
    configured = os.environ.get("LEDGER_CACHE", "")
    return Path(configured).resolve() if configured else repository_root() / ".cache"


def env_path(name: str, default: Path) -> Path:
    configured = os.environ.get(name, "")
    return Path(configured).resolve() if configured else default


def env_port(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ServerError(f"{name}={text!r} is not a TCP port number (1 to 65535).")
    return int(text)


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def pid_runs(pid: int, command_marker: str) -> bool:
    """Whether `pid` is alive and its command line holds `command_marker` (not a reused pid).

    A zombie has an empty command line, so a killed child that nobody reaped counts as gone.
    """
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return command_marker.encode() in command_line


def port_accepts(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout_s: float, interval_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def stop_pid(pid: int, command_marker: str, grace_s: float) -> None:
    """SIGTERM, wait up to `grace_s` for a clean exit, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_for(lambda: not pid_runs(pid, command_marker), wait_s, stop_poll_interval_s):
            return
    raise ServerError(f"Process {pid} is still running after SIGKILL.")


def log_tail(log_file: Path, lines_max: int = log_tail_lines_max) -> str:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {log_file})"
    return f"last lines of {log_file}:\n" + "\n".join(lines[-lines_max:])
