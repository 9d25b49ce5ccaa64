"""The heartbeat row of a MariaDB/MySQL source (`heartbeat_interval_s`): one row in the node's database,
updated in a transaction of its own.

A server with no writes at all keeps the stream's committed position in the binlog file it last wrote a
transaction to. Once that file is rotated (FLUSH LOGS, a restart, `max_binlog_size`) it stays needed until it
expires, and the stream then needs a re-snapshot. Each heartbeat is a transaction: the capture reads its
commit (a TxnEnd, though no link carries the table) and commits the position past it, into the newest file.
No link names the table, so its rows are never applied to a target.
"""

from __future__ import annotations

from typing import Any

TABLE = "worker_sync_heartbeat"
#: What the node's user needs on the table, and nothing more.
PRIVILEGES = "SELECT, INSERT, UPDATE"

DDL = (
    f"CREATE TABLE IF NOT EXISTS `{{database}}`.`{TABLE}` "
    "(id TINYINT NOT NULL PRIMARY KEY, beat_at DATETIME(6) NOT NULL) CHARACTER SET utf8mb4"
)


def namespace(database: str) -> str:
    return f"{database}.{TABLE}"


def statements(database: str, grantees: list[str]) -> list[str]:
    """The DDL and the grants; ``grantees`` as GRANT names them (``'user'@'host'``)."""
    return [DDL.format(database=database), *(f"GRANT {PRIVILEGES} ON `{database}`.`{TABLE}` TO {w}" for w in grantees)]


def beat(conn: Any, database: str) -> None:
    """Write one heartbeat: a one-row upsert, committed (``conn`` is in autocommit mode)."""
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{database}`.`{TABLE}` (id, beat_at) VALUES (1, UTC_TIMESTAMP(6)) "
            "ON DUPLICATE KEY UPDATE beat_at = VALUES(beat_at)"
        )
