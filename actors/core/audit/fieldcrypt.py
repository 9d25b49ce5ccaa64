"""Field encryption at rest, before hashing (crypto-shredding).

Named columns (``namespace.column``) of an event's before/after rows are replaced by
``wsenc1:<base64 of SecretBox(nonce || ciphertext)>`` before the audit entry is built, so the hashes
cover the ciphertext: anyone can verify the log without the key, and destroying the key makes the
values unreadable while every hash still matches.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from actors.core.encoding import encode_row
from actors.core.events import ChangeEvent, Row

PREFIX = "wsenc1:"
_decoder = msgspec.msgpack.Decoder()


class FieldCipher:
    """Encrypts the configured fields with one 256-bit key (XSalsa20-Poly1305)."""

    def __init__(self, key: bytes, fields: list[str]) -> None:
        self._box = SecretBox(key)
        self._fields: dict[str, set[str]] = {}
        for name in fields:
            namespace, _, column = name.rpartition(".")
            self._fields.setdefault(namespace, set()).add(column)

    def encrypt_event(self, event: ChangeEvent) -> ChangeEvent:
        columns = self._fields.get(event.namespace)
        if not columns:
            return event
        return msgspec.structs.replace(
            event, before=self._encrypt_row(event.before, columns), after=self._encrypt_row(event.after, columns)
        )

    def _encrypt_row(self, row: Row | None, columns: set[str]) -> Row | None:
        if row is None or not columns.intersection(row):
            return row
        out = dict(row)
        for column in columns.intersection(row):
            plain = encode_row({"v": row[column]})
            out[column] = PREFIX + base64.b64encode(bytes(self._box.encrypt(plain))).decode()
        return out

    def decrypt_value(self, value: Any) -> Any:
        """The plaintext of an encrypted value (msgpack-decoded; extension types stay raw);
        raises CryptoError with a wrong or destroyed key."""
        if not (isinstance(value, str) and value.startswith(PREFIX)):
            return value
        plain = self._box.decrypt(base64.b64decode(value[len(PREFIX) :]))
        return _decoder.decode(plain)["v"]


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


__all__ = ["PREFIX", "CryptoError", "FieldCipher", "is_encrypted"]
