"""PostgreSQL side of bidirectional sync: the version table and the replication origin echo marker.

The version table (``worker_sync_meta.versions``) holds each synced row's stored winner (see
actors/core/conflicts.py). Echoes are marked the engine's own way: every writer session of a node in a
bidirectional group runs under a replication origin named ``worker_sync_<writer>``, which logical
decoding reports with each change (wal2json ``include-origin``), so the node's capture can tell its own
users' changes from Worker-Sync's writes. PostgreSQL 15 lets one session hold an origin at a time, so
each applier shard has its own.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SCHEMA = "worker_sync_meta"
TABLE = f"{SCHEMA}.versions"
#: Replication origins Worker-Sync writes under all start with this.
ORIGIN_PREFIX = "worker_sync_"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    namespace text NOT NULL,
    row_key bytea NOT NULL,
    stored bytea NOT NULL,
    PRIMARY KEY (namespace, row_key)
);
"""

#: What the writer's role needs beyond writing its tables (granted by `worker-sync init`).
_ORIGIN_FUNCTIONS = (
    "pg_replication_origin_oid(text)",
    "pg_replication_origin_create(text)",
    "pg_replication_origin_session_setup(text)",
    "pg_replication_origin_session_reset()",
)


def lock_sql(rows: int) -> str:
    keys = ", ".join(["%s"] * rows)
    return f"SELECT row_key, stored FROM {TABLE} WHERE namespace = %s AND row_key IN ({keys}) FOR UPDATE"


def claim_sql(rows: int) -> str:
    values = ", ".join(["(%s, %s, %s)"] * rows)
    return f"INSERT INTO {TABLE} (namespace, row_key, stored) VALUES {values} ON CONFLICT DO NOTHING"


def store_sql(rows: int) -> str:
    values = ", ".join(["(%s, %s, %s)"] * rows)
    return (
        f"INSERT INTO {TABLE} (namespace, row_key, stored) VALUES {values} "
        "ON CONFLICT (namespace, row_key) DO UPDATE SET stored = EXCLUDED.stored"
    )


def create(admin: psycopg.Connection, writer_role: str) -> None:
    """Create the version table and let ``writer_role`` use it and mark its sessions (idempotent)."""
    role = sql.Identifier(writer_role)
    with admin.transaction():
        admin.execute(DDL)
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), role))
        admin.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {}.versions TO {}").format(sql.Identifier(SCHEMA), role))
        for function in _ORIGIN_FUNCTIONS:
            admin.execute(sql.SQL(f"GRANT EXECUTE ON FUNCTION {function} TO {{}}").format(role))


def missing(conn: psycopg.Connection) -> list[str]:
    """What a group member's user lacks, in words: the version table, or the right to mark its sessions."""
    try:
        row = conn.execute(
            "SELECT has_table_privilege(to_regclass(%s), 'SELECT, INSERT, UPDATE'), "
            "has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE'), "
            "has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')",
            [TABLE],
        ).fetchone()
    except psycopg.Error:  # e.g. no USAGE on its schema
        row = (False, True, True)
    assert row is not None  # a SELECT without FROM returns one row
    absent = []
    if not row[0]:
        absent.append(f"its user may not read and write `{TABLE}` (or it does not exist)")
    if not (row[1] and row[2]):
        absent.append("its user may not mark its writes with a replication origin")
    return absent


def mark_session(conn: psycopg.Connection, origin: str) -> None:
    """Run this (autocommit) session under replication origin ``origin``, creating it the first time."""
    found = conn.execute("SELECT pg_replication_origin_oid(%s)", [origin]).fetchone()
    if found is None or found[0] is None:
        conn.execute("SELECT pg_replication_origin_create(%s)", [origin])
    conn.execute("SELECT pg_replication_origin_session_setup(%s)", [origin])
