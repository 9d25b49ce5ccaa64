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
from typing import Any

import msgspec
import ray

from actors.core.changes import RowChange
from actors.core.conflicts import ConflictRecord, Offer, record_of
from actors.core.encoding import decode_batch, encode_row
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
        """
        per_target: dict[str, list[RowChange]] = defaultdict(list)
        offers: dict[str, list[tuple[str, Offer]]] = defaultdict(list)
        done: list[tuple[str, int]] = []
        events = 0
        for data in parts:
            batch = decode_batch(data)
            done.append((batch.stream, batch.seq))
            events += len(batch.events)
            for event in batch.events:
                for route in self.routes.get((event.node, event.namespace), ()):
                    if not route.group:
                        per_target[route.target_node].append(to_row_change(event, route))
                    elif event.origin is None:  # an echo of our own write is never offered again
                        offers[route.target_node].append((route.group, to_offer(event, route)))
        for node_name, changes in per_target.items():
            self._writer(node_name).apply(changes)
        conflicts: list[ConflictRecord] = []
        lost: set[tuple[str, bytes, bytes]] = set()  # one record per losing change, at however many nodes it lost
        for node_name, node_offers in offers.items():
            decisions = self._writer(node_name).apply_offers([offer for _, offer in node_offers])
            for (group, _), decision in zip(node_offers, decisions, strict=True):
                version = decision.offer.version
                loser = (version.node, version.order, encode_row({decision.offer.namespace: decision.offer.key}))
                if decision.conflict and loser not in lost:
                    lost.add(loser)
                    conflicts.append(record_of(group, node_name, decision))
        return Applied(
            shard=self.shard,
            parts=done,
            events=events,
            pid=os.getpid(),
            offers=dict(Counter(group for node_offers in offers.values() for group, _ in node_offers)),
            conflicts=conflicts,
        )

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
