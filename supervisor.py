"""The Worker-Sync supervisor: builds the actor topology from the config and directs it.

``python supervisor.py --config FILE`` is ``worker-sync run --config FILE``: what
``ray job submit --working-dir . -- python supervisor.py --config FILE`` runs.

A controller, not a courier (actors/control/). Capture actors split each batch they read over the
applier shards themselves and put the slices in Ray's object store; the supervisor's loop only passes
references on, one call at a time per shard (so a shard applies its slices in order, also after a crash,
when the failed call is simply sent again), with at most ``queue_max_batches`` in flight per stream
(back-pressure). It commits a stream's position only when every batch up to it has been applied by every
shard and, with ``audit.enabled``, stored in the signed audit log (the low-water mark), so a crash can
never skip a change or an audit entry. The capture actor then persists it and lets the source release it.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from actors.conflict_store import ConflictStore, Take
from actors.control.audit_feed import AuditFeed
from actors.control.backoff import Backoff
from actors.control.calls import ApplierHandle, AuditHandle, Calls, RayUnreachable
from actors.control.conflicts import Conflicts
from actors.control.feeds import Feed
from actors.control.heartbeats import HeartbeatWriter
from actors.control.placement import Placement
from actors.control.resyncs import Resyncs
from actors.control.retention import RetentionWatch
from actors.control.shards import Shards
from actors.control.status import StatusBoard
from actors.control.streams import Streams, StreamState, stream_specs
from actors.core.errors import WorkerSyncError
from actors.core.groups import build_groups
from actors.core.plan import RoutingPlan
from actors.core.routing import build_routes
from actors.dead_letter_manager import DeadLetterManager
from actors.ray_watch import GcsWatch
from actors.status import Status
from actors.verify_results import VerifyResults
from config.loader import nodes_by_name
from config.model import Config

__all__ = ["RayUnreachable", "Supervisor", "install_signal_handlers", "join_ray"]

log = logging.getLogger("worker_sync.supervisor")

LOOP_WAIT_S = 0.02
#: Positions are committed (an fsync, and a call to the capture actor) at most this often: a crash replays
#: at most this much more, and the loop does not spend its time on it under load.
COMMIT_EVERY_S = 0.1
#: /status and the gauges are rebuilt at most this often (sorting lag samples is not free).
PUBLISH_EVERY_S = 0.2


class Supervisor:
    """Owns the topology. Start with :meth:`start`, drive with :meth:`run` until ``stop_requested`` is set."""

    def __init__(self, config: Config, probe_nodes: dict[str, str] | None = None) -> None:
        """``probe_nodes``: the nodes with a probe table, as the start-up checks found them (looked up here
        when not given)."""
        if probe_nodes is None:
            from actors.ops.probe_table import nodes_with_probe_table

            probe_nodes = nodes_with_probe_table(config)
        self.config = config
        self.routes = build_routes(config, probe_nodes=probe_nodes)
        self.groups = build_groups(config)
        self.plan = RoutingPlan(config.supervisor.applier_shards, self.routes, self.groups)
        self.run_id = uuid.uuid4().hex[:8]
        self.stop_requested = threading.Event()
        #: Changes targets refused for good, set aside (state directory); links with `on_error: stop`.
        stop_on_error = frozenset(link.name for link in config.links if link.on_error == "stop")
        self.dead_letters = DeadLetterManager(config.supervisor.state_dir, stop_on_error)
        self.dead_letters.expect({(route.link, route.target_namespace) for route in self.routes})
        #: The last `verify --report` result per link (state directory), exported as gauges.
        self.verify_results = VerifyResults(config.supervisor.state_dir, [link.name for link in config.links])
        self._calls = Calls(self._lost_ray)
        #: Started when this supervisor started Ray or joined a cluster itself (`run`), not inside tests.
        self._gcs_watch: GcsWatch | None = None
        # The managers need Ray: start() makes them.
        self._streams: Streams | None = None
        self._shards: Shards | None = None
        self._audit: AuditFeed | None = None
        self._conflicts: Conflicts | None = None
        self._resyncs: Resyncs | None = None
        self._board: StatusBoard | None = None
        #: Measures each stream's source log in a thread of its own (never on the loop).
        self.retention: RetentionWatch | None = None
        #: Writes a heartbeat row at the source nodes that set `heartbeat_interval_s` (a thread of its own).
        self.heartbeats: HeartbeatWriter | None = None
        self._ray_error: str | None = None
        self._commit_at = self._publish_at = 0.0
        #: Start-up figures for the log line at the first applied change (see _started).
        self._ray_s: float | None = None
        #: A change written to a target (by a shard), then a whole batch done (every shard's part, the audit's).
        self._first_applied = self._first_batch_done = False

    # -- topology -----------------------------------------------------------------------------

    def start(self, joined_ray_s: float | None = None) -> None:
        """Start the actors, joining (or starting) Ray first unless this process already did.
        ``joined_ray_s``: the seconds :func:`join_ray` took when the caller joined Ray itself (`run`)."""
        import ray

        if not ray.is_initialized():
            joined_ray_s = join_ray(self.config.supervisor.ray_address)
        if joined_ray_s is not None:  # Ray is this process's own to watch (not a test's)
            self._ray_s = joined_ray_s
            self._gcs_watch = GcsWatch(ray.get_runtime_context().gcs_address, self._lost_ray)
            self._gcs_watch.start()
        settings = self.config.supervisor
        nodes = nodes_by_name(self.config)
        targets = {route.target_node: nodes[route.target_node] for route in self.routes}
        # With `schema_changes: apply` a shard may read a source's definition (an added column whose event was lost).
        targets |= {r.source_node: nodes[r.source_node] for r in self.routes if r.schema_changes == "apply"}
        placement = Placement(settings.actor_cpus, settings.actor_memory_bytes)
        shards = Shards(self.routes, targets, self._calls, placement, self.dead_letters, self.run_id, self._backoff)
        specs = stream_specs(self.config, self.routes)
        audit = AuditFeed(self.config, self._calls, self.run_id, self._backoff) if self.config.audit.enabled else None
        streams = Streams(self.config, self._calls, placement, self.plan, shards.feeds, self.run_id)
        # Capture actors first: Ray starts the actors' worker processes in the order asked, at most one per CPU
        # at a time, and no change is applied before its capture reads it. The shards start beside or right
        # after them and connect to their targets while the captures read their first batches.
        with placement.one_look():
            streams.start(specs)
            shards.start(settings.applier_shards)
            if audit is not None:
                streams.audit_feed = audit.start(specs)
        store = ConflictStore(settings.state_dir) if self.groups else None
        conflicts = Conflicts(store, self.plan, shards.feeds)
        conflicts.audit = audit
        shards.streams, shards.conflicts = streams, conflicts
        if audit is not None:
            audit.streams = streams
        self._streams, self._shards, self._audit, self._conflicts = streams, shards, audit, conflicts
        self._resyncs = Resyncs(streams, audit, self.run_id)
        self.retention = RetentionWatch(streams)
        self.retention.start()
        self.heartbeats = HeartbeatWriter(specs)
        self.heartbeats.start()
        self._board = StatusBoard(self.run_id, streams, shards.feeds, audit, self.retention.latest)
        if self._ray_error is not None:
            self._board.lost_ray(self._ray_error)
        log.info(
            "supervisor %s: started %d capture stream(s) and %d applier shard(s)",
            self.run_id,
            len(streams.states),
            len(shards.feeds),
        )

    def _backoff(self) -> Backoff:
        s = self.config.supervisor
        return Backoff(s.restart_backoff_initial_s / 10, s.restart_backoff_max_s)

    def _parts(self) -> tuple[Streams, Shards, Conflicts, Resyncs, StatusBoard]:
        assert self._streams and self._shards and self._conflicts and self._resyncs and self._board, "start() first"
        return self._streams, self._shards, self._conflicts, self._resyncs, self._board

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stop_requested.is_set():
                self.step()
        except BaseException:
            self._stop_watches()  # a fatal error ends the loop: nothing should go on measuring the sources
            raise
        self.drain()

    def _stop_watches(self) -> None:
        """Stop the threads that query the databases beside the loop (retention watch, heartbeats)."""
        if self.retention is not None:
            self.retention.stop()
        if self.heartbeats is not None:
            self.heartbeats.stop()

    def step(self, wait_s: float = LOOP_WAIT_S) -> None:
        streams, shards, conflicts, resyncs, board = self._parts()
        if self._ray_error is not None:
            if self._gcs_watch is not None:
                self._gcs_watch.announced.set()  # `run` logs it
            raise RayUnreachable(self._ray_error)
        board.beat()
        streams.stopping = self.stop_requested.is_set()
        resyncs.advance()
        streams.submit_polls()
        conflicts.submit_resolutions()
        shards.submit()
        if self._audit is not None:
            if self._audit.fatal is not None:  # a human must act: stop with the error (run exits with its code)
                raise self._audit.fatal
            self._audit.submit(self.stop_requested.is_set())
            for kind, request_id, detail in self.dead_letters.take_audit():
                self._audit.admin(kind, detail, request_id)
        try:
            self._calls.wait(wait_s)
        except RayUnreachable:
            if self._gcs_watch is not None:
                self._gcs_watch.announced.set()
            raise
        if not self._first_applied and shards.changes_applied:
            self._started()
        if not self._first_batch_done and any(s.progress.applied_events for s in streams.states.values()):
            self._first_batch()
        now = time.monotonic()
        if now >= self._commit_at:
            self._commit_at = now + COMMIT_EVERY_S
            streams.commit()
        if now >= self._publish_at:
            self._publish_at = now + PUBLISH_EVERY_S
            board.publish()

    def _started(self) -> None:
        """The first change is applied: say how long start-up took (and how much of it was Ray's), and
        show it on /status now rather than at the next publish."""
        self._first_applied = True
        self._publish_at = 0.0
        age = process_age_s()
        if age is None:
            return
        ray_part = "" if self._ray_s is None else f" ({self._ray_s:.2f} s of it starting or joining Ray)"
        log.info("started: first change applied %.2f s after the process started%s", age, ray_part)

    def _first_batch(self) -> None:
        """The first batch is done: every shard applied its part and the audit actor stored its entries. Its
        positions may be committed from now on. Later than :meth:`_started` when more actors than CPUs start
        (Ray starts their worker processes at most one per CPU at a time)."""
        self._first_batch_done = True
        age = process_age_s()
        if age is not None:
            audited = " and audited" if self._audit is not None else ""
            log.info("started: first batch applied by every shard%s %.2f s after the process started", audited, age)

    def drain(self, timeout_s: float = 30.0) -> None:
        """Stop polling; finish what is in flight, commit it, and close the capture actors."""
        streams, shards, _, _, _ = self._parts()
        deadline = time.monotonic() + timeout_s
        self.stop_requested.set()
        while time.monotonic() < deadline and (
            not all(feed.idle for feed in shards.feeds)
            or (self._audit is not None and not self._audit.idle)
            or self._calls.busy
        ):
            self.step()
        streams.commit()
        self._stop_watches()
        if self._audit is not None:
            self._audit.close()
        streams.close()
        log.info("supervisor %s: stopped; committed %s", self.run_id, streams.committed_summary())

    def _lost_ray(self, reason: str) -> None:
        """Ray itself is unreachable (from the loop, or the GcsWatch thread): /healthz fails from now on."""
        if self._ray_error is None:
            self._ray_error = reason
        if self._board is not None:
            self._board.lost_ray(reason)

    # -- what tests, benches and the demo look at ------------------------------------------------------

    @property
    def streams(self) -> dict[str, StreamState]:
        return self._parts()[0].states

    @property
    def shards(self) -> list[Feed[ApplierHandle]]:
        return self._parts()[1].feeds

    @property
    def audit(self) -> Feed[AuditHandle] | None:
        return None if self._audit is None else self._audit.feed

    @property
    def failure(self) -> WorkerSyncError | None:
        """What stops the loop for good, if anything: an audit log that no longer verifies (foreign entries)."""
        return None if self._audit is None else self._audit.fatal

    def audit_write_tps(self) -> float:
        return 0.0 if self._audit is None else self._audit.write_tps()

    # -- status (called from the HTTP thread) ---------------------------------------------------------

    def status(self) -> Status | None:
        status = None if self._board is None else self._board.status()
        if status is None:
            return None
        return msgspec.structs.replace(status, verify=self.verify_results.views())

    def healthy(self) -> bool:
        """The loop turns and Ray answers it."""
        return self._board is not None and self._board.healthy()

    def ready(self) -> bool:
        """Healthy, every stream past its snapshot, none stopped, and no stream, shard or the audit actor
        failing for longer than FAILING_AFTER_S (a source or target down, a slice that keeps failing)."""
        return not self.not_ready_because()

    def not_ready_because(self) -> list[str]:
        """Why the pipeline is not ready (empty: it is)."""
        return ["not started"] if self._board is None else self._board.not_ready_because()

    # -- operator actions (called from the HTTP thread) -------------------------------------------------

    def request_resync(self, stream: str) -> dict[str, object]:
        """`worker-sync sync --manual` (see actors/control/resyncs.py); KeyError for an unknown stream."""
        return self._parts()[3].request(stream)

    def conflict_list(self) -> list[dict[str, object]]:
        return self._parts()[2].views()

    def conflict_get(self, ident: str) -> dict[str, object] | None:
        return self._parts()[2].view(ident)

    def resolve_conflict(self, ident: str, take: Take) -> dict[str, object]:
        return self._parts()[2].resolve(ident, take)

    def dead_letter_list(self) -> list[dict[str, Any]]:
        return self.dead_letters.views()

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None:
        return self.dead_letters.view(ident)

    def retry_dead_letter(self, ident: str) -> dict[str, Any]:
        return self.dead_letters.request_retry(ident)

    def discard_dead_letter(self, ident: str) -> dict[str, Any]:
        return self.dead_letters.discard(ident)

    def record_verify(self, document: Any) -> dict[str, Any]:
        """POST /verify/results (`verify --report`); KeyError for a link not configured, ValueError for junk."""
        return self.verify_results.record(document)

    def verify_list(self) -> list[dict[str, Any]]:
        return self.verify_results.views()


def join_ray(address: str | None) -> float:
    """Join the Ray cluster at ``address`` (None: start a local Ray, as on a laptop); the seconds it took.
    ConnectionError when it cannot be reached."""
    import ray

    import_driver_modules()
    began = time.monotonic()
    context = ray.init(address=address, namespace="worker-sync", log_to_driver=False, configure_logging=False)
    seconds = time.monotonic() - began
    if context.dashboard_url:  # with the `dashboard` extra (or on a cluster that runs one)
        log.info("Ray dashboard (actor health): http://%s", context.dashboard_url)
    return seconds


#: What the supervisor imports in its first moments after joining Ray (found with PYTHONPROFILEIMPORTTIME).
DRIVER_MODULES = ("actors.applier", "actors.audit_chain", "actors.capture", "actors.http", "actors.metrics")


def import_driver_modules() -> None:
    """Import, before joining Ray, the modules of ours the supervisor needs in its first moments after.

    Under `ray job submit --working-dir`, this code is the job's package, and Ray deletes and unpacks that
    package again as the driver joins: the files were missing or half-written for ~40 ms after `ray.init`
    returned (measured here). An import of ours in that window fails with ModuleNotFoundError. Later
    imports find the package whole again."""
    for module in DRIVER_MODULES:
        importlib.import_module(module)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: /proc), interpreter start-up and imports included."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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
