"""The projection's state kept next to the views, so that catching the views up starts where
they stand instead of replaying the journal from seq 1.

The views' rows are in their tables, but a batch's rows are computed from the projection's
in-memory state (the book and the registers of `projections.state`), which a new process
would otherwise rebuild from seq 1 before it can apply the first new event: the cost of
every `ledger report` on a large store. So after catching up, the runner saves that state
with its seq (`save`), and a new runner resumes from it (`resume`) when it fits exactly:
the same seq and hash as the views' recorded position, a policy in force there that the
reader has, and the same code
(format and the digest of the modules that build the state). Anything else, and the state is
rebuilt from seq 1 as before. The state is derived data: losing it costs one replay.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import typing
from pathlib import Path
from typing import Any

import msgspec

from ledger import journal_events as je
from ledger import snapshots
from ledger.adopted_policies import AdoptedPolicies
from ledger.store import LedgerStore
from projections import records, state
from projections.database import DEFAULT_PROJECTION, Position, ViewDatabase
from projections.state import ProjectionState

log = logging.getLogger("projections.resume")

# 3: the book whole but its clock: trades and deposits (a later bust or return reverses one)
# and the inputs seen (the API's pre-trade check answers a repeated event id from them).
# 4: a reader's book: the reversed originals only, no inputs seen (the store keeps them).
STATE_FORMAT = 4
# Fields a saved state leaves out: the policies (given by the caller; the one in force at
# the state's seq checked by digest) and what the current batch touched (empty between
# batches).
_LEFT_OUT = frozenset({"policies", "policy", "touched"})
_HINTS = typing.get_type_hints(ProjectionState)
_FIELDS = [f.name for f in dataclasses.fields(ProjectionState) if f.name not in _LEFT_OUT]
# Every field of ProjectionState, whatever a later change adds, with its declared type.
_SavedState: Any = msgspec.defstruct(
    "SavedProjectionState",
    [
        ("format", int),
        ("code_digest", str),
        ("policy_digest", str),
        *((name, _HINTS[name]) for name in _FIELDS),
    ],
    kw_only=True,
)


def _code_digest() -> str:
    digest = hashlib.sha256(f"format {STATE_FORMAT}\n{snapshots.CODE_DIGEST}\n".encode())
    for module in (state, records):
        assert module.__file__ is not None  # modules loaded from files
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


CODE_DIGEST = _code_digest()


class _SavedHead(msgspec.Struct, kw_only=True):
    format: int
    code_digest: str
    policy_digest: str


_encode = msgspec.msgpack.Encoder().encode
_decode_head = msgspec.msgpack.Decoder(_SavedHead).decode
_decode = msgspec.msgpack.Decoder(_SavedState).decode


def encoded(projection: ProjectionState) -> bytes:
    """`projection`'s state (between batches), as it is kept next to the views."""
    values = {field: getattr(projection, field) for field in _FIELDS}
    # The book whole, registers included: a later bust or return reverses a trade or a
    # deposit it keeps, and the API's pre-trade check answers a repeated event id from the
    # inputs seen. Only the clock (the deciding desk's) and the event being applied go.
    values["book"] = dataclasses.replace(projection.book, clock=None, _applying=None)
    saved = _SavedState(
        format=STATE_FORMAT,
        code_digest=CODE_DIGEST,
        policy_digest=projection.policy.digest,
        **values,
    )
    return _encode(saved)


def save(database: ViewDatabase, projection: ProjectionState, name: str) -> None:
    """Keep `projection`'s state (between batches) next to the views."""
    database.save_state(projection.last_seq, encoded(projection), name)


def valued_with(
    database: ViewDatabase,
    policies: AdoptedPolicies,
    position: Position,
    name: str = DEFAULT_PROJECTION,
) -> bool:
    """Whether the views at `position` were valued with one of `policies` in force there, as
    their saved state records (read from its head alone: the state itself is not decoded)."""
    found = database.saved_state(name)
    if found is None or found[0] != position.last_seq or position.last_seq == 0:
        return False
    return _decode_head(found[1]).policy_digest in policies.by_digest


def resume(
    database: ViewDatabase,
    policies: AdoptedPolicies,
    position: Position,
    name: str = DEFAULT_PROJECTION,
) -> ProjectionState:
    """The saved state when it stands exactly at `position`, else a fresh one (seq 0)."""
    found = database.saved_state(name)
    if found is None or found[0] != position.last_seq or position.last_seq == 0:
        return ProjectionState(policies)
    return _decoded(found[1], policies, position.last_hash) or ProjectionState(policies)


def kept_at_or_before(
    database: ViewDatabase, store: LedgerStore, policies: AdoptedPolicies, seq: int
) -> tuple[ProjectionState, bytes] | None:
    """The latest state kept at a past position (`database.save_snapshot`) at or before
    `seq`, decoded, with its encoding; None when there is none, or it is of other code
    or policy, or not of this journal (its hash is not the journal's there)."""
    found = database.snapshot_at_or_before(seq)
    if found is None:
        return None
    kept_seq, state_bytes = found
    (entry,) = store.read_journal(kept_seq - 1, 1)
    recorded = je.decode_journal_record(entry.record)
    decoded = _decoded(state_bytes, policies, recorded.hash)
    return None if decoded is None else (decoded, state_bytes)


def _decoded(
    state_bytes: bytes, policies: AdoptedPolicies, last_hash: str
) -> ProjectionState | None:
    """A saved state of this code, valued with one of `policies` in force at its seq, whose
    book ends at `last_hash`; else None."""
    head = _decode_head(state_bytes)
    if (head.format, head.code_digest) != (STATE_FORMAT, CODE_DIGEST) or (
        head.policy_digest not in policies.by_digest
    ):
        log.info("saved projection state is of other code or policy: replaying from seq 1")
        return None
    saved = _decode(state_bytes)
    if saved.book.last_hash != last_hash:
        log.warning("saved projection state does not match the views: replaying from seq 1")
        return None
    return ProjectionState(policies, **{field: getattr(saved, field) for field in _FIELDS})
