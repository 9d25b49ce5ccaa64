"""What the capture needs to know about each table: columns, types, key, replica identity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from actors.core.errors import SourceMisconfigured
from actors.engines.postgresql.values import Converter, converter_for


@dataclass(frozen=True)
class TableInfo:
    namespace: str  # "schema.table"
    columns: tuple[str, ...]
    types: tuple[str, ...]
    key: tuple[str, ...]
    #: True with REPLICA IDENTITY FULL: before-images carry every column.
    full_identity: bool
    converters: dict[str, Converter | None]
    #: NOT NULL numeric and floating-point columns: where a null from wal2json before 2.6 means NaN or
    #: ±Infinity (it writes them as null).
    special_numbers: frozenset[str] = frozenset()

    def convert(self, name: str, value: object) -> object:
        convert = self.converters.get(name)
        return value if convert is None or value is None else convert(value)

    def row(self, columns: Iterable[Any]) -> dict[str, Any]:
        """A row from wal2json columns (objects with ``name`` and ``value``): the hot path."""
        converters = self.converters
        row = {}
        for column in columns:
            value = column.value
            if value is not None:
                convert = converters[column.name]
                if convert is not None:
                    value = convert(value)
            row[column.name] = value
        return row


def row_from_text(table: TableInfo, values: tuple[Any, ...]) -> dict[str, Any]:
    """A row whose every column was read as its text output (the snapshot's SELECT) converted like a streamed one."""
    return {name: table.convert(name, value) for name, value in zip(table.columns, values, strict=True)}


#: Types with NaN (and, but numeric before PostgreSQL 14, ±Infinity).
SPECIAL_NUMBER_TYPES = frozenset({"numeric", "real", "double precision"})

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, NULL), coalesce(a.attnum = ANY(i.indkey), false), c.relreplident,
       a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.oid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def load_table(conn: psycopg.Connection, namespace: str, *, stream: str) -> TableInfo:
    """Read a table's shape; refuse tables the capture cannot handle correctly."""
    schema, _, table = namespace.partition(".")
    if not table:
        raise SourceMisconfigured(f"postgresql stream `{stream}`: table `{namespace}` must be written `schema.table`")
    try:
        rows = conn.execute(_COLUMNS_SQL, (f'"{schema}"."{table}"',)).fetchall()
    except psycopg.errors.UndefinedTable:
        raise SourceMisconfigured(f"postgresql stream `{stream}`: table `{namespace}` does not exist") from None
    key = tuple(name for name, _, is_key, _, _ in rows if is_key)
    if not key:
        raise SourceMisconfigured(
            f"postgresql stream `{stream}`: table `{namespace}` has no primary key; add one "
            "(Worker-Sync routes and applies changes by key)"
        )
    return TableInfo(
        namespace=namespace,
        columns=tuple(r[0] for r in rows),
        types=tuple(r[1] for r in rows),
        key=key,
        full_identity=rows[0][3] == "f",
        converters={r[0]: converter_for(r[1]) for r in rows},
        special_numbers=frozenset(r[0] for r in rows if r[4] and r[1] in SPECIAL_NUMBER_TYPES),
    )
