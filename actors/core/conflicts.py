"""Conflict resolution for bidirectional sync: a last-writer-wins register per row, kept at every node.

Every node of a bidirectional group keeps, per row, the *version* of the change it last let win
(``worker_sync_versions``; see actors/engines/versions.py) and what the row held when Worker-Sync last
touched it (``held``). Every change captured at a node is *offered* to every node of its group, its own
node included, in one transaction with the row write; the row itself is read (and locked) in that
transaction (``now``). A row whose ``now`` differs from ``held`` is *dirty*: its users wrote it since, and
that change is captured but not yet offered here. Worker-Sync never writes over a dirty row:

- a *remote* offer that ranks above the stored version wins: its version is stored, and its row is written
  when the row is clean (when dirty, the user's pending change is decided against it when its offer comes);
- a *local* offer (the node's own change) that ranks above the stored version wins too, but its row is
  already there (or overwritten by the same user since): it is written only to undo a repair Worker-Sync
  made after the user's write (the row holds exactly what Worker-Sync left, ``now == held``);
- an offer equal to the stored version is a replay (a re-sent slice): nothing happens;
- an offer that ranks below but carries the row the node keeps changes nothing (no conflict);
- a *remote* offer that ranks below is discarded (the node already holds a newer change);
- a *local* offer that ranks below is a change that raced a newer one from elsewhere and lost: the row is
  *repaired* to the stored winner, unless its users have written it again since (then that later change's
  offer decides).

Why this converges: a node's stored version only grows, every node is offered every change, and the
winner's row is written at the last offer that touches the row (or repaired after a later losing local
write, or restored after a repair). So once writes stop and offers drain, every node stores the same
maximum version and holds its row, whatever order the offers arrived in (tests/core/test_conflicts.py
checks this, and that a row never goes back to an older change than one it held, by property tests).

Ranking is a total order, so every node picks the same winner without talking to the others:

- ``last_writer_wins``: the change's stamp (:func:`stamp`: its commit time, or just past its base's) at
  the group's coarsest clock resolution (whole seconds with a MariaDB/MySQL member: two commits in the
  same second are a tie), then the node's ``priority``, then the exact stamp, then node name, then the
  change's position in its stream (two changes of one node in one microsecond keep their order);
- ``source_priority``: the stamp's generation (its base's + 1), then ``priority``, then as above. The
  higher-priority node's change wins every conflict between changes made on the same version of a row.
- ``manual``: ranked like ``last_writer_wins`` (so the nodes converge meanwhile), and every conflict is
  parked for a human, who may make the losing change win with ``worker-sync conflicts resolve``.

Snapshot rows (initial load) rank below every change (time 0): two nodes that both held a row before
the first sync keep the higher-priority node's copy.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec

from actors.core.encoding import decode_row, encode_row
from actors.core.events import UNCHANGED

Policy = Literal["last_writer_wins", "source_priority", "manual"]

#: The ``engine`` of the change a human's resolution makes (``conflicts resolve --take source``).
RESOLUTION_ENGINE: Final = "worker-sync"


#: A version's ``causal`` before its origin node stamped it (initial-snapshot rows, records from before
#: stamps): ranked by its commit time alone.
UNSTAMPED: Final = -1


class Version(msgspec.Struct, frozen=True, array_like=True):
    """Which change a row holds: enough to rank it against any other change of the same row.

    ``causal`` is stamped by the change's own node when it decides the change (:func:`stamp`), from the
    version the row held there when its user wrote it (the change's *base*): a change always ranks above
    its base, so a change made after its node applied another node's change is never taken for an older
    one, under any policy. Under ``last_writer_wins`` and ``manual`` it is a hybrid clock in microseconds
    (the commit time, or just past the base's); under ``source_priority`` a generation (the base's + 1).
    """

    time_us: int
    priority: int
    node: str
    order: bytes
    causal: int = UNSTAMPED

    def clock(self, policy: Policy) -> int:
        if self.causal != UNSTAMPED:
            return self.causal
        return 0 if policy == "source_priority" else self.time_us

    def rank(self, policy: Policy, resolution_us: int = 1) -> tuple[Any, ...]:
        """The sort key under ``policy``; ``resolution_us`` is the group's coarsest commit-clock tick."""
        clock = self.clock(policy)
        if policy == "source_priority":
            return (clock, self.priority, self.time_us // resolution_us, self.time_us, self.node, self.order)
        return (clock // resolution_us, self.priority, clock, self.node, self.order)

    def same_change(self, other: Version) -> bool:
        """The same captured change, stamped or not."""
        return (self.node, self.order, self.time_us, self.priority) == (
            other.node,
            other.order,
            other.time_us,
            other.priority,
        )


def stamp(version: Version, base: Version | None, policy: Policy, resolution_us: int) -> Version:
    """``version`` stamped to rank above ``base``, the version its node's row held when the change was made
    (None: a row untouched since sync began). Initial-snapshot rows (time 0) stay unstamped: they rank
    below every change."""
    if version.time_us == 0:
        return version
    if policy == "source_priority":
        return msgspec.structs.replace(version, causal=1 + (0 if base is None else base.clock(policy)))
    causal = version.time_us
    if base is not None:
        before = base.clock(policy)
        causal = max(causal, before + 1)
        if causal // resolution_us == before // resolution_us and version.priority < base.priority:
            causal = (before // resolution_us + 1) * resolution_us  # the next tick: a tie would go to the base
    return msgspec.structs.replace(version, causal=causal)


#: ``held`` or ``now`` not known (a record stored before rows were tracked, or an engine that cannot read
#: its rows): the rules then assume the row is clean, as before rows were tracked.
UNKNOWN: Final = b""
#: A row written earlier in the same transaction: what it reads back as is filled in after the writes.
WRITTEN: Final = b"\xc1written"
#: A row that does not exist (msgpack nil; an encoded row is always a map).
NO_ROW: Final = b"\xc0"


def row_bytes(row: dict[str, Any] | None) -> bytes:
    """A row as ``held`` and ``now`` keep it: canonical bytes, comparable across processes."""
    return NO_ROW if row is None else encode_row(row)


def holds(now: bytes, row: dict[str, Any] | None) -> bool:
    """Whether a row read as ``now`` holds ``row`` (a change's after-image; UNCHANGED columns match
    anything)."""
    if row is None or not any(value is UNCHANGED for value in row.values()):
        return now == row_bytes(row)
    if now in (NO_ROW, UNKNOWN, WRITTEN):
        return False
    current = decode_row(now)
    return all(
        value is UNCHANGED or row_bytes({name: current.get(name)}) == row_bytes({name: value})
        for name, value in row.items()
    )


class Stored(msgspec.Struct, frozen=True, array_like=True):
    """A node's stored winner for one row: its version and its row in that node's terms (None: deleted)."""

    version: Version
    row: dict[str, Any] | None
    #: What the row held (``row_bytes``) when Worker-Sync last wrote it or decided a change of its own
    #: node; UNKNOWN for records written before rows were tracked.
    held: bytes = UNKNOWN
    #: The version whose row ``held`` is: the base of the next change this node's users make.
    held_version: Version | None = None


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
    #: The group's coarsest commit-clock tick (1_000_000 when a member reports whole seconds).
    resolution_us: int = 1
    #: A human's resolution of a parked conflict (``conflicts resolve --take source``): it is made to rank
    #: above whatever the node stores, not just above the row's base.
    resolution: bool = False


class Outcome(enum.StrEnum):
    WIN = "win"
    REPLAY = "replay"
    #: An older change that carries the very row the node keeps (e.g. the same row in two nodes' initial
    #: snapshots): nothing to write, and no conflict.
    SAME = "same"
    DISCARD = "discard"
    REPAIR = "repair"


class Decision(msgspec.Struct, frozen=True):
    """What one offer did at one node."""

    offer: Offer
    outcome: Outcome
    #: The stored winner the offer met (None: the row had no version yet).
    met: Stored | None
    #: The row state to write (None: no write; a Stored with row None: delete).
    write: Stored | None
    #: The node's new record for the row (None: unchanged).
    store: Stored | None = None

    @property
    def conflict(self) -> bool:
        """A change lost to a newer change from another node."""
        return self.outcome in (Outcome.DISCARD, Outcome.REPAIR)


def decide(stored: Stored | None, offer: Offer, now: bytes = UNKNOWN) -> Decision:
    """The outcome of one offer against a row's stored winner and what the row holds ``now`` (see the
    module docstring). A local offer is stamped here (the decision's offer carries the stamp, for the other
    nodes). A write leaves ``held`` as WRITTEN, for the writer to fill in once written."""
    if stored is not None and offer.version.same_change(stored.version):
        return Decision(msgspec.structs.replace(offer, version=stored.version), Outcome.REPLAY, stored, None)
    if offer.local:
        base = None if stored is None else stored.version if offer.resolution else stored.held_version
        offer = msgspec.structs.replace(offer, version=stamp(offer.version, base, offer.policy, offer.resolution_us))
    mine = Stored(offer.version, offer.row)
    # A row without a version has not been touched since sync began: Worker-Sync left it absent (a row that
    # existed before is settled by the snapshot's offers, and is dirty until then).
    held = NO_ROW if stored is None else stored.held
    clean = UNKNOWN in (now, held) or now == held
    already = now != UNKNOWN and holds(now, offer.row)
    rank = offer.version.rank(offer.policy, offer.resolution_us)
    if stored is None or rank > stored.version.rank(offer.policy, offer.resolution_us):
        if offer.local:
            # The user's change is in the row, or the same user wrote it again since: written only to undo
            # what Worker-Sync wrote over it (the row holds exactly what Worker-Sync left there).
            if now != UNKNOWN and held != UNKNOWN and clean and not already:
                return Decision(offer, Outcome.WIN, stored, mine, _held(mine, WRITTEN, mine.version))
            return Decision(
                offer, Outcome.WIN, stored, None, _held(mine, now if already else row_bytes(offer.row), mine.version)
            )
        if not clean:  # a user's change is pending here: it is decided against this one when offered
            return Decision(offer, Outcome.WIN, stored, None, _held(mine, held, _held_version(stored)))
        if already:  # e.g. the same row in two nodes' initial snapshots: nothing to write
            return Decision(offer, Outcome.WIN, stored, None, _held(mine, now, mine.version))
        return Decision(offer, Outcome.WIN, stored, mine, _held(mine, WRITTEN, mine.version))
    if offer.row == stored.row:  # a local one is accounted for now: the row is clean if it holds it
        settled = _held(stored, now, stored.version) if offer.local and already else None
        return Decision(offer, Outcome.SAME, stored, None, settled)
    if offer.local:
        if now != UNKNOWN and not already:  # its user wrote the row again since: that change's offer decides
            return Decision(offer, Outcome.REPAIR, stored, None, _held(stored, row_bytes(offer.row), offer.version))
        return Decision(offer, Outcome.REPAIR, stored, stored, _held(stored, WRITTEN, stored.version))
    return Decision(offer, Outcome.DISCARD, stored, None)


def _held(stored: Stored, held: bytes, held_version: Version | None) -> Stored:
    return Stored(stored.version, stored.row, held, held_version)


def _held_version(stored: Stored | None) -> Version | None:
    return None if stored is None else stored.held_version


RowKey = tuple[str, bytes]


def decide_all(
    stored: dict[RowKey, Stored | None],
    offers: Sequence[tuple[RowKey, Offer]],
    now: dict[RowKey, bytes] | None = None,
) -> tuple[list[Decision], dict[RowKey, Stored], dict[RowKey, Stored]]:
    """Decide offers in order against ``stored`` and the rows ``now`` (both updated as they go; rows
    missing from ``now`` are UNKNOWN).

    Returns every decision, per row the final state to write, and per row the new record to store (its
    ``held`` WRITTEN where the row is written: the writer reads it back before storing).
    """
    now = {} if now is None else now
    decisions: list[Decision] = []
    writes: dict[RowKey, Stored] = {}
    stores: dict[RowKey, Stored] = {}
    for row_key, offer in offers:
        decision = decide(stored.get(row_key), offer, now.get(row_key, UNKNOWN))
        decisions.append(decision)
        if decision.write is not None:
            writes[row_key] = decision.write
            now[row_key] = WRITTEN
        if decision.store is not None:
            stored[row_key] = stores[row_key] = decision.store
    return decisions, writes, stores


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


def _version_items(v: Version) -> list[Any]:
    return [v.time_us, v.priority, v.node, v.order, v.causal]


def encode_stored(stored: Stored) -> bytes:
    """The bytes a node's version table keeps for one row (rows with the event encoding's typed values)."""
    assert stored.held != WRITTEN, "a written row is read back before its record is stored"
    v = stored.version
    row = None if stored.row is None else encode_row(stored.row)
    held_version = None if stored.held_version is None else _version_items(stored.held_version)
    return msgspec.msgpack.encode([v.time_us, v.priority, v.node, v.order, row, stored.held, v.causal, held_version])


def decode_stored(data: bytes) -> Stored:
    """A record as :func:`encode_stored` wrote it (older records have five or six items)."""
    time_us, priority, node, order, row, *rest = msgspec.msgpack.decode(data)
    held, causal, held_version = (rest + [UNKNOWN, UNSTAMPED, None][len(rest) :])[:3]
    return Stored(
        Version(time_us, priority, node, order, causal),
        None if row is None else decode_row(row),
        held,
        None if held_version is None else Version(*held_version),
    )
