"""What the supervisor publishes on /status (and `worker-sync status` prints): plain data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from actors.core.retention import Retention


class StreamStatus(msgspec.Struct, kw_only=True):
    stream: str
    node: str
    tables: list[str]
    committed: str | None
    received: str | None
    captured_events: int
    applied_events: int
    batches_in_flight: int
    lag_ms: float
    end_to_end_lag_ms: dict[str, float]
    error: str | None
    #: The source log the stream still needs, as last measured (every 20 s; None before the first).
    source_log: Retention | None = None


class ShardStatus(msgspec.Struct, kw_only=True):
    shard: int
    queued_parts: int
    busy: bool
    applied_calls: int
    error: str | None


class Status(msgspec.Struct, kw_only=True):
    run_id: str
    started_at: float
    uptime_s: float
    ready: bool
    streams: list[StreamStatus]
    shards: list[ShardStatus]
    #: Why /readyz fails (empty when ready).
    not_ready: list[str] = []
    #: The last reported `worker-sync verify --report` result of each link (actors/verify_results.py).
    verify: list[dict[str, Any]] = []


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
