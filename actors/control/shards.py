"""The applier shards: each fed its parts one call at a time; what their replies mean for the streams,
the conflicts and the dead letters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from actors.control.backoff import Backoff
from actors.control.calls import ApplierHandle, Calls, Reply, start_actor
from actors.control.conflicts import Conflicts
from actors.control.feeds import BatchPart, Feed, ResolutionPart
from actors.control.placement import Placement
from actors.control.streams import Streams
from actors.core.routing import Route
from actors.dead_letter_manager import DeadLetterManager
from actors.dead_letter_store import Entry
from config.model import Node

if TYPE_CHECKING:
    from actors.applier import Applied

log = logging.getLogger("worker_sync.supervisor")

#: At most this many events go to one shard in one call (and one target transaction).
MAX_EVENTS_PER_APPLY = 5_000


class Shards:
    """The applier shard actors and their feeds."""

    def __init__(
        self,
        routes: list[Route],
        targets: dict[str, Node],
        calls: Calls,
        placement: Placement,
        dead_letters: DeadLetterManager,
        run_id: str,
        backoff: Callable[[], Backoff],
    ) -> None:
        self._routes = routes
        self._targets = targets
        self._calls = calls
        self._placement = placement
        self._dead_letters = dead_letters
        self._run_id = run_id
        self._backoff = backoff
        self.feeds: list[Feed[ApplierHandle]] = []
        #: Changes the shards have written to their targets so far (those set aside as dead letters included).
        self.changes_applied = 0
        # Set by the supervisor once streams and conflicts exist (they need the feeds first).
        self.streams: Streams | None = None
        self.conflicts: Conflicts | None = None

    def start(self, count: int) -> None:
        self.feeds.extend(Feed(index, self._new_shard(index), self._backoff()) for index in range(count))

    def _new_shard(self, index: int, generation: int = 0) -> ApplierHandle:
        from actors.applier import ApplierShard

        name = f"applier:{index}:{self._run_id}" + (f":{generation}" if generation else "")
        options = {"name": name, "scheduling_strategy": self._placement.next_node(), **self._placement.resources()}
        shard = cast(ApplierHandle, start_actor(ApplierShard, index, self._routes, self._targets, **options))
        shard.prepare.remote()  # connects while the capture actors start; what fails, the first apply reports
        return shard

    def submit(self) -> None:
        for feed in self.feeds:
            parts = feed.next_call(MAX_EVENTS_PER_APPLY)
            if parts:
                ref = feed.actor.apply.remote(self._dead_letters.blocked, *[part.payload for part in parts])
                self._calls.send(ref, partial(self._on_apply, feed))
                feed.busy = True
        for index, entries in self._dead_letters.take_retries():
            feed = self.feeds[index % len(self.feeds)]
            retry = feed.actor.reapply.remote([entry.letter() for entry in entries])
            self._calls.send(retry, partial(self._on_reapply, entries))

    def _on_apply(self, feed: Feed[ApplierHandle], reply: Reply[Applied]) -> None:
        from actors.metrics import ACTOR_RESTARTS, APPLY_ERRORS

        assert self.streams is not None and self.conflicts is not None
        feed.busy = False
        streams = {part.stream for part in feed.sending if isinstance(part, BatchPart)}
        if reply.object_lost:  # a capture actor died with slices it put: read those streams again
            for stream in {p.stream for p in feed.sending if isinstance(p, BatchPart) and not self.streams.stale(p)}:
                self.streams.rewind(stream, f"a slice for applier shard {feed.index} was lost ({reply.summary()})")
            feed.sending = [part for part in feed.sending if not self.streams.stale(part)]
            return
        for stream in streams:
            self.streams.outcome(stream, reply.error is None)
        if reply.error is not None:
            APPLY_ERRORS.labels(str(feed.index)).inc()
            feed.sending = [part for part in feed.sending if not self.streams.stale(part)]
            delay = feed.backoff.failed()
            feed.error = reply.summary()
            log.warning("applier shard %d: %s; sending the same slice again in %.1fs", feed.index, feed.error, delay)
            if feed.actor_failed(reply):
                log.error("applier shard %d: actor keeps failing; creating a new one", feed.index)
                feed.generation += 1
                feed.actor = self._new_shard(feed.index, feed.generation)
                feed.actor_failures = 0
                ACTOR_RESTARTS.labels("applier").inc()
            return
        applied = reply.result()
        feed.backoff.succeeded()
        feed.error, feed.actor_failures = None, 0
        feed.applied_calls += 1
        self.conflicts.count(applied.offers, applied.conflicts)  # parked before the positions commit
        recorded = self._dead_letters.record(applied.dead_letters)  # recorded before the positions commit
        for stream, error in self._dead_letters.stopping(recorded).items():
            self.streams.stop(stream, error)  # `on_error: stop`: the stream stops with the error shown
        for part in feed.sending:
            if isinstance(part, ResolutionPart):
                self.conflicts.resolved(part.conflict)
            else:
                self.changes_applied += part.events
                self.streams.part_done(part)
        feed.sending = []

    def _on_reapply(self, entries: list[Entry], reply: Reply[list[str | None]]) -> None:
        if reply.error is None:
            self._dead_letters.retried(entries, reply.result())
        else:  # a passing fault (the target is down): the letters stay, retry again later
            self._dead_letters.retried(entries, None, error=f"retry failed: {reply.summary()}")
