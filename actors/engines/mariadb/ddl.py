"""Table-wide statements on MariaDB/MySQL: describing columns a source added, adding them and truncating at a target.

A column added at the target takes the source's declared type when the source is MariaDB/MySQL too, else a type
chosen per family to hold every value of the source's (the start-up type check then confirms it: see
BatchWriter.apply_table_op). Types with no such choice are refused with a message.
"""

from __future__ import annotations

from typing import Any

from actors.core.errors import SinkError
from actors.core.events import AddedColumn
from actors.core.schema_changes import added_columns
from actors.core.typemap import ColumnType
from actors.engines.mariadb.schema import quote, split_namespace
from actors.engines.mariadb.table_schema import table_schema

_DEFAULTS_SQL = (
    "SELECT COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
)
_SAME_ENGINE = frozenset({"mariadb", "mysql"})


def qualified(namespace: str) -> str:
    database, table = split_namespace(namespace)
    return f"{quote(database)}.{quote(table)}"


def describe_columns(conn: Any, namespace: str) -> dict[str, AddedColumn]:
    """Every column of a source table as an AddedColumn (what a target needs to add it), read now."""
    schema = table_schema(conn, namespace)
    with conn.cursor() as cur:
        cur.execute(_DEFAULTS_SQL, split_namespace(namespace))
        defaults = {str(name): text for name, text in cur.fetchall()}
    return added_columns(schema, defaults)


def _labels(labels: tuple[str, ...]) -> str:
    return ", ".join("'" + label.replace("\\", "\\\\").replace("'", "''") + "'" for label in labels)


def _type_sql(t: ColumnType) -> str | None:
    """A MariaDB type holding every value of ``t`` (from another engine); None when there is none."""
    f = t.family
    if f == "integer":
        sizes = {8: "tinyint", 16: "smallint", 24: "mediumint", 32: "int", 64: "bigint"}
        name = next((sizes[b] for b in sorted(sizes) if b >= (t.bits or 64)), None)
        return None if name is None else name + (" unsigned" if t.unsigned else "")
    if f == "decimal":
        return None if t.precision is None or t.precision > 65 else f"decimal({t.precision},{t.scale or 0})"
    if f == "float":
        return "float" if (t.bits or 53) <= 24 else "double"
    if f == "boolean":
        return "tinyint(1)"
    if f == "text":
        if t.length is not None and t.length <= 16_383:
            return f"{'char' if t.fixed and t.length <= 255 else 'varchar'}({t.length})"
        return "longtext"
    if f == "bytes":
        return "longblob"
    if f in ("enum", "set") and t.labels:
        return f"{f}({_labels(t.labels)})"
    digits = "" if t.precision is None else f"({min(t.precision, 6)})"
    if f in ("timestamp", "timestamptz"):
        return f"datetime{digits or '(6)'}"
    simple = {"date": "date", "json": "json", "uuid": "char(36)", "time": f"time{digits or '(6)'}"}
    if f in simple:
        return simple[f]
    if f == "bit" and t.length is not None and t.length <= 64:
        return f"bit({t.length})"
    return None


def add_column_sql(namespace: str, column: str, added: AddedColumn, source_engine: str) -> str:
    """``ALTER TABLE ... ADD COLUMN`` (MySQL has no ``IF NOT EXISTS``: the writer looks for the column first)."""
    type_sql = added.type_text if source_engine in _SAME_ENGINE else _type_sql(added.type)
    if type_sql is None:
        raise SinkError(
            f"mariadb table `{namespace}`: column `{column}` was added at the source as `{added.type_text}`, which no "
            "MariaDB type holds exactly - add the column at the target yourself, then restart"
        )
    sql = f"ALTER TABLE {qualified(namespace)} ADD COLUMN {quote(column)} {type_sql}"
    if added.default is not None:
        sql += f" DEFAULT {added.default}"
        if not added.nullable:
            sql += " NOT NULL"
    return sql.replace("%", "%%")  # pymysql formats a statement given (even empty) parameters


def truncate_sql(namespace: str) -> str:
    return f"TRUNCATE TABLE {qualified(namespace)}"


_PRIVILEGES_SQL = (
    "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s "
    "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s AND TABLE_SCHEMA = %s "
    "UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
    "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s AND TABLE_NAME = %s"
)


def missing_rights(conn: Any, namespace: str, *, truncate: bool, alter: bool) -> list[str]:
    """What the writer's user lacks on a target table for `truncate: apply` (DROP) / `schema_changes: apply`
    (ALTER), in words. Privileges held through a role are not seen: grant them to the user itself."""
    database, table = split_namespace(namespace)
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        user, _, host = str(cur.fetchone()[0]).rpartition("@")
        grantee = f"'{user}'@'{host}'"
        cur.execute(_PRIVILEGES_SQL, (grantee, grantee, database, grantee, database, table))
        held = {str(kind).upper() for (kind,) in cur.fetchall()}
    account = f"{quote(user)}@{quote(host)}".replace("`", "'")
    missing = []
    if truncate and "DROP" not in held:
        missing.append(
            f"`truncate: apply` needs `GRANT DROP ON {qualified(namespace)} TO {account}` (TRUNCATE needs DROP)"
        )
    if alter and "ALTER" not in held:
        missing.append(f"`schema_changes: apply` needs `GRANT ALTER ON {qualified(namespace)} TO {account}`")
    return missing
