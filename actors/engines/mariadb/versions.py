"""MariaDB/MySQL side of bidirectional sync: the version table and the in-transaction echo marker.

The version table (``<database>.worker_sync_versions``) holds each synced row's stored winner (see
actors/core/conflicts.py). Echoes are marked with a row: every transaction Worker-Sync applies to a node
in a bidirectional group starts by bumping its writer's row in ``<database>.worker_sync_echo``. The
binlog carries that row event first in the transaction, so the node's capture knows the rest of the
transaction is Worker-Sync's own write. This needs nothing but INSERT/UPDATE on one table, so it also
works on plain MySQL 8 and on managed servers where ``SET SESSION server_id`` / ``skip_replication``
(which need SUPER or its successors) are not allowed.
"""

from __future__ import annotations

import pymysql

VERSIONS = "worker_sync_versions"
ECHO = "worker_sync_echo"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def ddl(database: str) -> list[str]:
    db = _quote(database)
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{VERSIONS} (namespace VARCHAR(255) NOT NULL, row_key BINARY(32) NOT NULL, "
        "stored LONGBLOB NOT NULL, PRIMARY KEY (namespace, row_key)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {db}.{ECHO} (writer VARCHAR(64) NOT NULL PRIMARY KEY, "
        "applied BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
    ]


def lock_sql(database: str, rows: int) -> str:
    keys = ", ".join(["%s"] * rows)
    return (
        f"SELECT row_key, stored FROM {_quote(database)}.{VERSIONS} "
        f"WHERE namespace = %s AND row_key IN ({keys}) FOR UPDATE"
    )


def claim_sql(database: str, rows: int) -> str:
    values = ", ".join(["(%s, %s, %s)"] * rows)
    return f"INSERT IGNORE INTO {_quote(database)}.{VERSIONS} (namespace, row_key, stored) VALUES {values}"


def store_sql(database: str, rows: int) -> str:
    values = ", ".join(["(%s, %s, %s)"] * rows)
    return (
        f"INSERT INTO {_quote(database)}.{VERSIONS} (namespace, row_key, stored) VALUES {values} "
        "ON DUPLICATE KEY UPDATE stored = VALUES(stored)"
    )


def echo_sql(database: str) -> str:
    """Bump the writer's marker row (parameter: the writer's name); always a row change, so always logged."""
    return (
        f"INSERT INTO {_quote(database)}.{ECHO} (writer, applied) VALUES (%s, 1) "
        "ON DUPLICATE KEY UPDATE applied = applied + 1"
    )


def create(admin: pymysql.Connection, database: str) -> None:
    """Create both tables (idempotent). The writer's account needs SELECT, INSERT, UPDATE on both and the
    capture's SELECT on the marker table (see the README's "Least privilege")."""
    with admin.cursor() as cur:
        for statement in ddl(database):
            cur.execute(statement)


def grant_statements(database: str, user: str) -> list[str]:
    """What the writer's account needs on both tables (an administrator may have to run them)."""
    return [
        f"GRANT SELECT, INSERT, UPDATE ON {_quote(database)}.{_quote(VERSIONS)} TO '{user}'@'%'",
        f"GRANT SELECT, INSERT, UPDATE ON {_quote(database)}.{_quote(ECHO)} TO '{user}'@'%'",
    ]


def missing(conn: pymysql.Connection, database: str) -> list[str]:
    """Which of the two tables a group member lacks, in words."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name IN (%s, %s)",
            (database, VERSIONS, ECHO),
        )
        found = {str(row[0]) for row in cur.fetchall()}
    return [f"`{database}.{table}` is missing" for table in (VERSIONS, ECHO) if table not in found]
