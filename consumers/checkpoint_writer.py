"""Signed checkpoints of the journal's end, written by `ledger run` at an interval.

Every `interval_s` (and once more when the service stops), when the journal has grown
since the last checkpoint, the writer signs the store's last journal record (seq, hash,
ledger time; `ledger.checkpoints`) with the service's Ed25519 key and records it in the
store as the next numbered checkpoint. The checkpoint relay publishes it to
`<prefix>.checkpoints`. A checkpoint kept in two places anchors the journal's end: a
journal shortened or rewritten after it fails `ledger audit verify --signed-checkpoints`.

Checkpoints are not decisions: they take nothing from the wall clock but their pacing,
and the journal does not change when they are on or off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.store_retry import backoff_retry
from ledger.checkpoints import checkpoint_position, sign_journal_entry
from ledger.store import LedgerStore

log = logging.getLogger("consumers.checkpoint_writer")


class CheckpointWriter:
    """Records a signed checkpoint of the journal's end when it moved, every interval.
    Without a key it writes none, and only tells the relay what the store holds."""

    def __init__(
        self,
        store: LedgerStore,
        key: Ed25519PrivateKey | None,
        interval_s: float,  # float-ok: seconds between checkpoints
        recorded: asyncio.Event,
    ) -> None:
        self._store = store
        self._key = key
        self._interval_s = interval_s
        self._recorded = recorded  # wakes the checkpoint relay
        self.count = 0  # checkpoints the store holds
        self._last_seq = 0  # the journal seq of the latest

    def resume(self) -> None:
        """Blocking: where the store's checkpoints end."""
        self.count = self._store.checkpoint_count()
        if self.count:
            (latest,) = self._store.read_checkpoints(self.count - 1, 1)
            self._last_seq, _ = checkpoint_position(latest)

    async def run(self, stopping: asyncio.Event) -> None:
        """Checkpoint every interval until `stopping`, then once more: the journal's end."""
        if self._key is None:
            log.info(
                "checkpoints_off: no --checkpoint-key; the store's %d are published", self.count
            )
            await stopping.wait()
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval_s)
            if await backoff_retry(self._write_next, "write_checkpoint"):
                self._recorded.set()
            if stopping.is_set():
                return

    def _write_next(self) -> bool:
        """Blocking: sign and record the journal's end if it moved; whether it did."""
        seq = self._store.last_seq()
        if self._key is None or seq <= self._last_seq:
            return False
        (entry,) = self._store.read_journal(seq - 1, 1)
        checkpoint = sign_journal_entry(entry, self._key)
        self._store.append_checkpoint(self.count + 1, checkpoint)
        self.count, self._last_seq = self.count + 1, seq
        log.info(
            "checkpoint_recorded number=%d seq=%d hash=%s",
            self.count, seq, checkpoint_position(checkpoint)[1],
        )  # fmt: skip
        return True
