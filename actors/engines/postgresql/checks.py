"""Start-up checks: refuse to capture from a server that cannot do it right, and say what to change."""

from __future__ import annotations

from typing import Any

import psycopg

from actors.core.errors import SourceMisconfigured


def _one_row(cursor: psycopg.Cursor[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (SHOW, or a SELECT about the current user)."""
    row = cursor.fetchone()
    assert row is not None, "the query returns exactly one row"
    return row


def check_server(conn: psycopg.Connection, *, stream: str) -> None:
    """Logical decoding is on and our role may replicate."""
    prefix = f"postgresql stream `{stream}`"
    wal_level = _one_row(conn.execute("SHOW wal_level"))[0]
    if wal_level != "logical":
        raise SourceMisconfigured(
            f"{prefix}: wal_level is `{wal_level}`; set `wal_level = logical` in postgresql.conf and restart the server"
        )
    user, can_replicate = _one_row(
        conn.execute("SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
    )
    if not can_replicate:
        raise SourceMisconfigured(
            f"{prefix}: role `{user}` may not use replication; run `ALTER ROLE {user} REPLICATION` as a superuser"
        )


def check_readable(conn: psycopg.Connection, *, stream: str, tables: list[str]) -> None:
    """Our role can SELECT every captured table (the snapshot reads them)."""
    prefix = f"postgresql stream `{stream}`"
    user = _one_row(conn.execute("SELECT current_user"))[0]
    for namespace in tables:
        schema, _, table = namespace.partition(".")
        allowed = _one_row(
            conn.execute("SELECT has_table_privilege(%s::regclass, 'SELECT')", (f'"{schema}"."{table}"',))
        )[0]
        if not allowed:
            raise SourceMisconfigured(
                f"{prefix}: role `{user}` cannot read `{namespace}` for the snapshot; "
                f"run `GRANT SELECT ON {namespace} TO {user}`"
            )
