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
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import msgspec
import ray

from actors.core.changes import RowChange
from actors.core.conflicts import ConflictRecord, Decision, Offer, Version, record_of
from actors.core.dead_letters import DeadLetter, Kind, decode_change, decode_offer, encode_change, encode_offer, row_key
from actors.core.encoding import decode_batch
from actors.core.errors import ColumnMissing, RowRefused, SinkError, WorkerSyncError
from actors.core.events import Op
from actors.core.routing import Route, routes_by_source, to_offer, to_row_change
from actors.core.table_events import TableOp, table_op
from actors.engines.registry import build_writer, engine_for
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
    #: Changes a target refused for good (or held behind such a change), set aside: the supervisor records
    #: them before it commits the positions of these parts.
    dead_letters: list[DeadLetter] = []


class _Offered(NamedTuple):
    """One offer of one captured change (``event``: its index in the call) to one group member."""

    group: str
    offer: Offer
    event: int
    link: str
    source: str


class _Change(NamedTuple):
    """One row change of a one-way link, with where it came from (for a dead letter)."""

    change: RowChange
    link: str
    source: str


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class ApplierShard:
    def __init__(self, shard: int, routes: list[Route], targets: dict[str, Node]) -> None:
        """``targets``: the nodes written to, and the sources of `schema_changes: apply` routes (read for
        :meth:`_add_missing`)."""
        self.shard = shard
        self.all_routes = routes
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

    def prepare(self) -> None:
        """Connect to the targets and read their tables' schemas while the capture actors start: the first
        apply then only writes. A failure here is logged and left to the first apply, which reports and
        retries it as it would any other."""
        targets: dict[str, list[str]] = defaultdict(list)
        for route in self.all_routes:
            targets[route.target_node].append(route.target_namespace)
        for node_name, namespaces in targets.items():
            try:
                self._writer(node_name).prepare(sorted(set(namespaces)))
            except WorkerSyncError as exc:
                log.info(
                    "applier shard %d: preparing %s failed; the first apply tries again: %s", self.shard, node_name, exc
                )

    def apply(self, blocked: frozenset[str], *parts: bytes) -> Applied:
        """Apply consecutive parts (encoded batches) in one transaction per target node.

        The supervisor sends whatever queued up for this shard while its previous call ran, so
        under load one call (and one target transaction) carries many batches' worth of changes.
        The parts are references to slices a capture actor put in the object store: Ray fetches them
        into this process before the call runs (none passes through the supervisor).
        Changes of bidirectional groups are offered to their own node first, which stamps each with the
        version its row held when its user made it (actors.core.conflicts), then, stamped, to the others.
        A row the target refuses for good (RowRefused) is set aside as a dead letter and the rest is applied;
        so is every change of a row in ``blocked`` (rows with an unresolved dead letter), in order.
        """
        per_target: dict[str, list[_Change | TableOp]] = defaultdict(list)
        local: dict[str, list[_Offered]] = defaultdict(list)
        remote: list[tuple[str, _Offered]] = []
        done: list[tuple[str, int]] = []
        events = 0
        for data in parts:
            batch = decode_batch(data)
            done.append((batch.stream, batch.seq))
            for event in batch.events:
                if event.op is Op.TRUNCATE or event.op is Op.SCHEMA:  # in order with the rows around it
                    for route in self.routes.get((event.node, event.namespace), ()):
                        op = table_op(event, route)
                        if op is not None:
                            per_target[route.target_node].append(op)
                    events += 1
                    continue
                for route in self.routes.get((event.node, event.namespace), ()):
                    if not route.group:
                        change = to_row_change(event, route)
                        per_target[route.target_node].append(_Change(change, route.link, event.node))
                    elif event.origin is None:  # an echo of our own write is never offered again
                        item = _Offered(route.group, to_offer(event, route), events, route.link, event.node)
                        if item.offer.local:
                            local[route.target_node].append(item)
                        else:
                            remote.append((route.target_node, item))
                events += 1
        setting_aside = _SettingAside(self.shard, set(blocked), self._add_missing)
        for node_name, changes in per_target.items():
            setting_aside.apply(self._writer(node_name), node_name, changes)
        conflicts: list[ConflictRecord] = []
        lost: set[int] = set()  # one record per losing change, at however many nodes it lost

        def offer_to(node_name: str, offered: list[_Offered]) -> list[tuple[_Offered, Decision]]:
            decided = setting_aside.offer(self._writer(node_name), node_name, offered)
            for item, decision in decided:
                if decision.conflict and item.event not in lost:
                    lost.add(item.event)
                    conflicts.append(record_of(item.group, node_name, decision))
            return decided

        # Node by node: its own changes (stamped here) together with the others' changes already stamped, in
        # one transaction; then, to the nodes that came first, what the later ones stamped.
        stamped: dict[int, Version] = {}
        later: dict[str, list[_Offered]] = defaultdict(list)
        waiting: dict[str, list[_Offered]] = defaultdict(list)
        for node_name, item in remote:
            waiting[node_name].append(item)
        order = list(local) + [node for node in waiting if node not in local]
        for position, node_name in enumerate(order):
            ready, later[node_name] = [], []
            for item in waiting[node_name]:
                origin = item.offer.version.node
                if origin in local and order.index(origin) > position:
                    later[node_name].append(item)  # its own node stamps it further down
                else:
                    ready.append(_stamped(item, stamped))
            for item, decision in offer_to(node_name, local.get(node_name, []) + ready):
                if item.offer.local:
                    stamped[item.event] = decision.offer.version
        for node_name, items in later.items():
            if items:
                offer_to(node_name, [_stamped(item, stamped) for item in items])
        groups = [item.group for items in local.values() for item in items] + [item.group for _, item in remote]
        return Applied(
            shard=self.shard,
            parts=done,
            events=events,
            pid=os.getpid(),
            offers=dict(Counter(groups)),
            conflicts=conflicts,
            dead_letters=setting_aside.letters,
        )

    def reapply(self, letters: list[DeadLetter]) -> list[str | None]:
        """Apply dead letters again, in order (an operator's retry after fixing the cause): per letter None
        when it is applied now, or why the target still refuses it. The first refusal stops the rest of
        its row (they stay behind it); a passing fault (SourceUnavailable) rises, to be retried later."""
        outcomes: list[str | None] = []
        refused: set[str] = set()
        for node in {letter.target_node for letter in letters}:  # what was fixed may be a setting or a table
            self._writer(node).close()
            self._writer(node).forget()
        for letter in letters:
            if letter.row_key in refused:
                outcomes.append("held behind an earlier dead letter of this row that is still refused")
                continue
            writer = self._writer(letter.target_node)
            try:
                if letter.kind == "apply":
                    writer.apply([decode_change(letter.change)])
                else:
                    writer.apply_offers([decode_offer(letter.change)])
            except SinkError as exc:
                refused.add(letter.row_key)
                outcomes.append(str(exc))
                continue
            outcomes.append(None)
        return outcomes

    def _add_missing(self, writer: BatchWriter[Any, Any], node: str, missing: ColumnMissing) -> bool:
        """A change names a column its target lacks. With `schema_changes: apply` that is an added column whose
        event never reached this target (a capture actor that crashed after reading it re-reads the table's
        definition, which already has the column, when Ray restarts it): the column is added from the source's
        definition, as the event would have done, and the change applied again. False: nothing to add."""
        for route in self.all_routes:
            source_node = self.targets.get(route.source_node)
            if route.group or route.schema_changes != "apply" or source_node is None:
                continue
            if (route.target_node, route.target_namespace) != (node, missing.namespace):
                continue
            engine = engine_for(source_node)
            described = engine.source_columns(route.source_node, source_node, route.source_namespace)
            for name, added in described.items():
                if route.target_column(name) != missing.column or added.expression_default is not None:
                    continue
                if route.shape is not None and not route.shape.sends(name, ()):
                    continue
                log.warning("applier shard %d: %s; adding it from `%s`", self.shard, missing, route.source_namespace)
                op = TableOp(missing.namespace, missing.column, added, route.lossy_types, route.link, engine.name)
                writer.apply_table_op(op)
                return True
        return False

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class _SettingAside:
    """Applies one call's changes per target, setting aside what the target refuses for good."""

    def __init__(
        self,
        shard: int,
        blocked: set[str],
        add_missing: Callable[[BatchWriter[Any, Any], str, ColumnMissing], bool] = lambda *_: False,
    ) -> None:
        self.shard = shard
        self.blocked = blocked
        self.letters: list[DeadLetter] = []
        self.add_missing = add_missing

    def apply(self, writer: BatchWriter[Any, Any], node: str, changes: list[_Change | TableOp]) -> None:
        """Row changes in runs, one transaction each, with each TRUNCATE or added column applied alone between
        the runs before and after it (the order the stream had)."""
        run: list[_Change] = []
        for item in changes:
            if isinstance(item, TableOp):
                self._rows(writer, node, run)
                run = []
                writer.apply_table_op(item)
            else:
                run.append(item)
        self._rows(writer, node, run)

    def _rows(self, writer: BatchWriter[Any, Any], node: str, changes: list[_Change]) -> None:
        todo = self._unblocked(node, changes)
        added: set[tuple[str, str]] = set()
        while todo:
            try:
                writer.apply([c.change for c in todo])
                return
            except RowRefused as exc:
                todo = self._refused(node, exc, todo)
            except ColumnMissing as exc:  # once per column: a second miss is the target's to explain
                if (exc.namespace, exc.column) in added or not self.add_missing(writer, node, exc):
                    raise
                added.add((exc.namespace, exc.column))

    def offer(
        self, writer: BatchWriter[Any, Any], node: str, offered: list[_Offered]
    ) -> list[tuple[_Offered, Decision]]:
        todo = self._unblocked(node, offered)
        while todo:
            try:
                return list(zip(todo, writer.apply_offers([o.offer for o in todo]), strict=True))
            except RowRefused as exc:
                todo = self._refused(node, exc, todo)
        return []

    def _unblocked(self, node: str, items: list[_Item]) -> list[_Item]:
        if not self.blocked:  # the usual case: no row of this shard waits behind a dead letter
            return items
        todo = []
        for item in items:
            namespace, key, _ = _where(item)
            if row_key(node, namespace, key) in self.blocked:
                self._set_aside(node, item, "held behind an earlier dead letter of this row", held=True)
            else:
                todo.append(item)
        return todo

    def _refused(self, node: str, exc: RowRefused, todo: list[_Item]) -> list[_Item]:
        refused = row_key(node, exc.namespace, exc.key)
        rest = []
        found = False
        for item in todo:
            namespace, key, _ = _where(item)
            if row_key(node, namespace, key) != refused:
                rest.append(item)
                continue
            self._set_aside(node, item, str(exc) if not found else "held behind: " + str(exc), held=found)
            found = True
        if not found:  # the refusal names no change of this call: nothing to set aside, so no progress
            raise exc
        self.blocked.add(refused)
        log.warning("applier shard %d: set aside a change the target refuses: %s", self.shard, exc)
        return rest

    def _set_aside(self, node: str, item: _Change | _Offered, reason: str, *, held: bool) -> None:
        namespace, key, kind = _where(item)
        change = encode_change(item.change) if isinstance(item, _Change) else encode_offer(item.offer)
        self.letters.append(
            DeadLetter(
                link=item.link,
                source_node=item.source,
                target_node=node,
                namespace=namespace,
                key=key,
                kind=kind,
                change=change,
                reason=reason,
                held=held,
                shard=self.shard,
            )
        )


_Item = TypeVar("_Item", _Change, _Offered)


def _where(item: _Change | _Offered) -> tuple[str, dict[str, Any], Kind]:
    """The target row a change or an offer writes: (table, key), and which kind it is."""
    if isinstance(item, _Change):
        return item.change.namespace, item.change.key, "apply"
    return item.offer.namespace, item.offer.key, "offer"


def _stamped(item: _Offered, stamped: dict[int, Version]) -> _Offered:
    """The offer with the version its own node stamped (as captured when that node set it aside)."""
    version = stamped.get(item.event, item.offer.version)
    return item._replace(offer=msgspec.structs.replace(item.offer, version=version))
