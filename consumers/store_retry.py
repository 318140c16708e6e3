"""Store work from the event loop: a blocking store call in a thread, retried with
exponential backoff while the store is unreachable (a database restart), then given up.
Used by the ingest, the checkpoint writer and the relays alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from ledger.store import PersistenceError, ProgrammingError

log = logging.getLogger("consumers.store_retry")
_T = TypeVar("_T")

store_outage_retries_max = 60  # then exit non-zero: the orchestrator restarts the service
store_outage_backoff_initial_s = 0.2
store_outage_backoff_max_s = 5.0
# Errors of an unreachable or restarting database; anything else stops the service, a
# ProgrammingError among them (a role without a right it needs, such as the reader's
# credentials given to `ledger run`): a PersistenceError too, but waiting changes nothing.
STORE_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (PersistenceError, OSError)


async def backoff_retry(
    action: Callable[[], _T], what: str, on_failure: Callable[[], None] | None = None
) -> _T:
    """Run the blocking `action` in a thread until it succeeds, backing off on store
    outages; re-raises after `store_outage_retries_max` failed attempts."""
    delay_s = store_outage_backoff_initial_s
    for attempt in range(1, store_outage_retries_max + 1):
        try:
            return await asyncio.to_thread(action)
        except ProgrammingError:
            raise
        except STORE_OUTAGE_ERRORS as error:
            if on_failure is not None:
                on_failure()
            if attempt == store_outage_retries_max:
                raise
            log.warning(
                "store_unavailable action=%s attempt=%d retry_in_s=%.1f error=%s",
                what,
                attempt,
                delay_s,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, store_outage_backoff_max_s)
    raise AssertionError("unreachable: the last attempt re-raises")
