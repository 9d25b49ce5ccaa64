"""What capture must know about a table beyond the binlog's own metadata, read from information_schema.

The binlog (with ``binlog_row_metadata=FULL``) names and types every column, but it cannot tell which
columns form the primary key in key order, nor (on MariaDB) which LONGTEXT columns are JSON: MariaDB's
JSON is an alias for LONGTEXT with a ``CHECK (json_valid(col))`` constraint. The snapshot also needs the
SQL data types to read values the same way the binlog decodes them (see values.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_JSON_VALID = re.compile(r"^\s*json_valid\(`((?:[^`]|``)+)`\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    #: information_schema.COLUMNS.DATA_TYPE, lower case ("int", "timestamp", "set", "longtext", ...).
    data_type: str
    is_json: bool = False


@dataclass(frozen=True)
class TableInfo:
    schema: str
    table: str
    columns: tuple[ColumnInfo, ...]
    #: Primary key column names, in key order; empty when the table has none.
    primary_key: tuple[str, ...]
    engine: str = ""
    #: information_schema's estimate, for snapshot progress only.
    rows_estimate: int = 0

    @property
    def namespace(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def json_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.is_json)


def split_namespace(namespace: str) -> tuple[str, str]:
    """``"db.table"`` -> ``("db", "table")``; ValueError otherwise."""
    schema, dot, table = namespace.partition(".")
    if not dot or not schema or not table or "." in table:
        raise ValueError(f"expected `database.table`, got `{namespace}`")
    return schema, table


def quote(identifier: str) -> str:
    """A MySQL identifier in backticks (backticks inside doubled)."""
    return "`" + identifier.replace("`", "``") + "`"


def load_tables(conn: Any, namespaces: Iterable[str], *, flavor: str) -> dict[str, TableInfo]:
    """TableInfo for each ``db.table`` that exists and is visible to the connected user.

    Tables that are missing (or hidden by missing privileges) are simply absent from the result.
    """
    wanted = sorted({split_namespace(n) for n in namespaces})
    if not wanted:
        return {}
    where = " OR ".join(["(TABLE_SCHEMA = %s AND TABLE_NAME = %s)"] * len(wanted))
    args = [part for pair in wanted for part in pair]
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
            f"WHERE TABLE_TYPE = 'BASE TABLE' AND ({where})",
            args,
        )
        tables = {(s, t): (engine or "", int(rows)) for s, t, engine, rows in cur.fetchall()}
        cur.execute(
            f"SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE) FROM information_schema.COLUMNS "
            f"WHERE {where} ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
            args,
        )
        columns: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for s, t, name, data_type in cur.fetchall():
            columns.setdefault((s, t), []).append((name, data_type))
        cur.execute(
            f"SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND ({where}) "
            f"ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
            args,
        )
        keys: dict[tuple[str, str], list[str]] = {}
        for s, t, name in cur.fetchall():
            keys.setdefault((s, t), []).append(name)
        json_columns: dict[tuple[str, str], set[str]] = {}
        if flavor == "mariadb":
            # MySQL's CHECK_CONSTRAINTS has no TABLE_NAME; there JSON is a real type (DATA_TYPE 'json').
            cur.execute(
                f"SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                f"WHERE {where.replace('TABLE_SCHEMA', 'CONSTRAINT_SCHEMA')}",
                args,
            )
            for s, t, clause in cur.fetchall():
                match = _JSON_VALID.match(clause or "")
                if match:
                    json_columns.setdefault((s, t), set()).add(match.group(1).replace("``", "`"))
    result: dict[str, TableInfo] = {}
    for (s, t), (engine, rows) in tables.items():
        is_json = json_columns.get((s, t), set())
        cols = tuple(
            ColumnInfo(name, data_type, data_type == "json" or name in is_json)
            for name, data_type in columns.get((s, t), [])
        )
        info = TableInfo(s, t, cols, tuple(keys.get((s, t), ())), engine, rows)
        result[info.namespace] = info
    return result
