"""Every Prometheus metric Worker-Sync exports, in one registry.

The seed's five names are kept as they are (`sync_lag_ms`, `queue_depth`, `error_ratio`, and,
once conflicts and the audit trail exist, `conflict_rate` and `audit_write_tps`); everything else
is `worker_sync_<what>_<unit>`, counters ending in `_total`. Labels are bounded: stream, shard.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

SYNC_LAG_MS = Gauge(
    "sync_lag_ms",
    "Age of the oldest change captured but not yet applied everywhere, in milliseconds (0 when caught up)",
    ["stream"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("queue_depth", "Batches received from a stream and not yet applied", ["stream"], registry=REGISTRY)
ERROR_RATIO = Gauge(
    "error_ratio", "Share of apply calls that failed over the last minute (0-1)", ["stream"], registry=REGISTRY
)
AUDIT_WRITE_TPS = Gauge(
    "audit_write_tps", "Audit entries stored per second, over the last few seconds", registry=REGISTRY
)
EVENTS_APPLIED = Counter(
    "worker_sync_events_applied_total", "Changes applied to every target", ["stream"], registry=REGISTRY
)
EVENTS_CAPTURED = Counter(
    "worker_sync_events_captured_total", "Changes received from capture actors", ["stream"], registry=REGISTRY
)
APPLY_ERRORS = Counter(
    "worker_sync_apply_errors_total", "Apply calls that failed (and were retried)", ["shard"], registry=REGISTRY
)
ACTOR_RESTARTS = Counter(
    "worker_sync_actor_recreations_total",
    "Actors the supervisor recreated after Ray gave up on them",
    ["kind"],
    registry=REGISTRY,
)
END_TO_END_LAG = Histogram(
    "worker_sync_end_to_end_lag_seconds",
    "From source commit to applied at every target",
    ["stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
CONFLICT_RATE = Gauge(
    "conflict_rate",
    "Share of offers to a bidirectional group that lost to a newer change from another node, over the last minute",
    ["group"],
    registry=REGISTRY,
)
CONFLICTS = Counter(
    "worker_sync_conflicts_total",
    "Changes of bidirectional groups that lost to a newer change from another node, each counted once, by "
    "where it was first seen losing (discard: at another node; repair: at its own node, whose row was repaired)",
    ["group", "outcome"],
    registry=REGISTRY,
)
OFFERS = Counter(
    "worker_sync_offers_total", "Changes offered to members of bidirectional groups", ["group"], registry=REGISTRY
)
ECHOES_SUPPRESSED = Counter(
    "worker_sync_echoes_suppressed_total",
    "Changes Worker-Sync wrote itself, captured back at a group member and not sent on",
    ["group"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "worker_sync_dead_letters_total",
    "Changes a target refused for good (or held behind such a change of the same row), set aside as dead "
    "letters: recorded, not applied (worker-sync dead-letters list)",
    ["link", "table"],
    registry=REGISTRY,
)
DEAD_LETTERS_PENDING = Gauge(
    "worker_sync_dead_letters_pending",
    "Dead letters neither applied nor discarded yet",
    registry=REGISTRY,
)
RETAINED_BYTES = Gauge(
    "worker_sync_source_retained_bytes",
    "Bytes of change log the source keeps because the stream still needs them (PostgreSQL: WAL held by its "
    "slot; MariaDB/MySQL: binlog from its committed position on; MongoDB: the oplog's share from the resume "
    "point on, estimated by time), measured every 20 s",
    ["stream"],
    registry=REGISTRY,
)
RETENTION_HEADROOM = Gauge(
    "worker_sync_source_retention_headroom_seconds",
    "Seconds before the source may remove change log the stream still needs (MariaDB/MySQL: the needed binlog's "
    "expiry; PostgreSQL: safe_wal_size at the current WAL rate; MongoDB: the oplog older than the resume point, "
    "plus the time to fill it while not full); absent when the source keeps it for ever",
    ["stream"],
    registry=REGISTRY,
)
RETENTION_STATE = Gauge(
    "worker_sync_source_retention_state",
    "1 for the stream's source-log state (ok; at_risk: PostgreSQL wal_status unreserved, removed at the next "
    "checkpoint, or a MongoDB resume point in the oldest tenth of the oplog window; lost: the source no longer "
    "has what the stream needs), 0 for the others",
    ["stream", "state"],
    registry=REGISTRY,
)
VERIFY_MISMATCHES = Gauge(
    "worker_sync_verify_mismatches",
    "Keys that differed between source and target in the link's last `worker-sync verify --report` run "
    "(after in-flight changes were re-checked); kept across restarts in supervisor.state_dir",
    ["link"],
    registry=REGISTRY,
)
VERIFY_LAST_RUN = Gauge(
    "worker_sync_verify_last_run_timestamp_seconds",
    "When the link's last reported `worker-sync verify` run finished (Unix seconds)",
    ["link"],
    registry=REGISTRY,
)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for each of ``amounts``, taking each bucket's lock once instead of once per
    value: the supervisor observes every applied change's lag, and per value that was a fifth of its CPU.
    (Reaches into prometheus-client's Histogram, pinned by the lock; tests/core/test_metrics.py checks it
    exports exactly what observe() would.)"""
    if not amounts:
        return
    bounds = histogram._upper_bounds
    per_bucket = collections.Counter(bisect.bisect_left(bounds, amount) for amount in amounts)
    histogram._sum.inc(sum(amounts))
    for index, count in per_bucket.items():
        histogram._buckets[index].inc(count)
