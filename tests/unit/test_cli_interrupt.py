"""Ctrl-C at any moment of a command is exit status 130 without a traceback: also while
the command's modules load (about half a second; a traceback of the module loading, exit
status -2, before)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported by a sitecustomize module: a SIGINT sent to the process as it begins to load
# the named module, as a person's Ctrl-C in the first moment of a command arrives.
_INTERRUPTER = """
import importlib.abc, os, signal, sys

class Interrupter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupter())
"""


@pytest.mark.parametrize("module", ["ledger.store", "app.demo", "projections.views"])
def test_ctrl_c_while_the_command_loads_is_status_130_without_a_traceback(
    module: str, tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize.py").write_text(_INTERRUPTER.format(module=module), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "LEDGER_STORE"}
    environment["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "app", "report", "balances"],
        capture_output=True, text=True, cwd=tmp_path, check=False, env=environment,
    )  # fmt: skip
    assert done.returncode == 130
    assert done.stderr == ""
    assert done.stdout == ""
