"""The oplog window of a MongoDB stream: how long before the oplog rolls past the stream's resume point.

The oplog (`local.oplog.rs`) is a capped collection: once full, its oldest entries go as new ones come, so a
stream that falls further behind than the oplog's window can no longer resume (ChangeStreamHistoryLost, 286)
and needs a re-snapshot. The entries older than the stream's resume point are the ones that go first, so its
headroom is the resume point's cluster time minus the oldest entry's (at the write rate they were written
at), plus, while the oplog is not full yet, the time it takes to fill at the average rate of what it holds.
``retained_bytes`` is the part of the oplog from the resume point on (what the stream still needs),
estimated by time share of the oplog's size. A deployment without an oplog (a standalone server, the
`nx-27017` stand-in) gives no figure. `storage.oplogMinRetentionHours` is not taken into account: it only
keeps entries longer, so the figure errs on the safe side.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
from bson.timestamp import Timestamp

from actors.core.retention import AT_RISK, LOST, OK, Retention

#: A resume point within this share of the window from its oldest end, or within AT_RISK_MIN_S, is at risk.
AT_RISK_SHARE = 0.1
AT_RISK_MIN_S = 300.0
#: An oplog holding less than this share of its maximum size is still filling: nothing rolls off yet.
FULL_SHARE = 0.95

_ORDER_TIME = struct.Struct(">I")


class OplogFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the server says of its oplog: the oldest and newest entries' cluster times (seconds), its size."""

    oldest_s: int
    newest_s: int
    used_bytes: int
    max_bytes: int | None = None


def resume_seconds(order: bytes) -> int | None:
    """The cluster time (seconds) of a MongoDB position's ``order``; None when it carries none (0: a stream
    started without cluster times, as on the stand-in)."""
    if len(order) < _ORDER_TIME.size:
        return None
    (seconds,) = _ORDER_TIME.unpack_from(order)
    return seconds or None


def window_retention(resume_s: int, facts: OplogFacts) -> Retention:
    """The retention figures of a stream resuming at cluster time ``resume_s`` (seconds) on this oplog."""
    window_s = max(0, facts.newest_s - facts.oldest_s)
    if resume_s < facts.oldest_s:
        return Retention(
            retained_bytes=0,
            headroom_seconds=0.0,
            state=LOST,
            detail=f"oplog starts at {facts.oldest_s}, after the stream's resume point {resume_s}: rolled over",
        )
    needed_share = 0.0 if window_s == 0 else min(1.0, max(0.0, (facts.newest_s - resume_s) / window_s))
    headroom = float(resume_s - facts.oldest_s)
    detail = f"oplog window {window_s} s, resume point {facts.newest_s - resume_s} s behind its newest entry"
    filling = facts.max_bytes and facts.used_bytes < facts.max_bytes * FULL_SHARE
    if filling and facts.max_bytes:
        percent = 100.0 * facts.used_bytes / facts.max_bytes
        detail += f", {percent:.0f}% full"
        if window_s > 0 and facts.used_bytes > 0:  # fills at the average rate of what it holds
            headroom += (facts.max_bytes - facts.used_bytes) / (facts.used_bytes / window_s)
    at_risk = headroom < max(AT_RISK_MIN_S, AT_RISK_SHARE * window_s)
    return Retention(
        retained_bytes=int(facts.used_bytes * needed_share),
        headroom_seconds=headroom,
        state=AT_RISK if at_risk else OK,
        detail=detail,
    )


def oplog_facts(client: Any) -> OplogFacts | None:
    """The oplog's first and last entries (natural order) and size, read from the server; None where there
    is no oplog."""
    oplog = client["local"]["oplog.rs"]
    first = next(iter(oplog.find({}, {"ts": 1}).sort("$natural", 1).limit(1)), None)
    last = next(iter(oplog.find({}, {"ts": 1}).sort("$natural", -1).limit(1)), None)
    if first is None or last is None:
        return None
    stats = next(iter(oplog.aggregate([{"$collStats": {"storageStats": {}}}])), None)
    return facts_from(first, last, stats)


def facts_from(first: Any, last: Any, stats: Any) -> OplogFacts | None:
    """OplogFacts from the oldest and newest oplog entries and the ``$collStats`` document (its
    ``storageStats``); None when an entry carries no ``ts`` Timestamp."""
    oldest, newest = _seconds(first), _seconds(last)
    if oldest is None or newest is None:
        return None
    storage = (stats or {}).get("storageStats") or {}
    max_bytes = storage.get("maxSize")
    return OplogFacts(
        oldest_s=oldest,
        newest_s=newest,
        used_bytes=int(storage.get("size") or 0),
        max_bytes=int(max_bytes) if max_bytes else None,
    )


def _seconds(entry: Any) -> int | None:
    ts = entry.get("ts") if isinstance(entry, dict) else None
    return ts.time if isinstance(ts, Timestamp) else None


def oplog_retention(client: Any, order: bytes) -> Retention | None:
    """The stream's figures from the server's oplog; None without an oplog or a cluster time to compare."""
    resume_s = resume_seconds(order)
    if resume_s is None:
        return None
    facts = oplog_facts(client)
    return None if facts is None else window_retention(resume_s, facts)
