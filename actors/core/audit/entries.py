"""Audit entries and their canonical bytes.

An entry's bytes are what is hashed, so they must be identical on every machine: a msgspec array-like
Struct of plain values (str, int, bytes) encoded as msgpack has exactly one encoding. Each entry carries
its own sequence number and the leaf hash of the entry before it, so a swapped, inserted or deleted
entry is caught at the entry itself, not only at the next signed checkpoint.
"""

from __future__ import annotations

import enum
import hashlib

import msgspec

from actors.core.encoding import encode_event
from actors.core.events import ChangeEvent

#: Leaf hash of "no previous entry" (the first entry's ``prev``).
GENESIS = bytes(32)


class EntryKind(enum.StrEnum):
    CHANGE = "change"
    CONFLICT = "conflict"
    ADMIN = "admin"


class AdminKind(enum.StrEnum):
    """Admin actions the log records (``namespace`` of the entry is ``admin.<kind>``)."""

    CONFIG_LOADED = "config-loaded"
    MANUAL_SYNC = "manual-sync"
    KEY_ROTATION = "key-rotation"
    RETENTION = "retention"
    #: A change a target refused for good, set aside (actors/core/dead_letters.py).
    DEAD_LETTER = "dead-letter"
    #: A dead letter applied after all (``dead-letters retry``) or dropped (``dead-letters discard``).
    DEAD_LETTER_RESOLVED = "dead-letter-resolved"
    #: Target rows `worker-sync verify --repair` made equal to the source's again.
    REPAIR = "repair"


#: Prefix of an admin entry's namespace: ``admin.key-rotation`` etc. (`audit logs --table admin.key-rotation`).
ADMIN_NAMESPACE = "admin."


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One audited fact. Wire rule: fields are never reordered or removed; new fields go last."""

    seq: int
    #: Leaf hash of entry ``seq - 1`` (GENESIS for seq 0).
    prev: bytes
    kind: EntryKind
    #: Source node (or the admin user for admin entries).
    node: str
    namespace: str
    #: The row key as canonical JSON text (sorted names), so `audit logs --key` can match it.
    key: str
    op: str
    txid: str
    #: Position.resume and Position.order (hex) of the change in its source stream.
    resume: str
    order_hex: str
    commit_time_us: int
    #: encode_event bytes for changes; a msgpack document for conflicts and admin actions.
    payload: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AuditEntry)
_json = msgspec.json.Encoder(order="sorted", enc_hook=str)


def encode_entry(entry: AuditEntry) -> bytes:
    """The canonical bytes of an entry (what the leaf hash covers)."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> AuditEntry:
    """Inverse of :func:`encode_entry`; raises msgspec.DecodeError on garbage."""
    return _decoder.decode(data)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || entry bytes)."""
    return hashlib.sha256(b"\x00" + data).digest()


def key_text(key: dict[str, object]) -> str:
    """The canonical JSON text of a row key (sorted names; non-JSON values as str)."""
    return _json.encode(key).decode()


def change_entry(event: ChangeEvent, *, seq: int = 0, prev: bytes = GENESIS) -> AuditEntry:
    """The entry for a captured change; ``seq``/``prev`` are filled in by :class:`AuditLog`."""
    return AuditEntry(
        seq=seq,
        prev=prev,
        kind=EntryKind.CHANGE,
        node=event.node,
        namespace=event.namespace,
        key=key_text(event.key),
        op=str(event.op),
        txid=event.txid,
        resume=event.position.resume,
        order_hex=event.position.order.hex(),
        commit_time_us=event.commit_time_us,
        payload=encode_event(event),
    )


def other_entry(
    kind: EntryKind, *, node: str, namespace: str, key: str, op: str, time_us: int, detail: dict[str, object]
) -> AuditEntry:
    """A conflict decision or an admin action (manual sync, config change, key rotation)."""
    return AuditEntry(
        seq=0,
        prev=GENESIS,
        kind=kind,
        node=node,
        namespace=namespace,
        key=key,
        op=op,
        txid="",
        resume="",
        order_hex="",
        commit_time_us=time_us,
        payload=msgspec.msgpack.encode(detail, order="sorted"),
    )


def admin_entry(kind: AdminKind, *, request_id: str, actor: str, time_us: int, detail: dict[str, object]) -> AuditEntry:
    """An admin action. ``request_id`` (stored as the entry's key) makes recording it idempotent: the writer
    stores one entry per (kind, request_id), however often the call is sent."""
    return other_entry(
        EntryKind.ADMIN,
        node=actor,
        namespace=ADMIN_NAMESPACE + str(kind),
        key=request_id,
        op=str(kind),
        time_us=time_us,
        detail=detail,
    )


def admin_detail(entry: AuditEntry) -> dict[str, object]:
    """The detail document of an admin (or conflict) entry."""
    return msgspec.msgpack.decode(entry.payload, type=dict[str, object])


def config_detail(path: str, content: bytes) -> dict[str, object]:
    """The detail of a ``config-loaded`` admin entry: which file, and the SHA-256 of its bytes (not the bytes:
    a config names secret files and variables, and the log keeps what it is given)."""
    return {"path": path, "sha256": hashlib.sha256(content).hexdigest()}
