"""The Worker-Sync supervisor: builds the actor topology from the config and keeps it running.

``python supervisor.py --config FILE`` is ``worker-sync run --config FILE``: what
``ray job submit --working-dir . -- python supervisor.py --config FILE`` runs.

One loop, one thread: it polls each capture actor for a batch (at most ``queue_max_batches``
in flight per stream: back-pressure), splits the batch by hash(namespace, key) across the
applier shards, feeds each shard one call at a time (so a shard applies its slices in order,
also after a crash, when the failed call is simply sent again), and commits a stream's position
only when every batch up to it has been applied by every shard (the low-water mark). The
capture actor then persists it and lets the source release it.

With ``audit.enabled``, each batch with changes is one more part, fed to the audit-chain actor the
same way (one call at a time, re-sent on failure): a position is committed only once its changes
are both applied and stored in the signed audit log, so a crash can never skip an audit entry.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import msgspec

from actors.conflict_store import ConflictStore, Take
from actors.core.audit.entries import key_text
from actors.core.batches import Batch, lag_reference_us
from actors.core.conflicts import RESOLUTION_ENGINE, ConflictRecord, Stored
from actors.core.encoding import decode_batch, encode_batch, encode_row
from actors.core.errors import WorkerSyncError
from actors.core.events import ChangeEvent, Op, Position
from actors.core.groups import Group, build_groups, group_index
from actors.core.offsets import FileOffsetStore
from actors.core.progress import StreamProgress
from actors.core.routing import Route, build_routes, routes_by_source, shard_of, split_key_change
from actors.core.streams import StreamSpec
from actors.dead_letter_manager import DeadLetterManager
from actors.dead_letter_store import Entry
from actors.ray_watch import GcsWatch
from actors.status import ShardStatus, Status, StreamStatus, percentile
from config.loader import nodes_by_name
from config.model import Config, MongoNode, MySqlNode

if TYPE_CHECKING:
    from ray import ObjectRef

    from actors.applier import Applied
    from actors.audit_chain import Appended

log = logging.getLogger("worker_sync.supervisor")

LOOP_WAIT_S = 0.02
#: At most this many events go to one shard in one call (and one target transaction).
MAX_EVENTS_PER_APPLY = 5_000
#: At most this many changes go to the audit actor in one call (one COPY into the store).
MAX_EVENTS_PER_AUDIT = 20_000
#: `audit_write_tps` is the entries stored over this many seconds, per second.
AUDIT_RATE_WINDOW_S = 5.0
#: `conflict_rate` is conflicts per offer over this many seconds.
CONFLICT_RATE_WINDOW_S = 60.0
LAG_SAMPLE = 4_096
#: Ray restarts a crashed actor by itself (max_restarts=-1); when calls to it keep failing this
#: many times in a row (its node is gone, say), the supervisor creates a new one.
RECREATE_AFTER_FAILURES = 5
#: A stream, shard or the audit actor failing continuously for longer than this makes /readyz fail.
FAILING_AFTER_S = 15.0
#: The loop turns every few milliseconds; one that has not turned for this long is stuck (on Ray, say).
HEALTHY_HEARTBEAT_S = 5.0


_R = TypeVar("_R")
_H = TypeVar("_H")


class RemoteMethod(Protocol[_R]):
    """An actor method seen through the actor's handle: ``.remote(...)`` sends a call, ``ray.get`` of the
    ObjectRef it returns waits for the result."""

    def remote(self, *args: Any) -> ObjectRef[_R]: ...


class RemoteClass(Protocol[_H]):
    """A class under ``@ray.remote``: ``.options(...).remote(...)`` starts an actor and returns its handle."""

    def options(self, **options: Any) -> RemoteClass[_H]: ...

    def remote(self, *args: Any) -> _H: ...


# Ray's own types cannot describe these handles (mypy does not apply class decorators, and Ray's typed
# `@ray.method` drops parameters with defaults), so each protocol lists what the supervisor calls.
class CaptureHandle(Protocol):
    """A handle of actors.capture.CaptureActor."""

    poll: RemoteMethod[bytes | None]
    commit: RemoteMethod[None]
    close: RemoteMethod[None]


class ApplierHandle(Protocol):
    """A handle of actors.applier.ApplierShard."""

    apply: RemoteMethod[Applied]
    reapply: RemoteMethod[list[str | None]]


class AuditHandle(Protocol):
    """A handle of actors.audit_chain.AuditChain."""

    append: RemoteMethod[Appended]
    record_admin: RemoteMethod[Appended]
    record_conflicts: RemoteMethod[Appended]
    tick: RemoteMethod[bool]
    close: RemoteMethod[None]


def _kill(actor: object) -> None:
    """Kill an actor for good (no restart by Ray)."""
    import ray
    from ray.actor import ActorHandle

    assert isinstance(actor, ActorHandle)  # every handle here comes from RemoteClass.remote
    ray.kill(actor, no_restart=True)


class RayUnreachable(ConnectionError):
    """The supervisor lost Ray itself: nothing can run until it is back (exit 3, and the chart restarts it)."""


@dataclass
class Backoff:
    """Exponential backoff between retries of one thing."""

    initial_s: float
    max_s: float
    failures: int = 0
    not_before: float = 0.0
    #: When the current run of failures began (None: the last try succeeded).
    failing_since: float | None = None

    def failed(self) -> float:
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        delay = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        self.not_before = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
        self.failing_since = None

    def failing_for(self, now: float) -> float:
        """Seconds since the current run of failures began (0 when not failing)."""
        return 0.0 if self.failing_since is None else now - self.failing_since

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.not_before


@dataclass
class Part:
    stream: str
    seq: int
    data: bytes
    events: int


@dataclass
class StreamState:
    spec: StreamSpec
    actor: CaptureHandle
    progress: StreamProgress
    backoff: Backoff
    last_received: Position | None = None
    polling: bool = False
    seq: int = 0
    error: str | None = None
    captured: int = 0
    commit_times: dict[int, list[int]] = field(default_factory=dict)
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLE))
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    #: A manual re-sync was asked for: polling stops, and once nothing is in flight the stream restarts
    #: with a fresh snapshot (see Supervisor._advance_resyncs).
    resync: bool = False
    #: The committed position a re-sync's snapshot follows, until the snapshot is committed.
    resync_after: Position | None = None
    generation: int = 0


@dataclass
class ShardState(Generic[_H]):
    """An applier shard, or the audit-chain actor, fed the same way."""

    index: int
    actor: _H
    backoff: Backoff
    queue: deque[Part] = field(default_factory=deque)
    #: Parts sent in the call under way (re-sent as they are if it fails).
    sending: list[Part] = field(default_factory=list)
    busy: bool = False
    applied_calls: int = 0
    error: str | None = None


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
            echo_marker=node_name in grouped and isinstance(nodes[node_name], MySqlNode | MongoNode),
        )
        for node_name, names in tables.items()
    ]


def _fill_sending(target: ShardState[Any], limit: int) -> None:
    """Group queued parts into the next call, up to ``limit`` events (at least one part); a group
    that failed stays in ``sending`` and goes again as it is."""
    if target.sending:
        return
    events = 0
    while target.queue and (not target.sending or events + target.queue[0].events <= limit):
        part = target.queue.popleft()
        target.sending.append(part)
        events += part.events


class Supervisor:
    """Owns the topology. Start with :meth:`start`, drive with :meth:`run` until ``stop`` is set."""

    def __init__(self, config: Config) -> None:
        self.config = config
        from actors.ops.probe_table import nodes_with_probe_table

        self.routes = build_routes(config, probe_nodes=nodes_with_probe_table(config))
        self.routes_by_source = routes_by_source(self.routes)
        self.groups = build_groups(config)
        self.group_of = group_index(self.groups)
        #: (node, namespace) of a member -> its column renames into its group's canonical member (sharding).
        self._to_canonical = {
            member: group.rename(member, group.canonical) for group in self.groups for member in group.members
        }
        #: Sources of one-way routes: their echoes (if also group members) still go to those routes.
        self.one_way_sources = {(r.source_node, r.source_namespace) for r in self.routes if not r.group}
        #: Parked `manual` conflicts (created in start(), in the state directory).
        self.conflicts: ConflictStore | None = None
        self._conflict_window: deque[tuple[float, dict[str, int], dict[str, int]]] = deque()
        self._resolutions: deque[tuple[str, Take]] = deque()
        #: Conflict decisions waiting for the audit actor, and whether a call with some is under way.
        self._audit_conflicts: list[dict[str, object]] = []
        self._audit_conflicts_sending: list[dict[str, object]] = []
        self._resolution_lock = threading.Lock()
        self._resyncs_requested: set[str] = set()
        self._dead_letter_retries: dict[ObjectRef[list[str | None]], list[Entry]] = {}
        #: Changes targets refused for good, set aside (state directory); links with `on_error: stop`.
        stop_on_error = frozenset(link.name for link in config.links if link.on_error == "stop")
        self.dead_letters = DeadLetterManager(config.supervisor.state_dir, stop_on_error)
        self.dead_letters.expect({(route.link, route.target_namespace) for route in self.routes})
        self._resyncs_done = 0
        self.run_id = uuid.uuid4().hex[:8]
        self.started_at = time.time()
        self.streams: dict[str, StreamState] = {}
        self.shards: list[ShardState[ApplierHandle]] = []
        #: The audit-chain actor, fed like a shard (None when `audit.enabled` is false).
        self.audit: ShardState[AuditHandle] | None = None
        self._audit_stored: deque[tuple[float, int]] = deque()
        self._audit_tick_at = 0.0
        self._audit_ticking = False
        self._audit_generation = 0
        #: Calls under way: what each is (poll, apply, audit, ...) and whose (stream, shard or audit actor).
        self._pending: dict[ObjectRef[Any], tuple[str, StreamState | ShardState[Any] | None]] = {}
        self._placed = 0
        self._heartbeat = time.monotonic()
        #: Set when a call to Ray itself failed (the local node or the cluster is gone): not healthy.
        self._ray_error: str | None = None
        #: Started when this supervisor started Ray or joined a cluster itself (`run`), not inside tests.
        self._gcs_watch: GcsWatch | None = None
        self._status_lock = threading.Lock()
        self._status: Status | None = None
        self.stop_requested = threading.Event()

    # -- topology -----------------------------------------------------------------------------

    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            address = self.config.supervisor.ray_address
            context = ray.init(address=address, namespace="worker-sync", log_to_driver=False, configure_logging=False)
            if context.dashboard_url:  # with the `dashboard` extra (or on a cluster that runs one)
                log.info("Ray dashboard (actor health): http://%s", context.dashboard_url)
            self._gcs_watch = GcsWatch(ray.get_runtime_context().gcs_address, self._lost_ray)
            self._gcs_watch.start()
        settings = self.config.supervisor
        nodes = nodes_by_name(self.config)
        targets = {route.target_node: nodes[route.target_node] for route in self.routes}
        for index in range(settings.applier_shards):
            self.shards.append(ShardState(index, self._new_shard(index, targets), self._backoff()))
        self._targets = targets
        self.offsets = FileOffsetStore(settings.state_dir)
        if self.groups:
            self.conflicts = ConflictStore(settings.state_dir)
            for item in self.conflicts.all():  # resolutions a crash interrupted: send them again
                if item.state == "resolving" and item.take is not None:
                    self._resolutions.append((item.id, item.take))
        specs = stream_specs(self.config, self.routes)
        if self.config.audit.enabled:
            self.audit = ShardState(-1, self._new_audit(specs), self._backoff())
            self._record_config()
        for spec in specs:
            committed = self.offsets.load(spec.stream)
            state = StreamState(spec, self._new_capture(spec), StreamProgress(committed), self._backoff())
            state.last_received = committed
            self.streams[spec.stream] = state
            log.info("stream %s: resuming after %s", spec.stream, committed or "nothing (initial snapshot)")
        log.info(
            "supervisor %s: started %d capture stream(s) and %d applier shard(s)",
            self.run_id,
            len(self.streams),
            len(self.shards),
        )

    def _backoff(self) -> Backoff:
        s = self.config.supervisor
        return Backoff(s.restart_backoff_initial_s / 10, s.restart_backoff_max_s)

    def _new_capture(self, spec: StreamSpec, generation: int = 0) -> CaptureHandle:
        from actors.capture import CaptureActor

        name = f"capture:{spec.stream}:{self.run_id}" + (f":{generation}" if generation else "")
        capture = cast("RemoteClass[CaptureHandle]", CaptureActor)
        return capture.options(name=name, scheduling_strategy=self._next_node()).remote(spec)

    def _new_audit(self, specs: Sequence[StreamSpec], generation: int = 0) -> AuditHandle:
        from actors.audit_chain import AuditChain

        node = nodes_by_name(self.config)[self.config.audit.node]
        streams = [spec.stream for spec in specs]
        name = f"audit-chain:{self.run_id}" + (f":{generation}" if generation else "")
        return cast("RemoteClass[AuditHandle]", AuditChain).options(name=name).remote(self.config.audit, node, streams)

    def _new_shard(self, index: int, targets: dict) -> ApplierHandle:
        from actors.applier import ApplierShard

        shard = cast("RemoteClass[ApplierHandle]", ApplierShard)
        options = shard.options(name=f"applier:{index}:{self.run_id}", scheduling_strategy=self._next_node())
        return options.remote(index, self.routes, targets)

    def _next_node(self) -> Any:
        """Capture and applier actors take no CPU, so Ray would keep them all on one node: place them on the
        cluster's nodes in turn instead. Strictly (Ray's soft affinity still packed them on one node): when
        that node goes, calls to the actor fail and the supervisor creates it anew on a node alive then."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
        if len(nodes) < 2:
            return "DEFAULT"
        self._placed += 1
        return NodeAffinitySchedulingStrategy(node_id=nodes[self._placed % len(nodes)], soft=False)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop_requested.is_set():
            self.step()
        self.drain()

    def step(self, wait_s: float = LOOP_WAIT_S) -> None:
        import ray

        if self._ray_error is not None:
            if self._gcs_watch is not None:
                self._gcs_watch.announced.set()  # `run` logs it
            raise RayUnreachable(self._ray_error)
        self._heartbeat = time.monotonic()
        self._advance_resyncs()
        self._submit_polls()
        self._submit_resolutions()
        self._submit_applies()
        self._submit_audit()
        self._record_dead_letter_audit()
        if self._pending:
            try:
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=wait_s)
                if ready:
                    ready, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
            except Exception as exc:  # Ray itself is gone (the local node died, the cluster is unreachable)
                self._lost_ray(f"cannot reach Ray: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                if self._gcs_watch is not None:
                    self._gcs_watch.announced.set()
                raise RayUnreachable(self._ray_error) from exc
            for ref in ready:
                kind, owner = self._pending.pop(ref)
                if kind == "poll":
                    assert isinstance(owner, StreamState)
                    self._on_poll(owner, ref)
                elif kind == "apply":
                    assert isinstance(owner, ShardState)
                    self._on_apply(owner, ref)
                elif kind == "audit":
                    self._on_audit(ref)
                elif kind == "tick":
                    self._on_tick(ref)
                elif kind == "conflicts":
                    self._on_audit_conflicts(ref)
                elif kind == "admin":
                    self._on_admin(ref)
                elif kind == "dead-letter-retry":
                    self._on_dead_letter_retry(ref)
                else:
                    assert isinstance(owner, StreamState)
                    self._on_commit(owner, ref)
        else:
            time.sleep(wait_s)
        self._commit()
        self._publish_status()

    def drain(self, timeout_s: float = 30.0) -> None:
        """Stop polling; finish what is in flight, commit it, and close the capture actors."""
        deadline = time.monotonic() + timeout_s
        self.stop_requested.set()
        while time.monotonic() < deadline and (
            any(s.queue or s.sending for s in self.shards)
            or (self.audit is not None and (self.audit.queue or self.audit.sending))
            or any(k != "poll" for k, _ in self._pending.values())
        ):
            self.step()
        self._commit()
        import ray

        if self.audit is not None:
            try:
                ray.get(self.audit.actor.close.remote(), timeout=10)  # a final signed checkpoint
            except Exception as exc:
                log.warning("audit: close failed: %s", exc)

        for state in self.streams.values():
            try:
                ray.get(state.actor.close.remote(), timeout=10)
            except Exception as exc:  # a dead actor has nothing left to close
                log.warning("stream %s: close failed: %s", state.spec.stream, exc)
        log.info("supervisor %s: stopped; committed %s", self.run_id, self._committed_summary())

    def _committed_summary(self) -> str:
        return ", ".join(f"{n}={s.progress.committed}" for n, s in self.streams.items()) or "nothing"

    def _submit_polls(self) -> None:
        if self.stop_requested.is_set():
            return
        settings = self.config.supervisor
        for state in self.streams.values():
            if state.polling or state.error or state.resync or not state.backoff.ready:
                continue
            if state.progress.in_flight >= settings.queue_max_batches:
                continue  # back-pressure: the capture actor's buffer fills, then it stops reading
            ref = state.actor.poll.remote(
                settings.batch_max_events,
                settings.batch_max_wait_ms / 1000,
                state.last_received,
                state.progress.committed,
            )
            self._pending[ref] = ("poll", state)
            state.polling = True

    def _submit_applies(self) -> None:
        for shard in self.shards:
            if shard.busy or not shard.backoff.ready:
                continue
            _fill_sending(shard, MAX_EVENTS_PER_APPLY)
            if shard.sending:
                ref = shard.actor.apply.remote([part.data for part in shard.sending], self.dead_letters.blocked)
                self._pending[ref] = ("apply", shard)
                shard.busy = True
        for index, entries in self.dead_letters.take_retries():
            retry = self.shards[index % len(self.shards)].actor.reapply.remote([e.letter() for e in entries])
            self._dead_letter_retries[retry] = entries
            self._pending[retry] = ("dead-letter-retry", None)

    def _submit_audit(self) -> None:
        """Feed the audit actor like a shard; also ask it for a time-based checkpoint now and then."""
        audit = self.audit
        if audit is None:
            return
        if not audit.busy and audit.backoff.ready:
            _fill_sending(audit, MAX_EVENTS_PER_AUDIT)
            if audit.sending:
                ref = audit.actor.append.remote([part.data for part in audit.sending])
                self._pending[ref] = ("audit", audit)
                audit.busy = True
        if self._audit_conflicts and not self._audit_conflicts_sending:
            self._audit_conflicts_sending, self._audit_conflicts = self._audit_conflicts, []
            self._pending[audit.actor.record_conflicts.remote(self._audit_conflicts_sending)] = ("conflicts", audit)
        now = time.monotonic()
        if not self._audit_ticking and now >= self._audit_tick_at and not self.stop_requested.is_set():
            self._audit_tick_at = now + self.config.audit.checkpoint_every_ms / 1000
            self._pending[audit.actor.tick.remote()] = ("tick", audit)
            self._audit_ticking = True

    def _on_poll(self, state: StreamState, ref: ObjectRef[bytes | None]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        state.polling = False
        try:
            data = ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else exc
            delay = state.backoff.failed()
            state.outcomes.append((time.monotonic(), False))
            if isinstance(cause, WorkerSyncError) and not cause.retryable:  # a human must act: stop, say why
                state.error = str(cause)
                log.error("stream %s: stopped: %s", state.spec.stream, cause)
            elif isinstance(cause, WorkerSyncError):
                log.warning("stream %s: %s; retrying in %.1fs", state.spec.stream, cause, delay)
            else:  # unclassified (a driver's misparse after an outage, say): start afresh from the committed position
                log.warning(
                    "stream %s: unexpected %s: %s; reading again from the committed position in %.1fs",
                    state.spec.stream,
                    type(cause).__name__,
                    str(cause).splitlines()[0][:500] if str(cause) else "",
                    delay,
                )
            return
        except RayActorError as exc:
            delay = state.backoff.failed()
            if state.backoff.failures >= RECREATE_AFTER_FAILURES:
                log.error("stream %s: capture actor keeps failing (%s); creating a new one", state.spec.stream, exc)
                self._recreate_capture(state)
                state.backoff.succeeded()
            else:
                log.warning("stream %s: capture actor unavailable; retrying in %.1fs", state.spec.stream, delay)
            return
        state.backoff.succeeded()
        if data is None:
            return
        self._route(state, decode_batch(data))

    def _recreate_capture(self, state: StreamState) -> None:
        from actors.metrics import ACTOR_RESTARTS

        state.generation += 1  # a fresh name: the dead actor's may not be released yet
        state.actor = self._new_capture(state.spec, state.generation)
        ACTOR_RESTARTS.labels("capture").inc()
        if state.resync_after is not None:  # its re-sync snapshot may be unfinished: take it again
            state.resync = True

    def _route(self, state: StreamState, batch: Batch) -> None:
        from actors.metrics import ECHOES_SUPPRESSED, EVENTS_CAPTURED

        if state.last_received is not None and batch.events and batch.events[0].position <= state.last_received:
            stale = sum(1 for e in batch.events if e.position <= state.last_received)
            log.warning(
                "stream %s: dropping %d events received before (at or before %s)",
                state.spec.stream,
                stale,
                state.last_received,
            )
            batch = msgspec.structs.replace(batch, events=[e for e in batch.events if e.position > state.last_received])

        state.seq += 1
        seq = state.seq
        slices: dict[int, list] = defaultdict(list)
        own = []  # the batch without echoes: what is audited and what lag is measured on
        for event in batch.events:
            group = self.group_of.get((event.node, event.namespace))
            if group is not None and event.origin is not None:
                # Worker-Sync's own write, captured back: every member already has it (or will).
                ECHOES_SUPPRESSED.labels(group.name).inc()
                if (event.node, event.namespace) not in self.one_way_sources:
                    continue
            else:
                own.append(event)
            for part in split_key_change(event):
                slices[self._shard(part, group)].append(part)
        # Echoes carry no meaningful commit time (PostgreSQL reports a stale one for origin-marked writes).
        commit_times = [lag_reference_us(e.engine, e.commit_time_us, batch.read_at_us) for e in own]
        oldest = min(commit_times, default=0)
        audit = self.audit if own else None
        parts = len(slices) + (audit is not None)
        state.progress.received(seq, batch.upto, parts, len(batch.events), oldest)
        state.commit_times[seq] = commit_times
        for index, events in slices.items():
            piece = Batch(batch.stream, seq, events, None, batch.snapshot, batch.newest_commit_time_us)
            self.shards[index].queue.append(Part(state.spec.stream, seq, encode_batch(piece), len(events)))
        if audit is not None:  # the whole batch: one audit entry per change, key changes unsplit
            whole = Batch(batch.stream, seq, own, None, batch.snapshot, batch.newest_commit_time_us)
            audit.queue.append(Part(state.spec.stream, seq, encode_batch(whole), len(own)))
        if batch.upto is not None:
            state.last_received = batch.upto
        state.captured += len(batch.events)
        EVENTS_CAPTURED.labels(state.spec.stream).inc(len(batch.events))
        if not parts:
            self._batch_done(state, seq)

    def _shard(self, event: ChangeEvent, group: Group | None) -> int:
        """Per key one shard: for a group member, by the key in the group's canonical column names (values
        as text, so a UUID and its text from another engine agree), so every change of one logical row,
        from whichever node, is offered by the same shard, in order."""
        shards = len(self.shards)
        if group is None:
            return shard_of(event.namespace, event.key, shards)
        rename = self._to_canonical[(event.node, event.namespace)]
        canonical: dict[str, object] = {rename.get(name, name): str(value) for name, value in event.key.items()}
        return shard_of(group.name, canonical, shards)

    def _on_apply(self, shard: ShardState[ApplierHandle], ref: ObjectRef[Applied]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        from actors.metrics import ACTOR_RESTARTS, APPLY_ERRORS

        shard.busy = False
        streams = {part.stream: self.streams[part.stream] for part in shard.sending if part.stream}
        try:
            applied = ray.get(ref)
        except (RayTaskError, RayActorError) as exc:
            APPLY_ERRORS.labels(str(shard.index)).inc()
            for stream in streams.values():
                stream.outcomes.append((time.monotonic(), False))
            delay = shard.backoff.failed()
            cause = getattr(exc, "cause", None) or exc
            shard.error = str(cause).splitlines()[0][:500]
            log.warning("applier shard %d: %s; sending the same slice again in %.1fs", shard.index, shard.error, delay)
            if isinstance(exc, RayActorError) and shard.backoff.failures >= RECREATE_AFTER_FAILURES:
                log.error("applier shard %d: actor keeps failing; creating a new one", shard.index)
                shard.actor = self._new_shard(shard.index, self._targets)
                ACTOR_RESTARTS.labels("applier").inc()
            return
        shard.backoff.succeeded()
        shard.error = None
        shard.applied_calls += 1
        for stream in streams.values():
            stream.outcomes.append((time.monotonic(), True))
        self._count_conflicts(applied.offers, applied.conflicts)  # parked before the positions commit
        recorded = self.dead_letters.record(applied.dead_letters)  # recorded before the positions commit
        for stream_name, error in self.dead_letters.stopping(recorded).items():
            if stream_name in self.streams:  # `on_error: stop`: the stream stops with the error shown
                self.streams[stream_name].error = error
                log.error("stream %s: stopped (on_error: stop): %s", stream_name, error)
        for part in shard.sending:
            if not part.stream:  # a conflict resolution (see _submit_resolutions)
                self._resolved(part)
                continue
            stream = streams[part.stream]
            if stream.progress.part_done(part.seq):
                self._batch_done(stream, part.seq)
        shard.sending = []

    # -- conflicts ----------------------------------------------------------------------------

    def _count_conflicts(self, offers: dict[str, int], records: list[ConflictRecord]) -> None:
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
            self._audit_conflicts.extend(conflict_document(record) for record in records)
        manual = [record for record in records if record.policy == "manual"]
        if manual and self.conflicts is not None:
            self.conflicts.park(manual)
        now = time.monotonic()
        self._conflict_window.append((now, offers, dict(lost)))
        while self._conflict_window and self._conflict_window[0][0] < now - CONFLICT_RATE_WINDOW_S:
            self._conflict_window.popleft()
        for group in {g for _, o, _ in self._conflict_window for g in o}:
            offered = sum(o.get(group, 0) for _, o, _ in self._conflict_window)
            conflicted = sum(c.get(group, 0) for _, _, c in self._conflict_window)
            CONFLICT_RATE.labels(group).set(conflicted / offered if offered else 0.0)

    def conflict_list(self) -> list[dict[str, object]]:
        return [] if self.conflicts is None else [item.view() for item in self.conflicts.all()]

    def conflict_get(self, ident: str) -> dict[str, object] | None:
        item = None if self.conflicts is None else self.conflicts.get(ident)
        return None if item is None else item.view()

    def resolve_conflict(self, ident: str, take: Take) -> dict[str, object]:
        """Called from the HTTP thread: queue the resolution of a parked conflict (see ConflictStore)."""
        if self.conflicts is None:
            raise KeyError(ident)
        item = self.conflicts.get(ident)
        if item is None:
            raise KeyError(ident)
        if item.state != "parked":
            return item.view()
        with self._resolution_lock:
            view = self.conflicts.set_state(ident, "resolving", take).view()
            self._resolutions.append((ident, take))
        return view

    def _submit_resolutions(self) -> None:
        """``take source``: the parked change, with a version newer than anything the group holds, goes to
        its group's shard like a captured change and wins on every member. ``take target``: every member
        already holds the winner, so there is nothing to write."""
        while self._resolutions:
            with self._resolution_lock:
                ident, take = self._resolutions.popleft()
            assert self.conflicts is not None
            item = self.conflicts.get(ident)
            if item is None:
                continue
            if self.audit is not None:
                detail: dict[str, object] = {"group": item.group, "node": item.node, "namespace": item.namespace}
                detail.update(key=key_text(item.key()), outcome=f"resolved-take-{take}", policy=item.policy)
                self._audit_conflicts.append(detail)
            if take == "target":
                self.conflicts.set_state(ident, "resolved")
                continue
            group = next(g for g in self.groups if g.name == item.group)
            event = resolution_event(item.node, item.namespace, item.key(), item.loser().row)
            index = self._shard(event, group)
            part = Part("", 0, encode_batch(Batch(f"resolve:{ident}", 0, [event], None)), 1)
            self.shards[index].queue.append(part)

    def _resolved(self, part: Part) -> None:
        assert self.conflicts is not None
        ident = decode_batch(part.data).stream.removeprefix("resolve:")
        self.conflicts.set_state(ident, "resolved")
        log.info("conflict %s resolved: the parked change now holds on every node of its group", ident)

    # -- manual re-sync -----------------------------------------------------------------------

    def request_resync(self, stream: str) -> dict[str, object]:
        """Called from the HTTP thread (`worker-sync sync --manual`): re-read every table of ``stream`` from
        a fresh consistent snapshot and apply it, then stream on. Also the way out of a stream stopped on an
        error such as a lost position. KeyError for an unknown stream."""
        if stream not in self.streams:
            raise KeyError(stream)
        with self._resolution_lock:
            self._resyncs_requested.add(stream)
        return {"stream": stream, "state": "requested", "tables": self.streams[stream].spec.tables}

    def _advance_resyncs(self) -> None:
        """Stop polling a stream to re-sync; once everything it sent is applied and committed, replace its
        capture actor with one that first re-reads every table from a fresh snapshot, positioned right
        after the committed position, then streams on from that position: changes made meanwhile, deletes
        included, are replayed after the snapshot rows, so none is lost. A stream without a position (its
        initial snapshot never finished) or one stopped on a lost position starts over from a snapshot."""
        with self._resolution_lock:
            requested, self._resyncs_requested = self._resyncs_requested, set()
        for name in requested:
            self.streams[name].resync = True
        for state in self.streams.values():
            if not state.resync or state.polling or state.progress.in_flight:
                continue
            if state.progress.committed != state.last_received:
                continue  # the last commit is on its way
            name = state.spec.stream
            _kill(state.actor)
            after = state.progress.committed
            if state.error is not None or after is None or not after.resume:
                self.offsets.forget(name)  # nothing to resume from: a snapshot like the first one
                applied = state.progress.applied_events
                state.progress = StreamProgress(None)
                state.progress.applied_events = applied
                state.last_received = after = None
            state.error, state.resync, state.resync_after = None, False, after
            state.generation += 1
            spec = msgspec.structs.replace(state.spec, resnapshot=after is not None)
            state.actor = self._new_capture(spec, state.generation)
            state.backoff.succeeded()
            self._resyncs_done += 1
            log.info("stream %s: manual re-sync: re-reading %s from a fresh snapshot", name, state.spec.tables)
            if self.audit is not None:
                detail = {"stream": name, "tables": list(state.spec.tables)}
                request = f"resync:{self.run_id}:{self._resyncs_done}"
                self._pending[self.audit.actor.record_admin.remote("manual-sync", detail, request)] = ("admin", None)

    def _on_audit(self, ref: ObjectRef[Appended]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        from actors.metrics import ACTOR_RESTARTS

        audit = self.audit
        assert audit is not None
        audit.busy = False
        try:
            appended = ray.get(ref)
        except (RayTaskError, RayActorError) as exc:
            delay = audit.backoff.failed()
            cause = getattr(exc, "cause", None) or exc
            audit.error = str(cause).splitlines()[0][:500]
            log.warning("audit: %s; sending the same batches again in %.1fs", audit.error, delay)
            if isinstance(exc, RayActorError) and audit.backoff.failures >= RECREATE_AFTER_FAILURES:
                log.error("audit: the audit-chain actor keeps failing; creating a new one")
                _kill(audit.actor)  # one writer at a time: the old one must be gone
                self._audit_generation += 1
                audit.actor = self._new_audit([s.spec for s in self.streams.values()], self._audit_generation)
                ACTOR_RESTARTS.labels("audit").inc()
            return
        audit.backoff.succeeded()
        audit.error = None
        audit.applied_calls += 1
        self._audit_stored.append((time.monotonic(), appended.entries))
        for part in audit.sending:
            stream = self.streams[part.stream]
            if stream.progress.part_done(part.seq):
                self._batch_done(stream, part.seq)
        audit.sending = []

    def _record_config(self) -> None:
        """An admin entry for the configuration this run uses (once per distinct configuration)."""
        assert self.audit is not None
        digest = hashlib.sha256(msgspec.json.encode(self.config, order="sorted")).hexdigest()
        detail = {"sha256": digest, "run_id": self.run_id}
        ref = self.audit.actor.record_admin.remote("config-loaded", detail, f"config:{digest}")
        self._pending[ref] = ("admin", self.audit)

    def _lost_ray(self, reason: str) -> None:
        """Ray itself is unreachable (from the loop, or the GcsWatch thread): /healthz fails from now on."""
        if self._ray_error is None:
            self._ray_error = reason

    def _on_dead_letter_retry(self, ref: ObjectRef[list[str | None]]) -> None:
        import ray

        entries = self._dead_letter_retries.pop(ref)
        try:
            self.dead_letters.retried(entries, ray.get(ref))
        except Exception as exc:  # a passing fault (the target is down): the letters stay, retry again later
            self.dead_letters.retried(entries, None, error=f"retry failed: {str(exc).splitlines()[0][:500]}")

    def _record_dead_letter_audit(self) -> None:
        for kind, request_id, detail in self.dead_letters.take_audit():
            if self.audit is not None:
                self._pending[self.audit.actor.record_admin.remote(kind, detail, request_id)] = ("admin", None)

    # -- dead letters (called from the HTTP thread) -------------------------------------------------------

    def dead_letter_list(self) -> list[dict[str, Any]]:
        return self.dead_letters.views()

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None:
        return self.dead_letters.view(ident)

    def retry_dead_letter(self, ident: str) -> dict[str, Any]:
        return self.dead_letters.request_retry(ident)

    def discard_dead_letter(self, ident: str) -> dict[str, Any]:
        return self.dead_letters.discard(ident)

    def _on_admin(self, ref: ObjectRef[Appended]) -> None:
        import ray

        try:
            ray.get(ref)
        except Exception as exc:  # the entry is idempotent: the next run (or restart) records it
            log.warning("audit: recording an admin entry failed: %s", str(exc).splitlines()[0][:500])

    def _on_audit_conflicts(self, ref: ObjectRef[Appended]) -> None:
        import ray

        try:
            ray.get(ref)
        except Exception as exc:  # sent again with the next conflicts (or on their own next loop)
            log.warning("audit: recording conflict decisions failed: %s", str(exc).splitlines()[0][:500])
            self._audit_conflicts = self._audit_conflicts_sending + self._audit_conflicts
        self._audit_conflicts_sending = []

    def _on_tick(self, ref: ObjectRef[bool]) -> None:
        import ray

        self._audit_ticking = False
        try:
            ray.get(ref)
        except Exception as exc:  # the next tick, or the next append, signs what is waiting
            log.warning("audit: checkpoint tick failed: %s", str(exc).splitlines()[0][:500])

    def audit_write_tps(self) -> float:
        """Entries the audit actor stored per second over the last AUDIT_RATE_WINDOW_S seconds."""
        now = time.monotonic()
        while self._audit_stored and self._audit_stored[0][0] < now - AUDIT_RATE_WINDOW_S:
            self._audit_stored.popleft()
        return sum(n for _, n in self._audit_stored) / AUDIT_RATE_WINDOW_S

    def _batch_done(self, state: StreamState, seq: int) -> None:
        from actors.metrics import END_TO_END_LAG, EVENTS_APPLIED

        now_us = time.time() * 1_000_000
        times = state.commit_times.pop(seq, [])
        histogram = END_TO_END_LAG.labels(state.spec.stream)
        for commit_us in times:
            lag_ms = (now_us - commit_us) / 1000
            state.lags_ms.append(lag_ms)
            histogram.observe(lag_ms / 1000)
        EVENTS_APPLIED.labels(state.spec.stream).inc(len(times))

    def _commit(self) -> None:
        """Persist each stream's new low-water mark, then tell its capture actor the source may release it."""
        for state in self.streams.values():
            position = state.progress.committable()
            if position is not None:
                self.offsets.save(state.spec.stream, position)
                if state.resync_after is not None and position > state.resync_after:
                    # The re-sync snapshot is applied. (Should Ray restart this actor later, it re-reads
                    # the tables once more, harmlessly: its creation arguments ask for a snapshot.)
                    state.resync_after = None
                ref = state.actor.commit.remote(position)
                self._pending[ref] = ("commit", state)

    def _on_commit(self, state: StreamState, ref: ObjectRef[None]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            ray.get(ref)
        except (RayTaskError, RayActorError) as exc:
            # The next commit carries a later position and covers this one.
            log.warning("stream %s: commit failed (%s); the next commit will cover it", state.spec.stream, exc)

    # -- status -------------------------------------------------------------------------------

    def _publish_status(self) -> None:
        from actors.metrics import AUDIT_WRITE_TPS, ERROR_RATIO, QUEUE_DEPTH, SYNC_LAG_MS

        if self.audit is not None:
            AUDIT_WRITE_TPS.set(self.audit_write_tps())

        now = time.monotonic()
        now_us = time.time() * 1_000_000
        streams = []
        for name, state in self.streams.items():
            oldest = state.progress.oldest_pending_commit_time_us()
            lag_ms = 0.0 if oldest is None else max(0.0, (now_us - oldest) / 1000)
            while state.outcomes and state.outcomes[0][0] < now - 60:
                state.outcomes.popleft()
            failures = sum(1 for _, ok in state.outcomes if not ok)
            ratio = failures / len(state.outcomes) if state.outcomes else 0.0
            if state.error is not None:  # stopped: every change waits
                ratio = 1.0
            stalled_s = state.backoff.failing_for(now)
            if state.error is not None or stalled_s:  # nothing moves: the lag is at least how long that lasts
                lag_ms = max(lag_ms, stalled_s * 1000)
            SYNC_LAG_MS.labels(name).set(lag_ms)
            QUEUE_DEPTH.labels(name).set(state.progress.in_flight)
            ERROR_RATIO.labels(name).set(ratio)
            lags = list(state.lags_ms)
            streams.append(
                StreamStatus(
                    stream=name,
                    node=state.spec.node_name,
                    tables=state.spec.tables,
                    committed=None if state.progress.committed is None else str(state.progress.committed),
                    received=None if state.last_received is None else str(state.last_received),
                    captured_events=state.captured,
                    applied_events=state.progress.applied_events,
                    batches_in_flight=state.progress.in_flight,
                    lag_ms=round(lag_ms, 1),
                    end_to_end_lag_ms={
                        "p50": percentile(lags, 0.5),
                        "p99": percentile(lags, 0.99),
                        "max": percentile(lags, 1.0),
                    },
                    error=state.error,
                )
            )
        shards = [
            ShardStatus(
                shard=s.index,
                queued_parts=len(s.queue) + len(s.sending),
                busy=s.busy,
                applied_calls=s.applied_calls,
                error=s.error,
            )
            for s in self.shards
        ]
        not_ready = self.not_ready_because()
        status = Status(
            run_id=self.run_id,
            started_at=self.started_at,
            uptime_s=round(time.time() - self.started_at, 1),
            ready=not not_ready,
            streams=streams,
            shards=shards,
            not_ready=not_ready,
        )
        with self._status_lock:
            self._status = status

    def status(self) -> Status | None:
        with self._status_lock:
            return self._status

    def healthy(self) -> bool:
        """The loop turns and Ray answers it."""
        return self._ray_error is None and time.monotonic() - self._heartbeat < HEALTHY_HEARTBEAT_S

    def ready(self) -> bool:
        """Healthy, every stream past its snapshot, none stopped, and no stream, shard or the audit actor
        failing for longer than FAILING_AFTER_S (a source or target down, a slice that keeps failing)."""
        return not self.not_ready_because()

    def not_ready_because(self) -> list[str]:
        """Why the pipeline is not ready (empty: it is)."""
        now = time.monotonic()
        reasons = []
        if not self.healthy():
            reasons.append(self._ray_error or "the supervisor loop has stalled")
        if not self.streams:
            reasons.append("no stream started")
        for name, state in self.streams.items():
            if state.error is not None:
                reasons.append(f"stream {name} stopped: {state.error}")
            elif state.progress.committed is None:
                reasons.append(f"stream {name}: initial snapshot not committed yet")
            elif state.backoff.failing_for(now) > FAILING_AFTER_S:
                reasons.append(f"stream {name}: failing for {state.backoff.failing_for(now):.0f}s")
        feeds: list[ShardState[Any]] = [*self.shards, *([self.audit] if self.audit is not None else [])]
        for feed in feeds:
            if feed.backoff.failing_for(now) > FAILING_AFTER_S:
                what = "audit actor" if feed.index < 0 else f"applier shard {feed.index}"
                reasons.append(f"{what}: failing for {feed.backoff.failing_for(now):.0f}s: {feed.error}")
        return reasons


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


def install_signal_handlers(supervisor: Supervisor) -> None:
    def request_stop(signum: int, _frame: object) -> None:
        log.info("supervisor: %s received, finishing what is in flight", signal.Signals(signum).name)
        supervisor.stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def main(argv: Sequence[str] | None = None) -> int:
    from actors.cli import main as cli_main

    return cli_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
