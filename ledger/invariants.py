"""Invariant checks that `python -O` cannot strip: only a bug can break one."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class InvariantViolation(RuntimeError):
    """The ledger found its own state inconsistent; the writer must stop."""


def require(condition: bool, message: str, *args: object) -> None:
    """Raise InvariantViolation unless `condition`. With `args`, `message` is a %-format
    written only on failure, so a check on a hot path costs no formatting."""
    if not condition:
        raise InvariantViolation(message % args if args else message)


def present(value: T | None, message: str) -> T:
    """`value`, which only a bug can leave None (an `assert` that `python -O` keeps)."""
    if value is None:
        raise InvariantViolation(message)
    return value
