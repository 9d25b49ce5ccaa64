"""MariaDbRowReader: a MariaDB/MySQL table read by key ranges for `worker-sync verify` (actors.engines.rows).

Canonical texts (actors.core.rowdigest) in SQL: DECIMAL without trailing zeros, ``DATE_FORMAT`` and
``TIME_FORMAT`` with microseconds (the session runs at ``+00:00``, so TIMESTAMP reads as UTC), ``HEX`` for
binary, text as utf8mb4. Each column's part is cast to binary before the row is concatenated, so columns of
different collations never meet in one CONCAT. The range digest is ``SUM`` over the first 60 bits of each
row's ``MD5``. ``%`` is doubled throughout: pymysql formats every statement it is given parameters for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

from actors.core.errors import ConfigError
from actors.core.typemap import Column, TableSchema
from actors.engines.mariadb.positions import file_sequence, order
from actors.engines.mariadb.schema import load_tables, split_namespace
from actors.engines.mariadb.table_schema import table_schema
from actors.engines.mariadb.values import SnapshotQuery, snapshot_query
from actors.engines.mariadb.writer import _Target, quote
from actors.engines.rows import RowReader, TableView

_ISO = "'%%Y-%%m-%%d %%H:%%i:%%s.%%f'"


class MariaDbRowReader(RowReader):
    def __init__(self, node: str, conn: pymysql.Connection[Any], *, flavor: str) -> None:
        super().__init__(node)
        self._conn = conn
        self._flavor = flavor
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        self._targets: dict[str, _Target] = {}
        self._captured: dict[str, SnapshotQuery] = {}

    def _target(self, namespace: str) -> _Target:
        if namespace not in self._targets:
            self._targets[namespace] = _Target(table_schema(self._conn, namespace))
        return self._targets[namespace]

    def schema(self, namespace: str) -> TableSchema:
        return self._target(namespace).schema

    def log_position(self) -> bytes:
        rows = self.fetch("SHOW MASTER STATUS", [])
        if not rows:
            return b""
        return order(file_sequence(str(rows[0][0])), int(rows[0][1]), 0)

    def quote(self, name: str) -> str:
        return quote(name)

    def qualified(self, namespace: str) -> str:
        database, table = split_namespace(namespace)
        return f"{quote(database)}.{quote(table)}"

    def placeholder(self, view: TableView, column: str) -> str:
        return "%s"

    def convert_key(self, view: TableView, column: str, value: Any) -> Any:
        convert = self._target(view.namespace).converters[column]
        return value if value is None or convert is None else convert(value)

    def canonical_sql(self, column: Column) -> str | None:
        q, family = quote(column.name), column.type.family
        text = f"CAST({q} AS CHAR)"
        forms = {
            "integer": text,
            "boolean": text,
            "decimal": f"IF(LOCATE('.', {text}) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text})), {text})",
            "text": f"CONVERT({q} USING utf8mb4)",
            "enum": f"CONVERT({q} USING utf8mb4)",
            "uuid": f"LOWER({text})",
            "bytes": f"LOWER(HEX({q}))",
            "date": f"DATE_FORMAT({q}, '%%Y-%%m-%%d')",
            "timestamp": f"DATE_FORMAT({q}, {_ISO})",
            "timestamptz": f"DATE_FORMAT({q}, {_ISO})",
            "interval": f"TIME_FORMAT({q}, '%%H:%%i:%%s.%%f')",
        }
        return forms.get(family)

    def part_sql(self, column: Column, text: str) -> str:
        return f"CAST(COALESCE(CONCAT('V', CHAR_LENGTH({text}), ':', {text}), 'N') AS BINARY)"

    def digest_sql(self, row_parts: list[str]) -> str:
        row = f"CONCAT({', '.join(row_parts)})"
        return f"COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)), 0)"

    def captured_select(self, view: TableView) -> tuple[str, Any]:
        query = self._captured.get(view.namespace)
        if query is None:
            info = load_tables(self._conn, [view.namespace], flavor=self._flavor).get(view.namespace)
            if info is None:
                raise ConfigError(
                    view.namespace, f"mariadb table `{view.namespace}` does not exist (or the user cannot see it)"
                )
            query = self._captured[view.namespace] = snapshot_query(info)
        names = query.column_names
        return query.select_list.replace("%", "%%"), lambda raw: query.plan.apply(dict(zip(names, raw, strict=True)))

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, list(params))
            return list(cur.fetchall())

    def close(self) -> None:
        self._conn.close()
