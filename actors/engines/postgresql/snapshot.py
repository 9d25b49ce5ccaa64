"""A consistent initial snapshot that joins the change stream with no gap and no duplicate.

The replication connection creates the slot with ``EXPORT_SNAPSHOT``: PostgreSQL returns the
slot's consistent point and a snapshot name. A second connection reads the tables inside that
exact snapshot (``SET TRANSACTION SNAPSHOT``), so it sees every transaction committed before
the consistent point and none after; the stream then starts at the consistent point and sends
exactly the transactions after it. Tables are read in key order, in chunks (keyset
pagination), so memory stays bounded whatever the table size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import psycopg
from psycopg import sql

from actors.core.events import ChangeEvent, Op, Position
from actors.engines.postgresql.catalog import TableInfo, row_from_text
from actors.engines.postgresql.decoding import order_of

log = logging.getLogger(__name__)


def read_snapshot(
    conn: psycopg.Connection,
    snapshot_name: str,
    tables: list[TableInfo],
    *,
    node: str,
    consistent_lsn: int,
    chunk_rows: int,
    stop: threading.Event,
    follows: Position | None = None,
) -> Iterator[ChangeEvent]:
    """Every row of ``tables`` as of the exported snapshot, as READ events.

    With ``follows`` (a re-snapshot of a running stream), positions are ``follows.order`` + a row
    counter: right after that position, before every change streamed after it."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    conn.execute("SET LOCAL DateStyle = 'ISO, MDY'")  # the replication session's (replication.SESSION_OPTIONS)
    conn.execute("SET LOCAL IntervalStyle = 'postgres'")
    taken_us = int(time.time() * 1_000_000)
    index = 0
    try:
        for table in tables:
            total = _estimate_rows(conn, table)
            done = 0
            for values in _chunks(conn, table, chunk_rows, stop):
                after = row_from_text(table, values)
                index += 1
                yield ChangeEvent(
                    node=node,
                    engine="postgresql",
                    namespace=table.namespace,
                    op=Op.READ,
                    key={name: after[name] for name in table.key},
                    before=None,
                    after=after,
                    commit_time_us=taken_us,
                    txid="snapshot",
                    # Sorts before every streamed change (their commit LSN is >= the consistent point);
                    # no resume point: a snapshot interrupted by a crash starts again.
                    position=Position(
                        order_of(consistent_lsn - 1, index)
                        if follows is None
                        else follows.order + index.to_bytes(8, "big"),
                        "",
                    ),
                )
                done += 1
                if done % 50_000 == 0:
                    log.info("postgresql snapshot %s: %d of ~%d rows", table.namespace, done, total)
            log.info("postgresql snapshot %s: done, %d rows", table.namespace, done)
    finally:
        conn.rollback()


def _estimate_rows(conn: psycopg.Connection, table: TableInfo) -> int:
    row = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (_ident(table),)).fetchone()
    return max(int(row[0]), 0) if row else 0


def _ident(table: TableInfo) -> str:
    schema, _, name = table.namespace.partition(".")
    return f'"{schema}"."{name}"'


def _chunks(
    conn: psycopg.Connection, table: TableInfo, chunk_rows: int, stop: threading.Event
) -> Iterator[tuple[str | None, ...]]:
    schema, _, name = table.namespace.partition(".")
    target = sql.Identifier(schema, name)
    # Output columns get neutral aliases: ORDER BY "id" would otherwise sort by the text output.
    select_list = sql.SQL(", ").join(
        sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(f"_c{i}"))
        for i, c in enumerate(table.columns)
    )
    key_list = sql.SQL(", ").join(sql.Identifier(c) for c in table.key)
    key_types = dict(zip(table.columns, table.types, strict=True))
    placeholders = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(key_types[c])) for c in table.key
    )
    first = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT {}").format(select_list, target, key_list, chunk_rows)
    following = sql.SQL("SELECT {} FROM {} WHERE ({}) > ({}) ORDER BY {} LIMIT {}").format(
        select_list, target, key_list, placeholders, key_list, chunk_rows
    )
    key_positions = [table.columns.index(c) for c in table.key]
    rows = conn.execute(first).fetchall()
    while rows:
        yield from rows
        if len(rows) < chunk_rows or stop.is_set():
            return
        last = rows[-1]
        rows = conn.execute(following, [last[i] for i in key_positions]).fetchall()
