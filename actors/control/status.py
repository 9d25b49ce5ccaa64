"""What the supervisor publishes: /status, the gauges, and why /readyz fails.

Built by the loop after every step and read by the HTTP thread: the lock guards only the swap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from actors.control.audit_feed import AuditFeed
from actors.control.feeds import Feed
from actors.control.streams import Streams, StreamState
from actors.core.retention import Retention
from actors.status import ShardStatus, Status, StreamStatus, percentile

#: A stream, shard or the audit actor failing continuously for longer than this makes /readyz fail.
FAILING_AFTER_S = 15.0
#: The loop turns every few milliseconds; one that has not turned for this long is stuck (on Ray, say).
HEALTHY_HEARTBEAT_S = 5.0


class StatusBoard:
    """Health, readiness and the published status of one run."""

    def __init__(
        self,
        run_id: str,
        streams: Streams,
        shards: list[Feed[Any]],
        audit: AuditFeed | None,
        source_log: Callable[[str], Retention | None] = lambda stream: None,
    ) -> None:
        self.run_id = run_id
        #: The last measurement of a stream's source log (actors/control/retention.py).
        self._source_log = source_log
        self.started_at = time.time()
        self._streams = streams
        self._shards = shards
        self._audit = audit
        self._heartbeat = time.monotonic()
        #: Set when a call to Ray itself failed (the local node or the cluster is gone): not healthy.
        self.ray_error: str | None = None
        self._lock = threading.Lock()
        self._status: Status | None = None

    def beat(self) -> None:
        """The loop turned."""
        self._heartbeat = time.monotonic()

    def lost_ray(self, reason: str) -> None:
        """Ray itself is unreachable (from the loop, or the GcsWatch thread): /healthz fails from now on."""
        if self.ray_error is None:
            self.ray_error = reason

    def healthy(self) -> bool:
        """The loop turns and Ray answers it."""
        return self.ray_error is None and time.monotonic() - self._heartbeat < HEALTHY_HEARTBEAT_S

    def not_ready_because(self) -> list[str]:
        """Why the pipeline is not ready (empty: it is): not healthy, a stream before its first commit or
        stopped, or a stream, shard or the audit actor failing for longer than FAILING_AFTER_S."""
        now = time.monotonic()
        reasons = []
        if not self.healthy():
            reasons.append(self.ray_error or "the supervisor loop has stalled")
        if not self._streams.states:
            reasons.append("no stream started")
        for name, state in self._streams.states.items():
            if state.error is not None:
                reasons.append(f"stream {name} stopped: {state.error}")
            elif state.progress.committed is None:
                reasons.append(f"stream {name}: initial snapshot not committed yet")
            elif state.backoff.failing_for(now) > FAILING_AFTER_S:
                reasons.append(f"stream {name}: failing for {state.backoff.failing_for(now):.0f}s")
        feeds: list[Feed[Any]] = [*self._shards]
        if self._audit is not None and self._audit.feed is not None:
            feeds.append(self._audit.feed)
        for feed in feeds:
            if feed.backoff.failing_for(now) > FAILING_AFTER_S:
                what = "audit actor" if feed.index < 0 else f"applier shard {feed.index}"
                reasons.append(f"{what}: failing for {feed.backoff.failing_for(now):.0f}s: {feed.error}")
        return reasons

    def publish(self) -> None:
        """Set the gauges and swap in a new :class:`Status`."""
        from actors.metrics import AUDIT_WRITE_TPS

        if self._audit is not None:
            AUDIT_WRITE_TPS.set(self._audit.write_tps())
        streams = [_stream_status(name, state, self._source_log(name)) for name, state in self._streams.states.items()]
        shards = [
            ShardStatus(
                shard=feed.index,
                queued_parts=len(feed.queue) + len(feed.sending),
                busy=feed.busy,
                applied_calls=feed.applied_calls,
                error=feed.error,
            )
            for feed in self._shards
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
        with self._lock:
            self._status = status

    def status(self) -> Status | None:
        with self._lock:
            return self._status


def _stream_status(name: str, state: StreamState, source_log: Retention | None) -> StreamStatus:
    from actors.metrics import ERROR_RATIO, QUEUE_DEPTH, SYNC_LAG_MS

    now = time.monotonic()
    oldest = state.progress.oldest_pending_commit_time_us()
    lag_ms = 0.0 if oldest is None else max(0.0, (time.time() * 1_000_000 - oldest) / 1000)
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
    return StreamStatus(
        stream=name,
        node=state.spec.node_name,
        tables=state.spec.tables,
        committed=None if state.progress.committed is None else str(state.progress.committed),
        received=None if state.last_received is None else str(state.last_received),
        captured_events=state.captured,
        applied_events=state.progress.applied_events,
        batches_in_flight=state.progress.in_flight,
        lag_ms=round(lag_ms, 1),
        end_to_end_lag_ms={"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99), "max": percentile(lags, 1.0)},
        error=state.error,
        source_log=source_log,
    )
