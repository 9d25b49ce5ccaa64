"""The capture streams: polling them, handing their slices to the feeds, committing their positions.

A poll's reply is a :class:`~actors.capture.Captured`: sizes and object references, no event. Each
slice becomes one part of a feed (a shard, the audit actor); the batch is done when every part is. A
stream's position commits only when every batch up to it is done (the low-water mark, see
actors.core.progress): persisted first, then the capture actor lets the source release it.

When a slice is lost (its capture actor died, and its objects with it), the stream is *rewound*: a new
epoch, its queued parts dropped, and the capture reads again from the committed position. Changes applied
from the lost epoch are applied again, harmlessly (writers are idempotent, the audit actor skips what
it stored); none is skipped, because nothing past the committed position was committed.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from actors.control.backoff import Backoff
from actors.control.calls import Calls, CaptureHandle, Reply, start_actor
from actors.control.feeds import RECREATE_AFTER_FAILURES, BatchPart, Feed, Part
from actors.control.placement import Placement
from actors.core.errors import WorkerSyncError
from actors.core.events import Position
from actors.core.offsets import FileOffsetStore
from actors.core.plan import RoutingPlan
from actors.core.progress import StreamProgress
from actors.core.routing import Route
from actors.core.streams import StreamSpec
from actors.engines.registry import engine_for
from config.loader import nodes_by_name
from config.model import Config

if TYPE_CHECKING:
    from actors.capture import Captured

log = logging.getLogger("worker_sync.supervisor")

LAG_SAMPLE = 4_096
#: A stream whose last batch came back full is behind (a backlog): its next poll may take this many times
#: `batch_max_events`, so draining a backlog costs fewer calls per change (lag under light load is unchanged:
#: batches there are cut by `batch_max_wait_ms` long before they fill).
BACKLOG_BATCH_FACTOR = 4


@dataclass
class StreamState:
    spec: StreamSpec
    actor: CaptureHandle
    progress: StreamProgress
    backoff: Backoff
    last_received: Position | None = None
    polling: bool = False
    seq: int = 0
    #: Bumped by each rewind: replies and parts of an earlier epoch are stale.
    epoch: int = 0
    error: str | None = None
    captured: int = 0
    commit_times: dict[int, list[int]] = field(default_factory=dict)
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLE))
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    #: A manual re-sync was asked for: polling stops, and once nothing is in flight the stream restarts
    #: with a fresh snapshot (see actors/control/resyncs.py).
    resync: bool = False
    #: The committed position a re-sync's snapshot follows, until the snapshot is committed.
    resync_after: Position | None = None
    generation: int = 0
    #: The last batch came back full: a backlog is draining (see BACKLOG_BATCH_FACTOR).
    behind: bool = False


def stream_specs(config: Config, routes: Sequence[Route]) -> list[StreamSpec]:
    """One capture stream per source node, covering every table routed from it."""
    nodes = nodes_by_name(config)
    tables: dict[str, list[str]] = defaultdict(list)
    grouped = {route.source_node for route in routes if route.group}
    for route in routes:
        if route.source_namespace not in tables[route.source_node]:
            tables[route.source_node].append(route.source_namespace)
    return [
        StreamSpec(
            stream=node_name,
            node_name=node_name,
            node=nodes[node_name],
            tables=names,
            echo_marker=node_name in grouped and engine_for(nodes[node_name]).needs_echo_marker,
        )
        for node_name, names in tables.items()
    ]


class Streams:
    """Every capture stream of the run, keyed by name."""

    def __init__(
        self,
        config: Config,
        calls: Calls,
        placement: Placement,
        plan: RoutingPlan,
        shards: list[Feed[Any]],
        run_id: str,
    ) -> None:
        self._config = config
        self._calls = calls
        self._placement = placement
        self._plan = plan
        self._shards = shards
        #: The audit actor's feed (None: audit is off); set once that actor is started.
        self.audit_feed: Feed[Any] | None = None
        self._run_id = run_id
        self.offsets = FileOffsetStore(config.supervisor.state_dir)
        self.states: dict[str, StreamState] = {}
        self.stopping = False

    def start(self, specs: Sequence[StreamSpec]) -> None:
        s = self._config.supervisor
        for spec in specs:
            committed = self.offsets.load(spec.stream)
            backoff = Backoff(s.restart_backoff_initial_s / 10, s.restart_backoff_max_s)
            state = StreamState(spec, self.new_capture(spec), StreamProgress(committed), backoff)
            state.last_received = committed
            self.states[spec.stream] = state
            log.info("stream %s: resuming after %s", spec.stream, committed or "nothing (initial snapshot)")

    def new_capture(self, spec: StreamSpec, generation: int = 0) -> CaptureHandle:
        from actors.capture import CaptureActor

        name = f"capture:{spec.stream}:{self._run_id}" + (f":{generation}" if generation else "")
        strategy = self._placement.next_node()
        options = {"name": name, "scheduling_strategy": strategy, **self._placement.resources()}
        actor = start_actor(CaptureActor, spec, self._plan, self._config.audit.enabled, **options)
        return cast(CaptureHandle, actor)

    # -- polling ------------------------------------------------------------------------------------

    def submit_polls(self) -> None:
        if self.stopping:
            return
        settings = self._config.supervisor
        for state in self.states.values():
            if state.polling or state.error or state.resync or not state.backoff.ready:
                continue
            if state.progress.in_flight >= settings.queue_max_batches:
                continue  # back-pressure: the capture actor's buffer fills, then it stops reading
            ref = state.actor.poll.remote(
                settings.batch_max_events * (BACKLOG_BATCH_FACTOR if state.behind else 1),
                settings.batch_max_wait_ms / 1000,
                state.last_received,
                state.progress.committed,
                state.seq + 1,
                state.epoch,
            )
            self._calls.send(ref, partial(self._on_poll, state, state.epoch), background=True)
            state.polling = True

    def _on_poll(self, state: StreamState, epoch: int, reply: Reply[Captured | None]) -> None:
        state.polling = False
        if reply.error is not None:
            self._poll_failed(state, reply)
            return
        state.backoff.succeeded()
        captured = reply.value
        state.behind = captured is not None and captured.events >= self._config.supervisor.batch_max_events
        if captured is None or epoch != state.epoch:  # nothing new, or read before a rewind
            return
        self._received(state, captured)

    def _poll_failed(self, state: StreamState, reply: Reply[Any]) -> None:
        delay = state.backoff.failed()
        name = state.spec.stream
        if reply.actor_died:
            if reply.actor_stranded or state.backoff.failures >= RECREATE_AFTER_FAILURES:
                log.error("stream %s: capture actor keeps failing (%s); creating a new one", name, reply.summary())
                self.recreate(state)
                state.backoff.succeeded()
            else:
                log.warning("stream %s: capture actor unavailable; retrying in %.1fs", name, delay)
            return
        state.outcomes.append((time.monotonic(), False))
        cause = reply.error
        if isinstance(cause, WorkerSyncError) and not cause.retryable:  # a human must act: stop, say why
            state.error = str(cause)
            log.error("stream %s: stopped: %s", name, cause)
        elif isinstance(cause, WorkerSyncError):
            log.warning("stream %s: %s; retrying in %.1fs", name, cause, delay)
        else:  # unclassified (a driver's misparse after an outage, say): start afresh from the committed position
            log.warning(
                "stream %s: unexpected %s: %s; reading again from the committed position in %.1fs",
                name,
                type(cause).__name__,
                reply.summary(),
                delay,
            )

    def _received(self, state: StreamState, captured: Captured) -> None:
        from actors.metrics import ECHOES_SUPPRESSED, EVENTS_CAPTURED

        state.seq = seq = captured.seq
        for group, count in captured.echoes.items():
            ECHOES_SUPPRESSED.labels(group).inc(count)
        name = state.spec.stream
        parts: list[tuple[Feed[Any], Part]] = [
            (self._shards[index], BatchPart(name, seq, state.epoch, piece.payload, piece.events))
            for index, piece in captured.slices.items()
        ]
        if self.audit_feed is not None and captured.audited is not None:
            audited = captured.audited
            parts.append((self.audit_feed, BatchPart(name, seq, state.epoch, audited.payload, audited.events)))
        oldest = min(captured.commit_times_us, default=0)
        state.progress.received(seq, captured.upto, len(parts), captured.events, oldest)
        state.commit_times[seq] = captured.commit_times_us
        for feed, part in parts:
            feed.queue.append(part)
        if captured.upto is not None:
            state.last_received = captured.upto
        state.captured += captured.events
        EVENTS_CAPTURED.labels(name).inc(captured.events)
        if not parts:
            self._batch_done(state, seq)

    # -- progress -----------------------------------------------------------------------------------

    def stale(self, part: Part) -> bool:
        """A part of a stream rewound since it was captured: nothing waits for it any more."""
        return isinstance(part, BatchPart) and part.epoch != self.states[part.stream].epoch

    def part_done(self, part: BatchPart) -> None:
        """One feed applied (or stored) ``part``."""
        state = self.states[part.stream]
        if part.epoch == state.epoch and state.progress.part_done(part.seq):
            self._batch_done(state, part.seq)

    def outcome(self, stream: str, ok: bool) -> None:
        """A call carrying this stream's changes succeeded or failed (for `error_ratio`)."""
        self.states[stream].outcomes.append((time.monotonic(), ok))

    def _batch_done(self, state: StreamState, seq: int) -> None:
        from actors.metrics import END_TO_END_LAG, EVENTS_APPLIED, observe_many

        now_us = time.time() * 1_000_000
        times = state.commit_times.pop(seq, [])
        lags_ms = [(now_us - commit_us) / 1000 for commit_us in times]
        state.lags_ms.extend(lags_ms)
        observe_many(END_TO_END_LAG.labels(state.spec.stream), [lag / 1000 for lag in lags_ms])
        EVENTS_APPLIED.labels(state.spec.stream).inc(len(times))

    def rewind(self, stream: str, why: str) -> None:
        """Drop what ``stream`` has in flight and read it again from the committed position (see the
        module docstring)."""
        state = self.states[stream]
        state.epoch += 1
        for feed in [*self._shards, *([self.audit_feed] if self.audit_feed is not None else [])]:
            feed.drop_stream(stream)
        applied = state.progress.applied_events
        state.progress = StreamProgress(state.progress.committed)
        state.progress.applied_events = applied
        state.commit_times.clear()
        state.last_received = state.progress.committed
        log.warning("stream %s: %s; reading again after the committed position %s", stream, why, state.last_received)

    def recreate(self, state: StreamState) -> None:
        """A new capture actor for ``state`` (on a node alive now); what the old one put is lost with it."""
        from actors.metrics import ACTOR_RESTARTS

        state.generation += 1  # a fresh name: the dead actor's may not be released yet
        state.actor = self.new_capture(state.spec, state.generation)
        ACTOR_RESTARTS.labels("capture").inc()
        self.rewind(state.spec.stream, "its capture actor was replaced")
        if state.resync_after is not None:  # its re-sync snapshot may be unfinished: take it again
            state.resync = True

    def stop(self, stream: str, error: str) -> None:
        """Stop polling ``stream`` until an operator acts (``on_error: stop``)."""
        if stream in self.states:
            self.states[stream].error = error
            log.error("stream %s: stopped (on_error: stop): %s", stream, error)

    # -- commits ------------------------------------------------------------------------------------

    def commit(self) -> None:
        """Persist each stream's new low-water mark, then tell its capture actor the source may release it."""
        for state in self.states.values():
            position = state.progress.committable()
            if position is None:
                continue
            self.offsets.save(state.spec.stream, position)
            if state.resync_after is not None and position > state.resync_after:
                # The re-sync snapshot is applied. (Should Ray restart this actor later, it re-reads
                # the tables once more, harmlessly: its creation arguments ask for a snapshot.)
                state.resync_after = None
            self._calls.send(state.actor.commit.remote(position), partial(self._on_commit, state))

    @staticmethod
    def _on_commit(state: StreamState, reply: Reply[None]) -> None:
        if reply.error is not None:  # the next commit carries a later position and covers this one
            log.warning(
                "stream %s: commit failed (%s); the next commit will cover it", state.spec.stream, reply.summary()
            )

    def close(self) -> None:
        from actors.control.calls import get

        for state in self.states.values():
            try:
                get(state.actor.close.remote(), timeout_s=10)
            except Exception as exc:  # a dead actor has nothing left to close
                log.warning("stream %s: close failed: %s", state.spec.stream, exc)

    def committed_summary(self) -> str:
        return ", ".join(f"{n}={s.progress.committed}" for n, s in self.states.items()) or "nothing"
