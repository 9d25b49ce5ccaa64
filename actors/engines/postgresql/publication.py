"""The publication a pgoutput stream reads: it must publish every captured table.

pgoutput sends the changes of a publication's tables only, so a table missing from it would be silently
not captured. The stream creates the publication, or adds missing tables to it, when its user may (it owns
the tables, or is a superuser); otherwise it stops with the statement a table owner must run. Extra tables
in the publication are harmless: the decoder skips tables the stream does not capture.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from actors.core.errors import SourceMisconfigured

_PUBLISHED_SQL = "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s"


def _table(namespace: str) -> sql.Composable:
    schema, _, table = namespace.partition(".")
    return sql.Identifier(schema, table)


def _statement(name: str, tables: list[str], *, exists: bool) -> sql.Composed:
    listed = sql.SQL(", ").join(_table(namespace) for namespace in tables)
    template = "ALTER PUBLICATION {} ADD TABLE {}" if exists else "CREATE PUBLICATION {} FOR TABLE {}"
    return sql.SQL(template).format(sql.Identifier(name), listed)


def ensure_publication(conn: psycopg.Connection, name: str, tables: list[str], *, stream: str) -> None:
    """Make publication ``name`` publish ``tables`` (each "schema.table"), or say who must and how."""
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone() is not None
    published = {row[0] for row in conn.execute(_PUBLISHED_SQL, (name,)).fetchall()} if exists else set()
    missing = [namespace for namespace in tables if namespace not in published]
    if not missing:
        return
    statement = _statement(name, missing, exists=exists)
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SourceMisconfigured(
            f"postgresql stream `{stream}`: publication `{name}` "
            f"{'lacks ' + ', '.join(missing) if exists else 'does not exist'} and its user may not change that "
            f"({str(exc).strip()}); as the tables' owner run: {statement.as_string(conn)}"
        ) from None
    except psycopg.Error as exc:  # e.g. a table that does not exist
        raise SourceMisconfigured(
            f"postgresql stream `{stream}`: `{statement.as_string(conn)}` failed: {str(exc).strip()}"
        ) from None
