"""Dead letters: changes a target refused for good, set aside so the rest flows on.

An applier shard that meets a :class:`~actors.core.errors.RowRefused` takes that row's change out of the
slice, applies the rest, and reports the change as a :class:`DeadLetter`; so is every later change of the
same target row while an earlier one is unresolved (``held``), to keep per-key order. The supervisor
records them durably before it commits the source position (recorded, not lost), and an operator retries
them (after fixing the cause) or discards them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from actors.core.changes import RowChange
from actors.core.conflicts import Offer, Version
from actors.core.encoding import decode_row, encode_row

Kind = Literal["apply", "offer"]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One change set aside by a shard, with what an operator needs to see and what retrying needs."""

    link: str
    source_node: str
    target_node: str
    #: The target table and the row's key there.
    namespace: str
    key: dict[str, Any]
    kind: Kind
    #: The change exactly (:func:`encode_change` or :func:`encode_offer`).
    change: bytes
    reason: str
    #: Set aside only because an earlier change of the same row is a dead letter.
    held: bool
    #: The shard that set it aside (and applies it again on retry, in order with that row's changes).
    shard: int

    @property
    def row_key(self) -> str:
        return row_key(self.target_node, self.namespace, self.key)

    def row(self) -> dict[str, Any] | None:
        """The row the change would write (None: a delete)."""
        return decode_change(self.change).row if self.kind == "apply" else decode_offer(self.change).row


def row_key(target_node: str, namespace: str, key: dict[str, Any]) -> str:
    """One target row's identity, comparable across processes (blocked rows are looked up by it)."""
    return f"{target_node}/{namespace}/{encode_row(key).hex()}"


def encode_change(change: RowChange) -> bytes:
    row = None if change.row is None else encode_row(change.row)
    return msgspec.msgpack.encode([change.namespace, change.op, encode_row(change.key), row])


def decode_change(data: bytes) -> RowChange:
    namespace, op, key, row = msgspec.msgpack.decode(data)
    return RowChange(namespace, op, decode_row(key), None if row is None else decode_row(row))


def encode_offer(offer: Offer) -> bytes:
    v = offer.version
    row = None if offer.row is None else encode_row(offer.row)
    return msgspec.msgpack.encode(
        [
            offer.namespace,
            encode_row(offer.key),
            row,
            [v.time_us, v.priority, v.node, v.order, v.causal],
            offer.local,
            offer.policy,
            offer.resolution_us,
            offer.resolution,
        ]
    )


def decode_offer(data: bytes) -> Offer:
    namespace, key, row, version, local, policy, resolution_us, resolution = msgspec.msgpack.decode(data)
    return Offer(
        namespace=namespace,
        key=decode_row(key),
        row=None if row is None else decode_row(row),
        version=Version(*version),
        local=local,
        policy=policy,
        resolution_us=resolution_us,
        resolution=resolution,
    )
