"""The applier shard actor: applies its slice of each batch to the targets, one transaction each.

Thin Ray shell: routing is in actors.core.routing, writing in the engines' writers. Each shard
gets one call at a time from the supervisor, which re-sends a call that failed, so a shard
applies its slices in order even across crashes; the writers' upserts and deletes are
idempotent, so a call applied twice does no harm.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from typing import Any, NamedTuple

import msgspec
import ray

from actors.core.changes import RowChange
from actors.core.conflicts import ConflictRecord, Decision, Offer, Version, record_of
from actors.core.encoding import decode_batch
from actors.core.routing import Route, routes_by_source, to_offer, to_row_change
from actors.engines.registry import build_writer
from actors.engines.sink import BatchWriter
from config.model import Node

log = logging.getLogger(__name__)


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    shard: int
    #: (stream, batch seq) of every part applied, in the order they were given.
    parts: list[tuple[str, int]]
    events: int
    pid: int
    #: Offers made to nodes of bidirectional groups (per group), and the conflicts among their decisions.
    offers: dict[str, int] = {}
    conflicts: list[ConflictRecord] = []


class _Offered(NamedTuple):
    """One offer of one captured change (``event``: its index in the call) to one group member."""

    group: str
    offer: Offer
    event: int


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class ApplierShard:
    def __init__(self, shard: int, routes: list[Route], targets: dict[str, Node]) -> None:
        self.shard = shard
        self.routes = routes_by_source(routes)
        self.targets = targets
        #: Nodes in a bidirectional group: their writes are marked so their capture sees echoes.
        self.grouped = {route.target_node for route in routes if route.group}
        self.writers: dict[str, BatchWriter[Any, Any]] = {}

    def _writer(self, node_name: str) -> BatchWriter[Any, Any]:
        writer = self.writers.get(node_name)
        if writer is None:
            echo_writer = f"{node_name}_{self.shard}" if node_name in self.grouped else None
            writer = build_writer(node_name, self.targets[node_name], echo_writer=echo_writer)
            self.writers[node_name] = writer
        return writer

    def apply(self, parts: list[bytes]) -> Applied:
        """Apply consecutive parts (encoded batches) in one transaction per target node.

        The supervisor sends whatever queued up for this shard while its previous call ran, so
        under load one call (and one target transaction) carries many batches' worth of changes.
        Changes of bidirectional groups are offered to their own node first, which stamps each with the
        version its row held when its user made it (actors.core.conflicts), then, stamped, to the others.
        """
        per_target: dict[str, list[RowChange]] = defaultdict(list)
        local: dict[str, list[_Offered]] = defaultdict(list)
        remote: list[tuple[str, _Offered]] = []
        done: list[tuple[str, int]] = []
        events = 0
        for data in parts:
            batch = decode_batch(data)
            done.append((batch.stream, batch.seq))
            for event in batch.events:
                for route in self.routes.get((event.node, event.namespace), ()):
                    if not route.group:
                        per_target[route.target_node].append(to_row_change(event, route))
                    elif event.origin is None:  # an echo of our own write is never offered again
                        item = _Offered(route.group, to_offer(event, route), events)
                        if item.offer.local:
                            local[route.target_node].append(item)
                        else:
                            remote.append((route.target_node, item))
                events += 1
        for node_name, changes in per_target.items():
            self._writer(node_name).apply(changes)
        conflicts: list[ConflictRecord] = []
        lost: set[int] = set()  # one record per losing change, at however many nodes it lost

        def offer_to(node_name: str, offered: list[_Offered]) -> list[Decision]:
            decisions = self._writer(node_name).apply_offers([item.offer for item in offered])
            for item, decision in zip(offered, decisions, strict=True):
                if decision.conflict and item.event not in lost:
                    lost.add(item.event)
                    conflicts.append(record_of(item.group, node_name, decision))
            return decisions

        stamped: dict[int, Version] = {}
        for node_name, offered in local.items():
            for item, decision in zip(offered, offer_to(node_name, offered), strict=True):
                stamped[item.event] = decision.offer.version
        by_node: dict[str, list[_Offered]] = defaultdict(list)
        for node_name, item in remote:
            version = stamped.get(item.event, item.offer.version)
            by_node[node_name].append(item._replace(offer=msgspec.structs.replace(item.offer, version=version)))
        for node_name, offered in by_node.items():
            offer_to(node_name, offered)
        groups = [item.group for items in local.values() for item in items] + [item.group for _, item in remote]
        return Applied(
            shard=self.shard,
            parts=done,
            events=events,
            pid=os.getpid(),
            offers=dict(Counter(groups)),
            conflicts=conflicts,
        )

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
