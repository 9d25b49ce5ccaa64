"""PgRowReader: a PostgreSQL table read by key ranges for `worker-sync verify` (see actors.engines.rows).

Canonical texts (actors.core.rowdigest) in SQL: ``trim_scale`` for numeric, ``to_char`` for dates and times
(in UTC), ``encode(.., 'hex')`` for bytea; the range digest is ``sum`` of the first 60 bits of each row's
``md5``, so only two numbers per range leave the server. Parameters get the writer's casts and conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from actors.core.typemap import Column, TableSchema
from actors.engines.postgresql.catalog import TableInfo, row_from_text
from actors.engines.postgresql.catalog import load_table as load_captured_table
from actors.engines.postgresql.decoding import order_of
from actors.engines.postgresql.lsn import parse_lsn
from actors.engines.postgresql.schema import load_table, split_namespace
from actors.engines.postgresql.writer import _Target, quote
from actors.engines.rows import RowReader, TableView

_ISO = "YYYY-MM-DD HH24:MI:SS.US"


class PgRowReader(RowReader):
    def __init__(self, node: str, conn: psycopg.Connection[Any]) -> None:
        super().__init__(node)
        self._conn = conn
        conn.execute("SET TIME ZONE 'UTC'")
        self._targets: dict[str, _Target] = {}
        self._captured: dict[str, TableInfo] = {}

    def _target(self, namespace: str) -> _Target:
        if namespace not in self._targets:
            self._targets[namespace] = _Target(load_table(self._conn, namespace))
        return self._targets[namespace]

    def schema(self, namespace: str) -> TableSchema:
        return self._target(namespace).schema

    def log_position(self) -> bytes:
        row = self._conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return order_of(parse_lsn(row[0]), 0)

    def quote(self, name: str) -> str:
        return quote(name)

    def qualified(self, namespace: str) -> str:
        schema, table = split_namespace(namespace)
        return f"{quote(schema)}.{quote(table)}"

    def placeholder(self, view: TableView, column: str) -> str:
        return self._target(view.namespace).placeholder[column]

    def convert_key(self, view: TableView, column: str, value: Any) -> Any:
        convert = self._target(view.namespace).converters[column]
        return value if value is None or convert is None else convert(value)

    def canonical_sql(self, column: Column) -> str | None:
        q, family = quote(column.name), column.type.family
        forms = {
            "integer": f"{q}::text",
            "boolean": f"CASE WHEN {q} THEN '1' WHEN NOT {q} THEN '0' END",
            "decimal": f"trim_scale({q})::text",
            "text": f"{q}::text",
            "enum": f"{q}::text",
            "uuid": f"{q}::text",
            "bytes": f"encode({q}, 'hex')",
            "date": f"to_char({q}, 'YYYY-MM-DD')",
            "timestamp": f"to_char({q}, '{_ISO}')",
            "timestamptz": f"to_char({q} AT TIME ZONE 'UTC', '{_ISO}')",
            "time": f"to_char(DATE '2000-01-01' + {q}, 'HH24:MI:SS.US')",
        }
        return forms.get(family)

    def part_sql(self, column: Column, text: str) -> str:
        return f"coalesce('V' || length({text}) || ':' || {text}, 'N')"

    def digest_sql(self, row_parts: list[str]) -> str:
        row = " || ".join(row_parts)
        return f"count(*), coalesce(sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint), 0)"

    def captured_select(self, view: TableView) -> tuple[str, Any]:
        info = self._captured.get(view.namespace)
        if info is None:
            info = self._captured[view.namespace] = load_captured_table(
                self._conn, view.namespace, stream=f"verify {self.node}"
            )
        select = ", ".join(f"{quote(c)}::text" for c in info.columns)
        return select, lambda raw: row_from_text(info, raw)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self._conn.close()
