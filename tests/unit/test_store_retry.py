"""backoff_retry: an outage is retried, a fault that waiting cannot mend is not."""

import asyncio

import pytest

from consumers import store_retry
from ledger.store import OperationalError, ProgrammingError


def test_an_outage_is_retried_until_the_store_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_retry, "store_outage_backoff_initial_s", 0.0)
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("the server closed the connection")
        return "done"

    assert asyncio.run(store_retry.backoff_retry(action, "test")) == "done"
    assert len(calls) == 3


def test_a_missing_right_is_not_retried() -> None:
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        raise ProgrammingError("permission denied for table ledger_trades")

    with pytest.raises(ProgrammingError, match="permission denied"):
        asyncio.run(store_retry.backoff_retry(action, "test"))
    assert len(calls) == 1
