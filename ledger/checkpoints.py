"""Signed checkpoints: the journal's end (seq, hash, ledger time) signed with Ed25519.

The hash chain shows that no record inside the journal was changed, but not that its end
is where it was: dropping the last records, or rewriting the journal from some seq on
with recomputed hashes, leaves a chain that verifies. A checkpoint kept away from the
ledger (by an auditor, or in another system) anchors the end: `ledger audit verify
--checkpoint FILE` fails when the journal is shorter than the checkpoint's seq or holds a
different hash there, and the signature shows who vouched for the checkpoint.

`ledger run` signs one at an interval when given a key, and keeps it in the store and on
`<prefix>.checkpoints` (docs/pipeline.md); `ledger journal checkpoint` signs one on demand.

The signed bytes are the canonical JSON of `{"hash", "recorded_at", "seq"}`; a checkpoint
adds `signature` (base64) and `algorithm` ("ed25519"). A checkpoint file holds one or more
checkpoints, one per line: a single checkpoint, or the checkpoint topic saved as JSON lines.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.identifiers import is_ascii_number
from ledger.invariants import require
from ledger.journal import JournalEntry, canonical_json

CHECKPOINT_ALGORITHM = "ed25519"
# `ledger run` signs the journal's end at most this often (seconds), when it moved.
checkpoint_interval_default_s = 60.0
_HASH_HEX_CHARS = 64


class CheckpointError(ValueError):
    """A checkpoint, anchor or key that cannot be used: a sentence a person can act on."""


@dataclass(frozen=True)
class Anchor:
    """A journal position that must hold: the record of `seq` has `hash`."""

    seq: int
    hash: str
    source: str  # where it came from, for the verdict: `--expect`, a checkpoint file


class SignedCheckpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A checkpoint as written: a file line, a store row, a `<prefix>.checkpoints` value."""

    seq: int  # the journal seq it is of
    hash: str  # that record's hash, 64 lowercase hex digits
    recorded_at: str  # that record's ledger time
    algorithm: str  # "ed25519"
    signature: str  # base64 of the signature over the canonical JSON of hash, recorded_at, seq


_decode_checkpoint = msgspec.json.Decoder(SignedCheckpoint).decode


class _RecordEnd(msgspec.Struct, frozen=True):
    """What a checkpoint takes from the journal record it is of."""

    hash: str
    recorded_at: str


_decode_record_end = msgspec.json.Decoder(_RecordEnd).decode


def parse_expectation(text: str) -> Anchor:
    """`SEQ:HASH` as an anchor (`ledger audit verify --expect`)."""
    seq_text, _, hash_text = text.partition(":")
    if not is_ascii_number(seq_text) or int(seq_text) < 1 or not _is_hash(hash_text):
        raise CheckpointError(
            f"--expect {text!r}: write SEQ:HASH, a seq from 1 and the record's 64-hex hash"
        )
    return Anchor(int(seq_text), hash_text, f"--expect {seq_text}")


def _is_hash(text: str) -> bool:
    return len(text) == _HASH_HEX_CHARS and all(c in "0123456789abcdef" for c in text)


def _signed_bytes(seq: int, hash_text: str, recorded_at: str) -> bytes:
    return canonical_json({"hash": hash_text, "recorded_at": recorded_at, "seq": seq})


def sign_checkpoint(seq: int, hash_text: str, recorded_at: str, key: Ed25519PrivateKey) -> bytes:
    """A checkpoint: canonical JSON with its Ed25519 signature (no line end)."""
    signature = key.sign(_signed_bytes(seq, hash_text, recorded_at))
    document = {
        "algorithm": CHECKPOINT_ALGORITHM,
        "hash": hash_text,
        "recorded_at": recorded_at,
        "seq": seq,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return canonical_json(document)


def sign_journal_entry(entry: JournalEntry, key: Ed25519PrivateKey) -> bytes:
    """The checkpoint of a journal entry: its seq, hash and ledger time, signed."""
    end = _decode_record_end(entry.record)
    return sign_checkpoint(entry.seq, end.hash, end.recorded_at, key)


def checkpoint_position(document: bytes) -> tuple[int, str]:
    """The seq and hash a checkpoint the ledger wrote itself is of (signature unchecked)."""
    checkpoint = _decode_checkpoint(document)
    return checkpoint.seq, checkpoint.hash


def verify_checkpoint(
    document: bytes, public_keys: Sequence[Ed25519PublicKey], source: str
) -> Anchor:
    """The anchor a checkpoint vouches for, once its signature verifies with one of
    `public_keys` (the keys in use since the oldest checkpoint: a rotated key's old
    checkpoints stay valid); `source` names it in errors and verdicts (a file and line, a
    store, a topic offset)."""
    require(bool(public_keys), "a checkpoint is verified with at least one public key")
    try:
        checkpoint = _decode_checkpoint(document)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CheckpointError(f"{source} is not a checkpoint: {error}") from None
    if checkpoint.algorithm != CHECKPOINT_ALGORITHM or not _is_hash(checkpoint.hash):
        raise CheckpointError(f"{source}: algorithm or hash is not as written")
    signed = _signed_bytes(checkpoint.seq, checkpoint.hash, checkpoint.recorded_at)
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except binascii.Error:
        raise CheckpointError(f"{source}: the signature is not base64") from None
    if not any(_verifies(key, signature, signed) for key in public_keys):
        given = "the public key given" if len(public_keys) == 1 else "none of the public keys"
        raise CheckpointError(f"{source}: the signature does not verify with {given}")
    return Anchor(checkpoint.seq, checkpoint.hash, source)


def _verifies(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def read_checkpoints(path: Path, public_keys: Sequence[Ed25519PublicKey]) -> list[Anchor]:
    """The anchors a checkpoint file vouches for, one per non-blank line, every signature
    verified."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: {error.strerror}") from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise CheckpointError(f"checkpoint {path} is empty")
    single = len(numbered) == 1
    return [
        verify_checkpoint(
            line, public_keys, f"checkpoint {path.name}" + ("" if single else f" line {number}")
        )
        for number, line in numbered
    ]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key in PEM (`openssl genpkey -algorithm ed25519 -out key.pem`)."""
    pem = _key_bytes(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a PEM private key without a password: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key in PEM (`openssl pkey -in key.pem -pubout -out public.pem`)."""
    pem = _key_bytes(path)
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key")
    return key


def _key_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"key file {path} cannot be read: {error.strerror}") from None
