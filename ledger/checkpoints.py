"""Signed checkpoints: the journal's end (seq, hash, ledger time) signed with Ed25519.

The hash chain shows that no record inside the journal was changed, but not that its end
is where it was: dropping the last records, or rewriting the journal from some seq on
with recomputed hashes, leaves a chain that verifies. A checkpoint kept away from the
ledger (by an auditor, or in another system) anchors the end: `ledger audit verify
--checkpoint FILE` fails when the journal is shorter than the checkpoint's seq or holds a
different hash there, and the signature shows who vouched for the checkpoint.

The signed bytes are the canonical JSON of `{"hash", "recorded_at", "seq"}`; the file
adds `signature` (base64) and `algorithm` ("ed25519").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.journal import canonical_json

CHECKPOINT_ALGORITHM = "ed25519"
_HASH_HEX_CHARS = 64


class CheckpointError(ValueError):
    """A checkpoint, anchor or key that cannot be used: a sentence a person can act on."""


@dataclass(frozen=True)
class Anchor:
    """A journal position that must hold: the record of `seq` has `hash`."""

    seq: int
    hash: str
    source: str  # where it came from, for the verdict: `--expect`, a checkpoint file


class _CheckpointFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: int
    hash: str
    recorded_at: str
    algorithm: str
    signature: str


def parse_expectation(text: str) -> Anchor:
    """`SEQ:HASH` as an anchor (`ledger audit verify --expect`)."""
    seq_text, _, hash_text = text.partition(":")
    if not seq_text.isdigit() or int(seq_text) < 1 or not _is_hash(hash_text):
        raise CheckpointError(
            f"--expect {text!r}: write SEQ:HASH, a seq from 1 and the record's 64-hex hash"
        )
    return Anchor(int(seq_text), hash_text, f"--expect {seq_text}")


def _is_hash(text: str) -> bool:
    return len(text) == _HASH_HEX_CHARS and all(c in "0123456789abcdef" for c in text)


def _signed_bytes(seq: int, hash_text: str, recorded_at: str) -> bytes:
    return canonical_json({"hash": hash_text, "recorded_at": recorded_at, "seq": seq})


def sign_checkpoint(seq: int, hash_text: str, recorded_at: str, key: Ed25519PrivateKey) -> bytes:
    """The checkpoint file's content: canonical JSON with its Ed25519 signature."""
    signature = key.sign(_signed_bytes(seq, hash_text, recorded_at))
    document = {
        "algorithm": CHECKPOINT_ALGORITHM,
        "hash": hash_text,
        "recorded_at": recorded_at,
        "seq": seq,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return canonical_json(document) + b"\n"


def read_checkpoint(path: Path, public_key: Ed25519PublicKey) -> Anchor:
    """The anchor a checkpoint file vouches for, once its signature verifies."""
    try:
        checkpoint = msgspec.json.decode(path.read_bytes(), type=_CheckpointFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CheckpointError(f"checkpoint {path} is not a checkpoint file: {error}") from None
    if checkpoint.algorithm != CHECKPOINT_ALGORITHM or not _is_hash(checkpoint.hash):
        raise CheckpointError(f"checkpoint {path}: algorithm or hash is not as written")
    signed = _signed_bytes(checkpoint.seq, checkpoint.hash, checkpoint.recorded_at)
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True), signed)
    except (InvalidSignature, binascii.Error):
        raise CheckpointError(
            f"checkpoint {path}: the signature does not verify with the public key given"
        ) from None
    return Anchor(checkpoint.seq, checkpoint.hash, f"checkpoint {path.name}")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key in PEM (`openssl genpkey -algorithm ed25519 -out key.pem`)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a PEM private key without a password: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key in PEM (`openssl pkey -in key.pem -pubout -out public.pem`)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key")
    return key
