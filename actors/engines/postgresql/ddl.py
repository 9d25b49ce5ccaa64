"""Table-wide statements on PostgreSQL: describing columns a source added, adding them and truncating at a target.

A column added at the target takes the source's declared type when the source is PostgreSQL too, else a type
chosen per family to hold every value of the source's (the start-up type check then confirms it: see
BatchWriter.apply_table_op). Types with no such choice (arrays, unknown types) are refused with a message.
"""

from __future__ import annotations

from typing import Any

import psycopg

from actors.core.errors import SinkError
from actors.core.events import AddedColumn
from actors.core.schema_changes import added_columns
from actors.core.typemap import ColumnType
from actors.engines.postgresql.schema import load_table, split_namespace

_DEFAULTS_SQL = """
SELECT a.attname, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
"""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(namespace: str) -> str:
    schema, table = split_namespace(namespace)
    return f"{quote(schema)}.{quote(table)}"


def describe_columns(conn: psycopg.Connection[Any], namespace: str) -> dict[str, AddedColumn]:
    """Every column of a source table as an AddedColumn (what a target needs to add it), read now."""
    schema = load_table(conn, namespace).schema
    defaults = dict(conn.execute(_DEFAULTS_SQL, (qualified(namespace),)).fetchall())
    return added_columns(schema, defaults)


def _type_sql(t: ColumnType) -> str | None:
    """A PostgreSQL type holding every value of ``t`` (from another engine); None when there is none."""
    f = t.family
    if f == "integer":
        bits = (t.bits or 64) + (1 if t.unsigned else 0)
        return "smallint" if bits <= 16 else "integer" if bits <= 32 else "bigint" if bits <= 64 else "numeric(20,0)"
    if f == "decimal":
        return "numeric" if t.precision is None else f"numeric({t.precision},{t.scale or 0})"
    if f == "float":
        return "real" if (t.bits or 53) <= 24 else "double precision"
    if f == "boolean":
        return "boolean"
    if f == "set":
        return "text[]"  # a SET is captured as the list of its members (as the writers' own mapping tests have it)
    if f in ("text", "enum"):
        return "text" if f != "text" or t.length is None or t.length > 10_485_760 else f"character varying({t.length})"
    if f == "bytes":
        return "bytea"
    simple = {"date": "date", "json": "jsonb", "uuid": "uuid"}
    if f in simple:
        return simple[f]
    digits = "" if t.precision is None else f"({min(t.precision, 6)})"
    if f in ("time", "timestamp"):
        return f"{'time' if f == 'time' else 'timestamp'}{digits}" + (" without time zone" if digits else "")
    if f == "timestamptz":
        return f"timestamp{digits} with time zone"
    if f == "interval":
        return f"interval{digits}"
    if f == "bit" and t.length is not None:
        return f"bit varying({t.length})"
    return None


def add_column_sql(namespace: str, column: str, added: AddedColumn, source_engine: str) -> str:
    """``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` (idempotent: a replay meets the column and does nothing)."""
    type_sql = added.type_text if source_engine == "postgresql" else _type_sql(added.type)
    if type_sql is None:
        raise SinkError(
            f"postgresql table `{namespace}`: column `{column}` was added at the source as `{added.type_text}`, which "
            "no PostgreSQL type holds exactly - add the column at the target yourself, then restart"
        )
    sql = f"ALTER TABLE {qualified(namespace)} ADD COLUMN IF NOT EXISTS {quote(column)} {type_sql}"
    if added.default is not None:
        sql += f" DEFAULT {added.default}"
        if not added.nullable:
            sql += " NOT NULL"
    return sql.replace("%", "%%")  # run with (no) parameters: a literal % must not read as a placeholder


def truncate_sql(namespace: str) -> str:
    return f"TRUNCATE TABLE {qualified(namespace)}"


def missing_rights(conn: psycopg.Connection[Any], namespace: str, *, truncate: bool, alter: bool) -> list[str]:
    """What the writer's user lacks on a target table for `truncate: apply` / `schema_changes: apply`, in words."""
    table = qualified(namespace)
    row = conn.execute(
        "SELECT has_table_privilege(c.oid, 'TRUNCATE'), pg_has_role(c.relowner, 'USAGE'), c.relowner::regrole::text "
        "FROM pg_class c WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()
    if row is None:
        return []
    can_truncate, owns, owner = row
    missing = []
    if truncate and not can_truncate:
        missing.append(f"`truncate: apply` needs `GRANT TRUNCATE ON {table} TO {conn.info.user}`")
    if alter and not owns:
        missing.append(
            f"`schema_changes: apply` needs the table's ownership (ALTER TABLE requires it; the owner is `{owner}`): "
            f"`ALTER TABLE {table} OWNER TO {conn.info.user}` or `GRANT {owner} TO {conn.info.user}`"
        )
    return missing
