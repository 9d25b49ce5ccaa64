"""Start-up checks: refuse to capture from a server that cannot do it right, and say what to change."""

from __future__ import annotations

import psycopg

from actors.core.errors import SourceMisconfigured


def check_server(conn: psycopg.Connection, *, stream: str) -> None:
    """Logical decoding is on and our role may replicate."""
    prefix = f"postgresql stream `{stream}`"
    wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    if wal_level != "logical":
        raise SourceMisconfigured(
            f"{prefix}: wal_level is `{wal_level}`; set `wal_level = logical` in postgresql.conf and restart the server"
        )
    user, can_replicate = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not can_replicate:
        raise SourceMisconfigured(
            f"{prefix}: role `{user}` may not use replication; run `ALTER ROLE {user} REPLICATION` as a superuser"
        )


def check_readable(conn: psycopg.Connection, *, stream: str, tables: list[str]) -> None:
    """Our role can SELECT every captured table (the snapshot reads them)."""
    prefix = f"postgresql stream `{stream}`"
    user = conn.execute("SELECT current_user").fetchone()[0]
    for namespace in tables:
        schema, _, table = namespace.partition(".")
        allowed = conn.execute(
            "SELECT has_table_privilege(%s::regclass, 'SELECT')", (f'"{schema}"."{table}"',)
        ).fetchone()[0]
        if not allowed:
            raise SourceMisconfigured(
                f"{prefix}: role `{user}` cannot read `{namespace}` for the snapshot; "
                f"run `GRANT SELECT ON {namespace} TO {user}`"
            )
