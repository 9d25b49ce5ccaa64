"""The probe table on MariaDB/MySQL (see actors.core.probe): in the node's database."""

from __future__ import annotations

from typing import Any

from actors.core.probe import ID_LENGTH, PRIVILEGES, PROBE_TABLE

DDL = (
    f"CREATE TABLE IF NOT EXISTS `{{database}}`.`{PROBE_TABLE}` "
    f"(probe_id VARCHAR({ID_LENGTH}) NOT NULL PRIMARY KEY, written_at DATETIME(6) NOT NULL) "
    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
)


def namespace(database: str) -> str:
    return f"{database}.{PROBE_TABLE}"


def statements(database: str, grantees: list[str]) -> list[str]:
    """``grantees``: accounts as GRANT names them (``'user'@'host'``)."""
    return [
        DDL.format(database=database),
        *(f"GRANT {PRIVILEGES} ON `{database}`.`{PROBE_TABLE}` TO {who}" for who in grantees),
    ]


def present(conn: Any, database: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (database, PROBE_TABLE),
        )
        row = cur.fetchone()
    return bool(row and row[0])


def accounts(conn: Any, user: str) -> list[str]:
    """Every ``'user'@'host'`` account of ``user`` (an administrator's grants must name each)."""
    with conn.cursor() as cur:
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
        hosts = [row[0] for row in cur.fetchall()] or ["%"]
    return [f"'{user}'@'{host}'" for host in hosts]
