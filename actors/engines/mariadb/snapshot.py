"""The initial snapshot: every row of the captured tables, consistent with one binlog point, without locks.

MariaDB's ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` also fixes ``binlog_snapshot_file`` /
``binlog_snapshot_position`` (session status) to the binlog point the InnoDB snapshot sees: every
transaction committed before it is in the snapshot, every one after it is in the binlog after it. So
reading the tables inside that transaction and then streaming from that point has no gap and no
duplicate at the seam, with no FLUSH TABLES WITH READ LOCK (which needs RELOAD, more than capture gets).

MySQL has no binlog_snapshot_* status: its lock-free equivalents (a global read lock held only while the
position is read, or DBLog-style chunk watermarks reconciled with the stream) are not implemented, and a
MySQL-flavour source refuses to snapshot (see source.py).

Tables are read in primary-key order in chunks (keyset pagination: ``WHERE key > last ORDER BY key
LIMIT n``), so memory stays bounded and no statement runs for long (an unbuffered cursor would hold the
server's net_write_timeout against a slow consumer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

from actors.core.batches import TxnEnd
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.base import Change
from actors.engines.mariadb.positions import END_OF_TRANSACTION, BinlogPoint, order, order_prefix
from actors.engines.mariadb.schema import TableInfo, quote
from actors.engines.mariadb.values import snapshot_query

log = logging.getLogger(__name__)


def begin(conn: Any, *, server: str) -> BinlogPoint:
    """Open the consistent snapshot on ``conn`` and return the binlog point it is consistent with."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")  # TIMESTAMP values as UTC (see values.py)
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cur.execute("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        status = {name.lower(): value for name, value in cur.fetchall()}
        file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        gtid = cur.fetchone()[0] or ""
    return BinlogPoint(file, pos, gtid, server)


def _keyset(primary_key: Sequence[str]) -> str:
    """``(a > %s) OR (a = %s AND b > %s) ...``: the range optimizer uses the key for this form."""
    terms = []
    for i, column in enumerate(primary_key):
        equal = [f"{quote(c)} = %s" for c in primary_key[:i]]
        terms.append("(" + " AND ".join([*equal, f"{quote(column)} > %s"]) + ")")
    return " OR ".join(terms)


def _keyset_args(last: Sequence[Any]) -> list[Any]:
    args: list[Any] = []
    for i in range(len(last)):
        args.extend(last[: i + 1])
    return args


def read_tables(
    conn: Any,
    point: BinlogPoint,
    tables: Sequence[TableInfo],
    *,
    subject: str,
    node: str,
    engine: str,
    stop: threading.Event,
    chunk_rows: int = 5_000,
    progress_every_rows: int = 50_000,
    follows: Position | None = None,
) -> Generator[Change, None, bool]:
    """READ events for every row, then a TxnEnd whose resume is ``point``. Returns False when stopped.

    Positions: ``order`` = the point's prefix + a row counter (all before any streamed event, see
    positions.py); ``resume`` = "" for rows (a crash mid-snapshot redoes it), ``point`` for the TxnEnd.
    With ``follows`` (a re-snapshot of a running stream): ``follows.order`` + a row counter, which sorts
    after that position and before every event streamed after it, and the TxnEnd resumes there.
    """
    prefix = order_prefix(point.seq, point.pos) if follows is None else follows.order
    commit_time_us = time.time_ns() // 1_000
    txid = f"snapshot:{point.file}:{point.pos}"
    counter = 0
    total = sum(t.rows_estimate for t in tables)
    started = time.monotonic()
    with conn.cursor() as cur:
        for info in tables:
            query = snapshot_query(info)
            plan, names = query.plan, query.column_names
            key_at = [names.index(c) for c in info.primary_key]
            base = f"SELECT {query.select_list} FROM {quote(info.schema)}.{quote(info.table)}"
            tail = f" ORDER BY {', '.join(quote(c) for c in info.primary_key)} LIMIT {int(chunk_rows)}"
            first, after = base + tail, f"{base} WHERE {_keyset(info.primary_key)}{tail}"
            last: list[Any] | None = None
            table_rows = 0
            log.info(
                "%s: snapshot of `%s` (about %d rows) at %s",
                subject,
                info.namespace,
                info.rows_estimate,
                point.encode(),
            )
            while True:
                if stop.is_set():
                    return False
                cur.execute(first if last is None else after, None if last is None else _keyset_args(last))
                rows = cur.fetchall()
                for raw in rows:
                    row = plan.apply(dict(zip(names, raw, strict=True)))
                    yield ChangeEvent(
                        node=node,
                        engine=engine,
                        namespace=info.namespace,
                        op=Op.READ,
                        key={c: row[c] for c in info.primary_key},
                        before=None,
                        after=row,
                        commit_time_us=commit_time_us,
                        txid=txid,
                        position=Position(prefix + counter.to_bytes(8, "big")),
                    )
                    counter += 1
                    if counter % progress_every_rows == 0:
                        log.info(
                            "%s: snapshot progress: %d of about %d rows (%.0f rows/s)",
                            subject,
                            counter,
                            total,
                            counter / max(time.monotonic() - started, 1e-6),
                        )
                table_rows += len(rows)
                if len(rows) < chunk_rows:
                    break
                last = [rows[-1][i] for i in key_at]
            log.info("%s: snapshot of `%s` done: %d rows", subject, info.namespace, table_rows)
        cur.execute("COMMIT")
    log.info(
        "%s: snapshot done: %d rows in %.1f s; streaming from %s",
        subject,
        counter,
        time.monotonic() - started,
        point.encode(),
    )
    if follows is None:
        end = Position(order(point.seq, point.pos, END_OF_TRANSACTION), point.encode())
    else:
        end = Position(follows.order + END_OF_TRANSACTION.to_bytes(8, "big"), follows.resume)
    yield TxnEnd(end, txid, commit_time_us)
    return True
