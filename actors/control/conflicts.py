"""Conflicts of bidirectional groups: counted, audited, parked for a human (`manual` groups), resolved.

The shards decide conflicts as they apply (actors.core.conflicts) and report them; here they become
metrics, audit entries and, for `manual` groups, parked items. A resolution (``take source``) is one
change made now at the parked row's node, newer than anything its group holds, sent to that row's shard
as a :class:`~actors.control.feeds.ResolutionPart`; it wins on every member.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any

from actors.conflict_store import ConflictStore, Take
from actors.control.audit_feed import AuditFeed
from actors.control.feeds import Feed, ResolutionPart
from actors.core.audit.entries import key_text
from actors.core.batches import Batch
from actors.core.conflicts import RESOLUTION_ENGINE, ConflictRecord, Stored
from actors.core.encoding import encode_batch, encode_row
from actors.core.events import ChangeEvent, Op, Position
from actors.core.plan import RoutingPlan

log = logging.getLogger("worker_sync.supervisor")

#: `conflict_rate` is conflicts per offer over this many seconds.
CONFLICT_RATE_WINDOW_S = 60.0


class Conflicts:
    """The run's conflict bookkeeping (a no-op without bidirectional groups)."""

    def __init__(self, store: ConflictStore | None, plan: RoutingPlan, shards: list[Feed[Any]]) -> None:
        self.store = store
        self._plan = plan
        self._shards = shards
        self.audit: AuditFeed | None = None
        self._window: deque[tuple[float, dict[str, int], dict[str, int]]] = deque()
        self._resolutions: deque[tuple[str, Take]] = deque()
        self._lock = threading.Lock()
        if store is not None:
            for item in store.all():  # resolutions a crash interrupted: send them again
                if item.state == "resolving" and item.take is not None:
                    self._resolutions.append((item.id, item.take))

    def count(self, offers: dict[str, int], records: list[ConflictRecord]) -> None:
        """One shard call's offers per group and the conflicts among them."""
        from actors.metrics import CONFLICT_RATE, CONFLICTS, OFFERS

        if not offers:
            return
        lost: dict[str, int] = defaultdict(int)
        for record in records:
            CONFLICTS.labels(record.group, str(record.outcome)).inc()
            lost[record.group] += 1
            log.info(
                "conflict in %s on node %s, key %s: the change of %s lost to %s (%s)",
                record.group,
                record.node,
                record.key,
                record.loser.version.node,
                record.winner.version.node,
                record.outcome,
            )
        for group, count in offers.items():
            OFFERS.labels(group).inc(count)
        if self.audit is not None:
            self.audit.conflicts(conflict_document(record) for record in records)
        manual = [record for record in records if record.policy == "manual"]
        if manual and self.store is not None:
            self.store.park(manual)
        now = time.monotonic()
        self._window.append((now, offers, dict(lost)))
        while self._window and self._window[0][0] < now - CONFLICT_RATE_WINDOW_S:
            self._window.popleft()
        for group in {g for _, o, _ in self._window for g in o}:
            offered = sum(o.get(group, 0) for _, o, _ in self._window)
            conflicted = sum(c.get(group, 0) for _, _, c in self._window)
            CONFLICT_RATE.labels(group).set(conflicted / offered if offered else 0.0)

    # -- called from the HTTP thread ------------------------------------------------------------------

    def views(self) -> list[dict[str, object]]:
        return [] if self.store is None else [item.view() for item in self.store.all()]

    def view(self, ident: str) -> dict[str, object] | None:
        item = None if self.store is None else self.store.get(ident)
        return None if item is None else item.view()

    def resolve(self, ident: str, take: Take) -> dict[str, object]:
        """Queue the resolution of a parked conflict (see ConflictStore); KeyError for an unknown one."""
        item = None if self.store is None else self.store.get(ident)
        if item is None or self.store is None:
            raise KeyError(ident)
        if item.state != "parked":
            return item.view()
        with self._lock:
            view = self.store.set_state(ident, "resolving", take).view()
            self._resolutions.append((ident, take))
        return view

    # -- the loop -----------------------------------------------------------------------------------------

    def submit_resolutions(self) -> None:
        """``take source``: the parked change, with a version newer than anything the group holds, goes to
        its group's shard like a captured change and wins on every member. ``take target``: every member
        already holds the winner, so there is nothing to write."""
        while self._resolutions:
            with self._lock:
                ident, take = self._resolutions.popleft()
            assert self.store is not None
            item = self.store.get(ident)
            if item is None:
                continue
            if self.audit is not None:
                detail: dict[str, object] = {"group": item.group, "node": item.node, "namespace": item.namespace}
                detail.update(key=key_text(item.key()), outcome=f"resolved-take-{take}", policy=item.policy)
                self.audit.conflicts([detail])
            if take == "target":
                self.store.set_state(ident, "resolved")
                continue
            event = resolution_event(item.node, item.namespace, item.key(), item.loser().row)
            payload = encode_batch(Batch(f"resolve:{ident}", 0, [event], None))
            self._shards[self._plan.shard(event)].queue.append(ResolutionPart(ident, payload))

    def resolved(self, ident: str) -> None:
        """The shard applied a resolution."""
        assert self.store is not None
        self.store.set_state(ident, "resolved")
        log.info("conflict %s resolved: the parked change now holds on every node of its group", ident)


def conflict_document(record: ConflictRecord) -> dict[str, object]:
    """A conflict decision as the audit log keeps it (rows as typed msgpack bytes: exact, and hashable)."""

    def side(stored: Stored) -> dict[str, object]:
        v = stored.version
        return {
            "node": v.node,
            "commit_time_us": v.time_us,
            "priority": v.priority,
            "position": v.order.hex(),
            "causal": v.causal,
            "row": None if stored.row is None else encode_row(stored.row),
        }

    return {
        "group": record.group,
        "node": record.node,
        "namespace": record.namespace,
        "key": key_text(record.key),
        "outcome": str(record.outcome),
        "policy": record.policy,
        "lost": side(record.loser),
        "kept": side(record.winner),
    }


def resolution_event(node: str, namespace: str, key: dict, row: dict | None) -> ChangeEvent:
    """A change made at ``node`` now, carrying ``row`` (None: a delete): newer than every change the
    group has seen, so it wins on every member, the node itself included."""
    now_us = time.time_ns() // 1000
    return ChangeEvent(
        node=node,
        engine=RESOLUTION_ENGINE,
        namespace=namespace,
        op=Op.DELETE if row is None else Op.INSERT,
        key=key,
        before=None,
        after=row,
        commit_time_us=now_us,
        txid=f"resolve:{now_us}",
        position=Position(b"\xff" * 8 + now_us.to_bytes(8, "big"), ""),
    )
