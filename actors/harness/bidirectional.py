"""Make harness databases ready for bidirectional sync, as `worker-sync init` does for real nodes.

A node in a bidirectional group is read (capture) and written (apply) by Worker-Sync, and a node has one
configured account: the harness gives its capture account the apply account's write grants too.
"""

from __future__ import annotations

from psycopg import sql

from actors.harness.endpoint import Endpoint


def prepare_bidirectional(endpoint: Endpoint, *, account: str = "apply") -> None:
    """The version table (and MariaDB's echo marker table); ``account`` ("apply" or "capture") may write the
    database's tables and the version table, and mark its sessions."""
    user = endpoint.credentials(account).user
    if endpoint.engine == "postgresql":
        from actors.engines.postgresql import versions as pg_versions

        with endpoint.connect("admin") as conn:
            pg_versions.create(conn, user)
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(user)
                )
            )
    else:
        from actors.engines.mariadb import versions as mariadb_versions
        from actors.harness.grants import mariadb_grant_writes

        with endpoint.connect("admin") as conn:
            mariadb_versions.create(conn, endpoint.database)
            mariadb_grant_writes(conn, endpoint.database, user)
