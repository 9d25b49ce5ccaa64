"""How much binlog a stream still needs, and how long before the server's expiry may purge it.

The server purges a binlog file once its last write is older than ``binlog_expire_logs_seconds`` (or
``expire_logs_days``), whether a stream still needs it or not. A file's last write is when the next file
began, which only the next file's first event records (``SHOW BINARY LOGS`` gives names and sizes only): it
is read with a short non-blocking binlog dump as server id 0, the way ``mysqlbinlog`` reads a server, which
no replica's id can clash with.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader

from actors.core.retention import LOST, OK, Retention
from actors.engines.mariadb.connection import ConnectParams, connect_kwargs
from actors.engines.mariadb.positions import file_sequence, split_order

#: A non-blocking dump ends at the end of the log; this bounds a server that does not answer.
_READ_TIMEOUT_S = 10.0


def binlog_retention(conn: pymysql.Connection, params: ConnectParams, order: bytes) -> Retention:
    """The binlog bytes from the position ``order`` (a Position's order) to the end of the log, and the
    seconds before the file holding it may be purged."""
    seq, offset, _ = split_order(order)
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [(str(row[0]), int(row[1])) for row in cur.fetchall()]
        cur.execute("SELECT UNIX_TIMESTAMP()")
        (now,) = cur.fetchone() or (0,)
        expire_s = _expiry_seconds(cur)
    by_seq = {file_sequence(name): (name, size) for name, size in files}
    if not by_seq or seq < min(by_seq):
        oldest = files[0][0] if files else "none"
        return Retention(
            retained_bytes=0,
            headroom_seconds=0.0,
            state=LOST,
            detail=f"binlog file number {seq} was purged (oldest kept: {oldest})",
        )
    retained = max(0, sum(size for s, (_, size) in by_seq.items() if s >= seq) - offset)
    name = by_seq[seq][0] if seq in by_seq else f"number {seq}"
    expiry = f"expiry {expire_s:.0f} s" if expire_s else "no expiry"
    later = sorted(s for s in by_seq if s > seq)
    if not later:  # the file being written: it cannot expire before it is closed
        detail = f"binlog {name} (being written), {expiry}"
        return Retention(retained_bytes=retained, headroom_seconds=expire_s or None, state=OK, detail=detail)
    closed_at = _opened_at(params, by_seq[later[0]][0])
    if closed_at is None:
        return Retention(retained_bytes=retained, state=OK, detail=f"binlog {name}: closing time unknown, {expiry}")
    age = max(0.0, float(now) - closed_at)
    headroom = None if not expire_s else max(0.0, expire_s - age)
    detail = f"binlog {name} closed {age:.0f} s ago, {expiry}"
    return Retention(retained_bytes=retained, headroom_seconds=headroom, state=OK, detail=detail)


def _expiry_seconds(cur: Any) -> float:
    """The server's binlog expiry in seconds (0: never), from whichever of the two settings it has."""
    cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', 'expire_logs_days')")
    values = {str(name): float(value or 0) for name, value in cur.fetchall()}
    return values.get("binlog_expire_logs_seconds") or values.get("expire_logs_days", 0.0) * 86_400


def _connect(**settings: Any) -> pymysql.Connection:
    """mysql-replication's connections, with its deprecated ``db`` under pymysql's ``database``."""
    if "db" in settings:
        settings["database"] = settings.pop("db")
    return pymysql.connect(**settings)


def _opened_at(params: ConnectParams, file: str) -> float | None:
    """The time (server clock, Unix seconds) of the first event of binlog ``file``: its format description."""
    settings = connect_kwargs(params, database="", read_timeout_s=_READ_TIMEOUT_S)
    settings.pop("autocommit", None)
    reader = BinLogStreamReader(
        connection_settings=settings,
        server_id=0,
        blocking=False,
        log_file=file,
        log_pos=4,
        resume_stream=True,
        enable_logging=False,
        pymysql_wrapper=_connect,
    )
    try:
        for event in reader:
            if event.timestamp:
                return float(event.timestamp)
        return None
    finally:
        reader.close()
