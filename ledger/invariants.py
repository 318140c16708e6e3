"""Invariant checks that `python -O` cannot strip: only a bug can break one."""

from __future__ import annotations


class InvariantViolation(RuntimeError):
    """The ledger found its own state inconsistent; the writer must stop."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)
