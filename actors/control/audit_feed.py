"""The audit-chain actor's feed: each batch's audited part, conflict decisions, admin entries, ticks.

Fed like a shard (one call at a time, re-sent as it was on failure), so a position commits only once its
changes are also stored in the signed log: a crash can never skip an audit entry.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import msgspec

from actors.control.backoff import Backoff
from actors.control.calls import AuditHandle, Calls, Reply, kill, start_actor
from actors.control.feeds import BatchPart, Feed
from actors.control.placement import Placement
from actors.control.streams import Streams
from actors.core.errors import AuditMismatch, WorkerSyncError
from actors.core.streams import StreamSpec
from config.loader import nodes_by_name
from config.model import Config

if TYPE_CHECKING:
    from actors.audit_chain import Appended

log = logging.getLogger("worker_sync.supervisor")

#: At most this many changes go to the audit actor in one call (one COPY into the store).
MAX_EVENTS_PER_AUDIT = 20_000
#: `audit_write_tps` is the entries stored over this many seconds, per second.
AUDIT_RATE_WINDOW_S = 5.0


class AuditFeed:
    """The audit-chain actor (one writer for the one log) and what waits for it."""

    def __init__(self, config: Config, calls: Calls, run_id: str, backoff: Callable[[], Backoff]) -> None:
        self._config = config
        self._calls = calls
        self._run_id = run_id
        self._backoff = backoff
        self._streams: list[str] = []
        self._generation = 0
        self.feed: Feed[AuditHandle] | None = None
        # Set by the supervisor once the streams exist.
        self.streams: Streams | None = None
        self._conflicts: list[dict[str, object]] = []
        self._conflicts_sending: list[dict[str, object]] = []
        self._stored: deque[tuple[float, int]] = deque()
        self._tick_at = 0.0
        self._ticking = False
        #: An error no retry can help (foreign entries in the log): the supervisor stops with it.
        self.fatal: WorkerSyncError | None = None

    def start(self, specs: Sequence[StreamSpec]) -> Feed[AuditHandle]:
        self._streams = [spec.stream for spec in specs]
        self.feed = Feed(-1, self._new_actor(), self._backoff())
        self._record_config()
        return self.feed

    def _new_actor(self) -> AuditHandle:
        from actors.audit_chain import AuditChain

        node = nodes_by_name(self._config)[self._config.audit.node]
        name = f"audit-chain:{self._run_id}" + (f":{self._generation}" if self._generation else "")
        # Beside the supervisor: the checkpoint export directory is mounted where it runs.
        options = {"name": name, "scheduling_strategy": Placement.this_node()}
        return cast(AuditHandle, start_actor(AuditChain, self._config.audit, node, self._streams, **options))

    def _record_config(self) -> None:
        """An admin entry for the configuration this run uses (once per distinct configuration)."""
        digest = hashlib.sha256(msgspec.json.encode(self._config, order="sorted")).hexdigest()
        self.admin("config-loaded", {"sha256": digest, "run_id": self._run_id}, f"config:{digest}")

    # -- what waits to be recorded ---------------------------------------------------------------------

    def conflicts(self, documents: Iterable[dict[str, object]]) -> None:
        """Conflict decisions (or resolutions) to record as CONFLICT entries."""
        self._conflicts.extend(documents)

    def admin(self, kind: str, detail: dict[str, object], request_id: str) -> None:
        """Record an admin entry (idempotent per request id: a failed call is simply left to the next run)."""
        assert self.feed is not None
        ref = self.feed.actor.record_admin.remote(kind, detail, request_id)
        self._calls.send(ref, self._on_admin)

    # -- the loop -----------------------------------------------------------------------------------------

    def submit(self, stopping: bool) -> None:
        """Feed the actor like a shard; also ask it for a time-based checkpoint now and then."""
        feed = self.feed
        if feed is None:
            return
        parts = feed.next_call(MAX_EVENTS_PER_AUDIT)
        if parts:
            ref = feed.actor.append.remote(*[part.payload for part in parts])
            self._calls.send(ref, self._on_append)
            feed.busy = True
        if self._conflicts and not self._conflicts_sending:
            self._conflicts_sending, self._conflicts = self._conflicts, []
            self._calls.send(feed.actor.record_conflicts.remote(self._conflicts_sending), self._on_conflicts)
        now = time.monotonic()
        if not self._ticking and now >= self._tick_at and not stopping:
            self._tick_at = now + self._config.audit.checkpoint_every_ms / 1000
            self._calls.send(feed.actor.tick.remote(), self._on_tick)
            self._ticking = True

    def _stop_on(self, reply: Reply[Any]) -> None:
        """A log that does not verify (foreign entries, a store cut short) stops the run: no retry helps, and
        nothing may be signed on top of it."""
        error = reply.error
        if isinstance(error, AuditMismatch) and self.fatal is None:
            self.fatal = error

    def _on_append(self, reply: Reply[Appended]) -> None:
        from actors.metrics import ACTOR_RESTARTS

        feed, streams = self.feed, self.streams
        assert feed is not None and streams is not None
        feed.busy = False
        self._stop_on(reply)
        if reply.object_lost:  # a capture actor died with what it put: read its streams again
            for stream in {p.stream for p in feed.sending if isinstance(p, BatchPart) and not streams.stale(p)}:
                streams.rewind(stream, f"a batch for the audit actor was lost ({reply.summary()})")
            feed.sending = [part for part in feed.sending if not streams.stale(part)]
            return
        if reply.error is not None:
            feed.sending = [part for part in feed.sending if not streams.stale(part)]
            delay = feed.backoff.failed()
            feed.error = reply.summary()
            log.warning("audit: %s; sending the same batches again in %.1fs", feed.error, delay)
            if feed.actor_failed(reply):
                log.error("audit: the audit-chain actor keeps failing; creating a new one")
                kill(feed.actor)  # one writer at a time: the old one must be gone
                self._generation += 1
                feed.actor = self._new_actor()
                feed.actor_failures = 0
                ACTOR_RESTARTS.labels("audit").inc()
            return
        feed.backoff.succeeded()
        feed.error, feed.actor_failures = None, 0
        feed.applied_calls += 1
        self._stored.append((time.monotonic(), reply.result().entries))
        for part in feed.sending:
            if isinstance(part, BatchPart):
                streams.part_done(part)
        feed.sending = []

    def _on_admin(self, reply: Reply[Appended]) -> None:
        self._stop_on(reply)
        if reply.error is not None:  # the entry is idempotent: the next run (or restart) records it
            log.warning("audit: recording an admin entry failed: %s", reply.summary())

    def _on_conflicts(self, reply: Reply[Appended]) -> None:
        self._stop_on(reply)
        if reply.error is not None:  # sent again with the next conflicts (or on their own next loop)
            log.warning("audit: recording conflict decisions failed: %s", reply.summary())
            self._conflicts = self._conflicts_sending + self._conflicts
        self._conflicts_sending = []

    def _on_tick(self, reply: Reply[bool]) -> None:
        self._ticking = False
        self._stop_on(reply)
        if reply.error is not None:  # the next tick, or the next append, signs what is waiting
            log.warning("audit: checkpoint tick failed: %s", reply.summary())

    def write_tps(self) -> float:
        """Entries the audit actor stored per second over the last AUDIT_RATE_WINDOW_S seconds."""
        now = time.monotonic()
        while self._stored and self._stored[0][0] < now - AUDIT_RATE_WINDOW_S:
            self._stored.popleft()
        return sum(n for _, n in self._stored) / AUDIT_RATE_WINDOW_S

    @property
    def idle(self) -> bool:
        return self.feed is None or self.feed.idle

    def close(self) -> None:
        """A final signed checkpoint."""
        from actors.control.calls import get

        if self.feed is not None:
            try:
                get(self.feed.actor.close.remote(), timeout_s=10)
            except Exception as exc:
                log.warning("audit: close failed: %s", exc)
