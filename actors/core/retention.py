"""How much of its change log a source keeps for a stream, and how long before it may drop what is needed.

A PostgreSQL slot keeps WAL for ever while the stream is stopped or slow (the disk fills); a MariaDB/MySQL
binlog is purged after its expiry whether a stream still needs it or not (the stream then needs a full
re-snapshot). Engines measure it (``Engine.retention``); the supervisor polls them off its loop and
publishes the figures (metrics, /status), so the alerts fire before the point of loss.
"""

from __future__ import annotations

import msgspec

#: The needed log is safe for now.
OK = "ok"
#: The source may drop what the stream needs at any moment (PostgreSQL ``wal_status = unreserved``; MongoDB: the
#: resume point is in the oldest tenth of the oplog window, or within 5 minutes of rolling off).
AT_RISK = "at_risk"
#: The source dropped what the stream needs: it cannot resume without a fresh snapshot.
LOST = "lost"
STATES = (OK, AT_RISK, LOST)


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """One measurement of a stream's source log."""

    #: Bytes of log the source keeps only because this stream has not confirmed past them.
    retained_bytes: int
    #: Seconds before the source may remove log the stream still needs; None: no limit (it keeps it for ever,
    #: so the risk is the disk, which ``retained_bytes`` shows) or not estimable yet.
    headroom_seconds: float | None = None
    #: Bytes more the source may write before it removes log the stream needs; None: no such limit.
    headroom_bytes: int | None = None
    #: OK, AT_RISK or LOST.
    state: str = OK
    #: The engine's own words (WAL status, binlog file and expiry), for /status.
    detail: str = ""
    #: Total bytes of log the source has written (PostgreSQL: the current WAL LSN), when it knows: two
    #: measurements give the write rate that turns ``headroom_bytes`` into seconds.
    written_bytes: int | None = None
