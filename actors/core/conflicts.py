"""Conflict resolution for bidirectional sync: a last-writer-wins register per row, kept at every node.

Every node of a bidirectional group keeps, per row, the *version* of the change it last let win
(``worker_sync_versions``; see actors/engines/versions.py). Every change captured at a node is
*offered* to every node of its group, its own node included, in the same transaction as the row write:

- an offer that ranks above the stored version wins: its row is written (or deleted) and its version
  stored;
- an offer equal to the stored version is a replay (a re-sent slice): nothing happens;
- an offer that ranks below but carries the row the node keeps changes nothing (no conflict);
- a *remote* offer that ranks below is discarded (the node already holds a newer change);
- a *local* offer (the node's own change) that ranks below is a change that raced a newer one from
  elsewhere and lost: the node's row is *repaired* to the stored winner, which the local write
  overwrote.

Why this converges: a node's stored version only grows, every node is offered every change, and the
winner's row is written at the last offer that touches the row (or repaired after a later losing local
write). So once writes stop and offers drain, every node stores the same maximum version and holds its
row, whatever order the offers arrived in (see tests/core/test_conflicts.py for the property test).

Ranking is a total order, so every node picks the same winner without talking to the others:

- ``last_writer_wins``: source commit time, then the node's ``priority``, then node name, then the
  change's position in its stream (two changes of one node in one microsecond keep their order);
- ``source_priority``: the node's ``priority`` first, then as above. The higher-priority node's change
  wins every conflict; a lower-priority node's change wins only rows the higher one never wrote since.
- ``manual``: ranked like ``last_writer_wins`` (so the nodes converge meanwhile), and every conflict is
  parked for a human, who may make the losing change win with ``worker-sync conflicts resolve``.

Snapshot rows (initial load) rank below every change (time 0): two nodes that both held a row before
the first sync keep the higher-priority node's copy.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from actors.core.encoding import decode_row, encode_row

Policy = Literal["last_writer_wins", "source_priority", "manual"]


class Version(msgspec.Struct, frozen=True, array_like=True):
    """Which change a row holds: enough to rank it against any other change of the same row."""

    time_us: int
    priority: int
    node: str
    order: bytes

    def rank(self, policy: Policy) -> tuple[Any, ...]:
        if policy == "source_priority":
            return (self.priority, self.time_us, self.node, self.order)
        return (self.time_us, self.priority, self.node, self.order)


class Stored(msgspec.Struct, frozen=True, array_like=True):
    """A node's stored winner for one row: its version and its row in that node's terms (None: deleted)."""

    version: Version
    row: dict[str, Any] | None


class Offer(msgspec.Struct, frozen=True, array_like=True):
    """One captured change offered to one node, in that node's terms (table, column names)."""

    namespace: str
    key: dict[str, Any]
    #: The row after the change (None: a delete).
    row: dict[str, Any] | None
    version: Version
    #: True when the change was captured at the node it is offered to.
    local: bool
    policy: Policy = "last_writer_wins"


class Outcome(enum.StrEnum):
    WIN = "win"
    REPLAY = "replay"
    #: An older change that carries the very row the node keeps (e.g. the same row in two nodes' initial
    #: snapshots): nothing to write, and no conflict.
    SAME = "same"
    DISCARD = "discard"
    REPAIR = "repair"


class Decision(msgspec.Struct, frozen=True):
    """What one offer did at one node. ``write`` is the row state to write (None: no write; a Stored
    with row None: delete)."""

    offer: Offer
    outcome: Outcome
    #: The stored winner the offer met (None: the row had no version yet).
    met: Stored | None
    write: Stored | None

    @property
    def conflict(self) -> bool:
        """A change lost to a newer change from another node."""
        return self.outcome in (Outcome.DISCARD, Outcome.REPAIR)


def decide(stored: Stored | None, offer: Offer) -> Decision:
    """The outcome of one offer against a row's stored winner (see the module docstring)."""
    mine = Stored(offer.version, offer.row)
    if stored is None:
        return Decision(offer, Outcome.WIN, None, mine)
    if offer.version == stored.version:
        return Decision(offer, Outcome.REPLAY, stored, None)
    if offer.version.rank(offer.policy) > stored.version.rank(offer.policy):
        return Decision(offer, Outcome.WIN, stored, mine)
    if offer.row == stored.row:
        return Decision(offer, Outcome.SAME, stored, None)
    if offer.local:
        return Decision(offer, Outcome.REPAIR, stored, stored)
    return Decision(offer, Outcome.DISCARD, stored, None)


RowKey = tuple[str, bytes]


def decide_all(
    stored: dict[RowKey, Stored | None], offers: Sequence[tuple[RowKey, Offer]]
) -> tuple[list[Decision], dict[RowKey, Stored]]:
    """Decide offers in order against ``stored`` (updated as they go).

    Returns every decision and, per row that must change, its final state (what to write and store).
    """
    decisions: list[Decision] = []
    changed: dict[RowKey, Stored] = {}
    for row_key, offer in offers:
        decision = decide(stored.get(row_key), offer)
        decisions.append(decision)
        if decision.write is not None:
            changed[row_key] = decision.write
            if decision.outcome is Outcome.WIN:
                stored[row_key] = decision.write
    return decisions, changed


class ConflictRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One conflict decision, as the supervisor counts, audits and (``manual``) parks it."""

    group: str
    node: str
    namespace: str
    key: dict[str, Any]
    outcome: Outcome
    policy: Policy
    loser: Stored
    winner: Stored


def record_of(group: str, node: str, decision: Decision) -> ConflictRecord:
    assert decision.met is not None and decision.conflict
    offer = decision.offer
    return ConflictRecord(
        group=group,
        node=node,
        namespace=offer.namespace,
        key=offer.key,
        outcome=decision.outcome,
        policy=offer.policy,
        loser=Stored(offer.version, offer.row),
        winner=decision.met,
    )


def encode_stored(stored: Stored) -> bytes:
    """The bytes a node's version table keeps for one row (rows with the event encoding's typed values)."""
    v = stored.version
    row = None if stored.row is None else encode_row(stored.row)
    return msgspec.msgpack.encode([v.time_us, v.priority, v.node, v.order, row])


def decode_stored(data: bytes) -> Stored:
    time_us, priority, node, order, row = msgspec.msgpack.decode(data)
    return Stored(Version(time_us, priority, node, order), None if row is None else decode_row(row))
