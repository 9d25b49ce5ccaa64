"""Masks applied to a column's value in flight: keyed hash, fixed redaction, or NULL.

The hash is HMAC-SHA-256 over a canonical text form of the value, so the same value hashes alike whatever
engine captured it (an `int` id on one side and its text on the other included): joins on hashed columns
keep working across nodes that share the key.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any, Final

from actors.core.events import Unchanged, UnsentNumber
from actors.core.typemap import ColumnType
from config.model import MaskKind

#: What `mask: redact` writes.
REDACTED: Final = "REDACTED"
#: Length of a hashed value: SHA-256 as lowercase hex.
HASH_CHARS: Final = 64
#: Shortest masking key accepted (bytes): HMAC-SHA-256's own block of security.
MIN_KEY_BYTES: Final = 32

#: The type a masked value takes, for the start-up check (None: the source column's own type, always NULL).
MASKED_TYPES: Final[dict[MaskKind, ColumnType | None]] = {
    "hash": ColumnType(family="text", name=f"hash ({HASH_CHARS} hex characters)", length=HASH_CHARS, fixed=True),
    "redact": ColumnType(family="text", name=f"redacted text ({REDACTED!r})", length=len(REDACTED)),
    "null": None,
}


def canonical_text(value: Any) -> bytes:
    """The bytes a value is hashed as: its plain text form (bytes as they are, JSON values sorted)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, str | int | decimal.Decimal | uuid.UUID):
        return str(value).encode()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat().encode()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return str(value).encode()


def masker(kind: MaskKind, key: bytes | None) -> Callable[[Any], Any]:
    """The function masking one value. NULL stays NULL; marker values (UNCHANGED: "leave the target's value
    alone") carry no data and pass as they are."""
    if kind == "null":
        return lambda value: value if isinstance(value, Unchanged | UnsentNumber) else None
    if kind == "redact":
        return lambda value: value if value is None or isinstance(value, Unchanged | UnsentNumber) else REDACTED

    def hashed(value: Any) -> Any:
        if value is None or isinstance(value, Unchanged | UnsentNumber):
            return value
        if key is None:
            raise ValueError("`mask: hash` needs the masking key, which this process has not loaded")
        return hmac.new(key, canonical_text(value), hashlib.sha256).hexdigest()

    return hashed
