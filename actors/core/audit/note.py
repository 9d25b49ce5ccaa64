"""Checkpoints as C2SP signed notes (``tlog-checkpoint``), the format transparency-log tooling and witnesses read.

A note is text lines, a blank line, then signature lines::

    <origin>
    <tree size, decimal>
    <root hash, base64>

    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

The signature covers the text up to and including its last newline. The key hash is the first 4 bytes of
SHA-256(key name || "\\n" || 0x01 || the 32-byte public key) (0x01: Ed25519). Worker-Sync names its key
after the log's origin, so a verifier needs only the origin and the public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

_EM_DASH = "\u2014"
_ED25519 = b"\x01"


@dataclass(frozen=True)
class NoteCheckpoint:
    """What a checkpoint note states: this origin's log had ``size`` entries with Merkle root ``root``."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_hash(name: str, public_key: VerifyKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + bytes(public_key)).digest()[:4]


def sign_note(checkpoint: NoteCheckpoint, key: SigningKey) -> str:
    """The signed note, its key named after the origin."""
    text = checkpoint.text()
    signature = key.sign(text.encode()).signature
    blob = base64.b64encode(key_hash(checkpoint.origin, key.verify_key) + signature).decode()
    return f"{text}\n{_EM_DASH} {checkpoint.origin} {blob}\n"


class NoteError(ValueError):
    """A note that cannot be read, or whose signature does not verify."""


def open_note(note: str, keys: list[VerifyKey]) -> NoteCheckpoint:
    """The checkpoint a note states, once one of its signatures verifies with one of ``keys`` (named after
    the note's origin). NoteError says what is wrong."""
    text, sep, signatures = note.partition("\n\n")
    if not sep or not text:
        raise NoteError("not a signed note: no blank line before the signatures")
    text += "\n"
    lines = text.splitlines()
    if len(lines) < 3:
        raise NoteError("not a checkpoint note: it needs an origin, a size and a root hash")
    origin, size_text, root_text = lines[:3]
    try:
        size = int(size_text)
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("not a checkpoint note: bad size or root hash line") from None
    if size < 0 or len(root) != 32 or size_text != str(size):
        raise NoteError("not a checkpoint note: bad size or root hash line")
    wanted = {key_hash(origin, key): key for key in keys}
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH or parts[1] != origin:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        key = wanted.get(blob[:4])
        if key is None or len(blob) != 68:
            continue
        try:
            key.verify(text.encode(), blob[4:])
        except BadSignatureError:
            raise NoteError(f"bad signature on the checkpoint note of size {size}") from None
        return NoteCheckpoint(origin, size, root)
    raise NoteError(f"the checkpoint note of size {size} carries no signature by the given key(s) for `{origin}`")
