"""Signed checkpoints: (size, root hash, time, key id) signed with Ed25519.

A checkpoint commits the signer to the whole log up to ``size``; exported outside the audit database
it makes truncation detectable. The signed message is a fixed, versioned msgpack array, so every
verifier rebuilds the same bytes. Key material is read from a file or env and never printed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from actors.core.errors import ConfigError

_DOMAIN = "worker-sync/checkpoint/v1"
KEY_ID_BYTES = 8


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    root: bytes
    time_us: int
    key_id: bytes
    signature: bytes = b""

    def message(self) -> bytes:
        """The exact bytes that are signed (everything but the signature)."""
        return msgspec.msgpack.encode([_DOMAIN, self.size, self.root, self.time_us, self.key_id])

    def to_json(self) -> bytes:
        """The export format (hex for bytes), e.g. a file in ``checkpoint_export_dir``."""
        return msgspec.json.encode(
            {
                "size": self.size,
                "root": self.root.hex(),
                "time_us": self.time_us,
                "key_id": self.key_id.hex(),
                "signature": self.signature.hex(),
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Checkpoint:
        doc = msgspec.json.decode(data, type=dict[str, str | int])
        return cls(
            size=int(doc["size"]),
            root=bytes.fromhex(str(doc["root"])),
            time_us=int(doc["time_us"]),
            key_id=bytes.fromhex(str(doc["key_id"])),
            signature=bytes.fromhex(str(doc["signature"])),
        )


def key_id(public_key: bytes) -> bytes:
    """First 8 bytes of SHA-256 of the raw public key: names the key in checkpoints."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def sign(signing_key: SigningKey, size: int, root: bytes, time_us: int) -> Checkpoint:
    unsigned = Checkpoint(size=size, root=root, time_us=time_us, key_id=key_id(bytes(signing_key.verify_key)))
    signature = signing_key.sign(unsigned.message()).signature
    return msgspec.structs.replace(unsigned, signature=signature)


#: Public keys by key id: what a verifier trusts (one key, or several across rotations).
KeyRing = dict[bytes, VerifyKey]


def key_ring(keys: Iterable[VerifyKey]) -> KeyRing:
    return {key_id(bytes(k)): k for k in keys}


def verify_signature(checkpoint: Checkpoint, public_key: VerifyKey | KeyRing) -> str | None:
    """None if the checkpoint is signed by ``public_key`` (or by the ring's key its id names); otherwise what is
    wrong, naming the key id (never key material)."""
    ring = public_key if isinstance(public_key, dict) else key_ring([public_key])
    key = ring.get(checkpoint.key_id)
    if key is None:
        given = ", ".join(sorted(k.hex() for k in ring)) or "none"
        return (
            f"signed by key {checkpoint.key_id.hex()}, which is not among the given public keys ({given}) - "
            "add it with `--public-key FILE` or `--key-ring FILE`"
        )
    try:
        key.verify(checkpoint.message(), checkpoint.signature)
    except (BadSignatureError, ValueError):
        return f"bad signature (key {checkpoint.key_id.hex()})"
    return None


def _key_bytes(text: bytes, source: str) -> bytes:
    if len(text) == 32:
        return text
    stripped = text.strip()
    try:
        if len(stripped) == 64:
            return bytes.fromhex(stripped.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        pass
    raise ConfigError(source, "a key must be 32 raw bytes or 64 hex characters")


def load_key_bytes(*, file: str | None = None, env: str | None = None, what: str = "key") -> bytes:
    """32 key bytes from a file or an environment variable (raw or hex). Errors name the place, never the value."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError("environment", f"{what}: environment variable `{env}` is not set")
        return _key_bytes(value.encode(), f"environment variable `{env}`")
    if file:
        try:
            return _key_bytes(Path(file).read_bytes(), file)
        except OSError as exc:
            raise ConfigError(file, f"{what}: cannot read the key file: {exc.strerror}") from None
    raise ConfigError("config", f"{what}: set a key file or an environment variable")


def load_signing_key(*, file: str | None = None, env: str | None = None) -> SigningKey:
    return SigningKey(load_key_bytes(file=file, env=env, what="audit signing key"))


def load_public_key(file: str) -> VerifyKey:
    return VerifyKey(load_key_bytes(file=file, what="audit public key"))


def load_key_ring_file(file: str) -> list[VerifyKey]:
    """Public keys from a key-ring file: one key (64 hex characters) per line; blank lines and text after `#`
    are ignored, so a line may say which key it is."""
    try:
        text = Path(file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, f"audit key ring: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if value:
            keys.append(VerifyKey(_key_bytes(value.encode(), f"{file}:{number}")))
    if not keys:
        raise ConfigError(file, "audit key ring: no public key in the file")
    return keys


def export(checkpoint: Checkpoint, directory: str | Path) -> Path:
    """Write the checkpoint outside the audit database (``audit.checkpoint_export_dir``): one file per size,
    and ``latest.json`` replaced atomically, so `audit verify --checkpoint DIR/latest.json` catches truncation."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = checkpoint.to_json() + b"\n"
    (directory / f"checkpoint-{checkpoint.size:012d}.json").write_bytes(data)
    staging = directory / ".latest.json.tmp"
    staging.write_bytes(data)
    os.replace(staging, directory / "latest.json")
    return directory / "latest.json"
