"""How one captured batch splits over the applier shards, and what of it is audited.

The capture actor runs this on every batch it reads, so the supervisor never has to open one: it
receives only the sizes and references of the slices (see actors/capture.py). Pure: no Ray, no drivers.

Per key one shard: every change of one row goes to the same shard, in stream order, so that shard
applies them in order. For a member of a bidirectional group the shard is chosen by the key in the
group's canonical column names (values as text, so a UUID and its text form from another engine agree):
every change of one logical row, from whichever node it was captured on, is offered by the same shard.

TRUNCATE and added columns (actors.core.table_events) are stopped at, dropped or sent here too: an added column
goes to every shard, and a table whose TRUNCATE is applied sends all its changes to one shard.

Shaped tables (columns selected, values masked, rows filtered: actors.core.shaping) are shaped first, so the
slices and the audited part only ever hold shaped changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from actors.core.errors import TableChanged
from actors.core.events import ChangeEvent, Op
from actors.core.groups import Group
from actors.core.routing import Route, shard_of, split_key_change
from actors.core.shaping.key import load_mask_key
from actors.core.shaping.shape import Shaper, TableShape
from actors.core.table_events import TableEvents


@dataclass(frozen=True)
class Split:
    """One batch's events by shard, plus what the audit log records of it."""

    #: shard -> the events it applies, in stream order (a key change split into a delete and an upsert).
    slices: dict[int, list[ChangeEvent]]
    #: The batch without echoes (Worker-Sync's own writes captured back) nor filtered-out rows, shaped, key
    #: changes unsplit: one audit entry each, and what lag is measured on.
    own: list[ChangeEvent]
    #: Echoes dropped, per group.
    echoes: dict[str, int] = field(default_factory=dict)
    #: The batch holds a TRUNCATE or an added column the config says to stop at (actors.core.table_events): this
    #: split covers only the ``cut`` events before it, and the stream must stop with ``stopped`` after them.
    stopped: TableChanged | None = None
    cut: int | None = None


@dataclass(frozen=True)
class _Member:
    group: str
    #: The member's column names -> the group's canonical member's names.
    to_canonical: dict[str, str]


class RoutingPlan:
    """The shard count and the group membership a stream's batches are split by; built by the
    supervisor, handed to each capture actor (a restarted actor gets the same plan)."""

    def __init__(self, shards: int, routes: Iterable[Route], groups: Iterable[Group]) -> None:
        if shards < 1:
            raise ValueError("a routing plan needs at least one shard")
        self.shards = shards
        self._members = {
            member: _Member(group.name, group.rename(member, group.canonical))
            for group in groups
            for member in group.members
        }
        #: Sources of one-way routes: their echoes (when also group members) still go to those routes.
        self._one_way_sources = frozenset((r.source_node, r.source_namespace) for r in routes if not r.group)
        #: Shaped source tables (actors.core.shaping): shaped here, before anything leaves the capture actor.
        self._shapes: dict[tuple[str, str], TableShape] = {
            (r.source_node, r.source_namespace): r.shape for r in routes if r.shape is not None
        }
        self._shaper = Shaper(self._shapes)
        self._table_events = TableEvents(routes, shards)

    def keyed(self) -> RoutingPlan:
        """This plan with the masking key of `mask: hash` read from its env variable or file; the capture actor
        calls it in its own process, so the key never travels through Ray."""
        hashed = next((shape for shape in self._shapes.values() if shape.hashes), None)
        if hashed is None:
            return self
        keyed = copy.copy(self)
        keyed._shaper = Shaper(self._shapes, load_mask_key(env=hashed.key_env, file=hashed.key_file))
        return keyed

    def shard(self, event: ChangeEvent) -> int:
        """The shard that applies ``event`` (see the module docstring)."""
        pinned = self._table_events.pinned_shard(event)
        if pinned is not None:
            return pinned
        member = self._members.get((event.node, event.namespace))
        if member is None:
            return shard_of(event.namespace, event.key, self.shards)
        rename = member.to_canonical
        canonical: dict[str, object] = {rename.get(name, name): str(value) for name, value in event.key.items()}
        return shard_of(member.group, canonical, self.shards)

    def split(self, events: Sequence[ChangeEvent]) -> Split:
        """Slices per shard and the audited events of one batch (see :class:`Split`)."""
        slices: dict[int, list[ChangeEvent]] = {}
        own: list[ChangeEvent] = []
        echoes: dict[str, int] = {}
        for index, captured in enumerate(events):
            where = (captured.node, captured.namespace)
            member = self._members.get(where)
            if captured.op is Op.TRUNCATE or captured.op is Op.SCHEMA:
                try:
                    admitted = self._table_events.admit(captured)
                except TableChanged as stop:  # the config says `stop`: what came before still goes
                    return Split(slices, own, echoes, stopped=stop, cut=index)
                if admitted:
                    own.append(captured)
                    targets = range(self.shards) if self._table_events.broadcast(captured) else [self.shard(captured)]
                    for shard in targets:
                        slices.setdefault(shard, []).append(captured)
                continue
            event = self._shaper.shape(captured) if self._shaper else captured
            if event is None:  # kept back by the table's row filter
                continue
            if member is not None and event.origin is not None:
                # Worker-Sync's own write, captured back: every member already has it (or will).
                echoes[member.group] = echoes.get(member.group, 0) + 1
                if where not in self._one_way_sources:
                    continue
            else:
                own.append(event)
            for part in split_key_change(event):
                slices.setdefault(self.shard(part), []).append(part)
        return Split(slices, own, echoes)
