"""How much WAL a stream's replication slot holds, and how close it is to being invalidated."""

from __future__ import annotations

from typing import Any

from actors.core.retention import AT_RISK, LOST, OK, Retention

#: `pg_replication_slots.wal_status` (PostgreSQL 13+) in Retention's states: ``extended`` is past
#: max_wal_size but within max_slot_wal_keep_size, still safe; ``unreserved`` goes at the next checkpoint.
_STATES = {"reserved": OK, "extended": OK, "unreserved": AT_RISK, "lost": LOST}

_QUERY = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint,
       s.wal_status,
       s.safe_wal_size,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
FROM pg_replication_slots s WHERE s.slot_name = %s
"""


def slot_retention(conn: Any, slot: str, started: bool) -> Retention | None:
    """The slot's retained WAL (from its ``restart_lsn``), its WAL status and safe size. ``started``: the
    stream committed a position, so its slot must exist; before that a missing slot is not made yet (None)."""
    row = conn.execute(_QUERY, (slot,)).fetchone()
    if row is None:
        if not started:
            return None
        return Retention(retained_bytes=0, state=LOST, detail=f"replication slot {slot} does not exist")
    retained, wal_status, safe_size, written = row
    state = _STATES.get(wal_status or "", OK)
    safe = "unlimited (max_slot_wal_keep_size = -1)" if safe_size is None else f"{int(safe_size):,} bytes"
    return Retention(
        retained_bytes=max(0, int(retained or 0)),
        headroom_bytes=None if safe_size is None else max(0, int(safe_size)),
        headroom_seconds=0.0 if state == LOST else None,
        state=state,
        detail=f"slot {slot}: wal_status {wal_status}, safe_wal_size {safe}",
        written_bytes=int(written),
    )
