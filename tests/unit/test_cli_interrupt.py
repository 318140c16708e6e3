"""Ctrl-C at any moment of a command is exit status 130 without a traceback: also while
the command's modules load (about half a second; a traceback of the module loading, exit
status -2, before). `ledger run` stopped before it serves has decided nothing: status 0,
for a Ctrl-C and a SIGTERM alike (130 and killed by SIGTERM before)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Imported by a sitecustomize module: a signal sent to the process as it begins to load
# the named module, as a person's Ctrl-C in the first moment of a command arrives.
_INTERRUPTER = """
import importlib.abc, os, signal, sys

class Interrupter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.{signal})
        return None

sys.meta_path.insert(0, Interrupter())
"""


@pytest.mark.parametrize("module", ["ledger.store", "app.demo", "projections.views"])
def test_ctrl_c_while_the_command_loads_is_status_130_without_a_traceback(
    module: str, tmp_path: Path
) -> None:
    done = _interrupted(tmp_path, module, "SIGINT", "report", "balances")
    assert done.returncode == 130
    assert done.stderr == ""
    assert done.stdout == ""


def _interrupted(
    folder: Path, module: str, signal_name: str, *command: str
) -> subprocess.CompletedProcess[str]:
    """`ledger COMMAND` sent `signal_name` as it begins to load `module`."""
    interrupter = _INTERRUPTER.format(module=module, signal=signal_name)
    (folder / "sitecustomize.py").write_text(interrupter, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    environment["PYTHONPATH"] = str(folder)
    return subprocess.run(
        [sys.executable, "-m", "app", *command],
        capture_output=True, text=True, cwd=folder, check=False, env=environment,
    )  # fmt: skip


# ledger.store loads with the command line, consumers.service when `run` begins.
@pytest.mark.parametrize("module", ["ledger.store", "consumers.service"])
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_while_ledger_run_loads_is_status_0(
    module: str, signal_name: str, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    # A broker that is not there: the stop comes long before the service would look for it.
    done = _interrupted(tmp_path, module, signal_name, "--store", store, "run",
                        "--bootstrap", "127.0.0.1:9", "--health-port", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "ledger: stopped while starting: nothing was decided yet\n"
    assert done.stdout == ""
    assert not (tmp_path / "ledger.db").exists()  # nothing was opened, nothing decided


def test_sigterm_while_another_command_loads_still_ends_it_by_the_signal(
    tmp_path: Path,
) -> None:
    done = _interrupted(tmp_path, "ledger.store", "SIGTERM", "report", "balances")
    assert done.returncode == -signal.SIGTERM
    assert done.stderr == ""
