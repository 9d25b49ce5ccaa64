"""A MariaDB/MySQL table's columns in the shared type vocabulary (actors.core.typemap), from information_schema.

Used by the supervisor's start-up mapping check (either side of a link) and by MariaDbWriter. The capture's
own ``schema.py`` reads less (names and data types); JSON detection and the key come from it, so that
capture and apply agree on which LONGTEXT columns are MariaDB JSON.
"""

from __future__ import annotations

import re
from typing import Any

from actors.core.errors import ConfigError
from actors.core.typemap import Column, ColumnType, TableSchema
from actors.engines.mariadb.schema import load_tables, split_namespace

_COLUMNS_SQL = (
    "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_MAXIMUM_LENGTH, "
    "CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, EXTRA "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)
_INTEGERS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}
#: Largest value of each TEXT/BLOB type in bytes; None: LONGTEXT/LONGBLOB (4 GiB, more than any source value).
_LOB_BYTES = {
    "tinytext": 255,
    "text": 65535,
    "mediumtext": 16777215,
    "longtext": None,
    "tinyblob": 255,
    "blob": 65535,
    "mediumblob": 16777215,
    "longblob": None,
}
_CHAR_BYTES = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2, "utf16": 4, "utf16le": 4, "utf32": 4}
_FULL_UNICODE = frozenset({"utf8mb4", "utf16", "utf16le", "utf32"})
_LABEL = re.compile(r"'((?:[^']|'')*)'")


def _labels(column_type: str) -> tuple[str, ...]:
    """Members of ``enum('a','b''c')`` / ``set(...)`` as declared."""
    body = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.group(1).replace("''", "'") for m in _LABEL.finditer(body))


def column_type(row: tuple[Any, ...], *, is_json: bool = False) -> ColumnType:
    """The ColumnType of one information_schema.COLUMNS row (as selected by _COLUMNS_SQL)."""
    _, data_type, declared, _, _, char_max, octets, num_precision, num_scale, dt_precision, charset, _ = row
    declared = declared.lower()
    text_charset = None if charset is None or charset.lower() in _FULL_UNICODE else charset.lower()
    if is_json or data_type == "json":
        return ColumnType(family="json", name=declared)
    if data_type in _INTEGERS:
        if declared == "tinyint(1)":
            return ColumnType(family="boolean", name=declared, bits=8)
        return ColumnType(family="integer", name=declared, bits=_INTEGERS[data_type], unsigned="unsigned" in declared)
    if data_type in ("decimal", "numeric"):
        return ColumnType(
            family="decimal", name=declared, precision=num_precision, scale=num_scale, unsigned="unsigned" in declared
        )
    if data_type in ("float", "double", "real"):
        return ColumnType(family="float", name=declared, bits=24 if data_type == "float" else 53, scale=num_scale)
    if data_type in ("char", "varchar"):
        return ColumnType(
            family="text", name=declared, length=char_max, fixed=data_type == "char", charset=text_charset
        )
    if data_type in ("binary", "varbinary"):
        return ColumnType(family="bytes", name=declared, length=octets, fixed=data_type == "binary")
    if data_type in _LOB_BYTES:
        limit = _LOB_BYTES[data_type]
        if data_type.endswith("blob"):
            return ColumnType(family="bytes", name=declared, length=limit)
        chars = None if limit is None else limit // _CHAR_BYTES.get((charset or "").lower(), 1)
        return ColumnType(family="text", name=declared, length=chars, charset=text_charset)
    if data_type == "date":
        return ColumnType(family="date", name=declared)
    if data_type == "datetime":
        return ColumnType(family="timestamp", name=declared, precision=dt_precision or 0)
    if data_type == "timestamp":
        return ColumnType(family="timestamptz", name=declared, precision=dt_precision or 0, bits=32)
    if data_type == "time":
        return ColumnType(family="interval", name=declared, precision=dt_precision or 0, max_hours=838)
    if data_type == "year":
        return ColumnType(family="integer", name="year", bits=16)
    if data_type in ("enum", "set"):
        return ColumnType(family=data_type, name=declared, labels=_labels(declared))
    if data_type == "bit":
        return ColumnType(family="bit", name=declared, length=num_precision, fixed=True)
    if data_type == "uuid":
        return ColumnType(family="uuid", name=declared)
    return ColumnType(family="other", name=declared)


def _generated(extra: str) -> bool:
    extra = (extra or "").upper()
    return any(word in extra for word in ("VIRTUAL", "STORED", "PERSISTENT"))


def table_schema(conn: Any, namespace: str) -> TableSchema:
    """Columns in order with their types, and the primary key in key order.

    ConfigError when the table does not exist (or the user cannot see it) or has no primary key.
    """
    try:
        database, table = split_namespace(namespace)
    except ValueError as exc:
        raise ConfigError(namespace, f"mariadb table: {exc}") from None
    flavor = "mariadb" if "mariadb" in conn.get_server_info().lower() else "mysql"
    info = load_tables(conn, [namespace], flavor=flavor).get(namespace)
    if info is None:
        raise ConfigError(namespace, f"mariadb table `{namespace}` does not exist (or the user cannot see it)")
    if not info.primary_key:
        raise ConfigError(
            namespace, f"mariadb table `{namespace}` has no primary key; add one (Worker-Sync applies changes by key)"
        )
    json_columns = info.json_columns
    with conn.cursor() as cur:
        cur.execute(_COLUMNS_SQL, (database, table))
        rows = cur.fetchall()
    columns = tuple(
        Column(
            name=row[0],
            type=column_type(row, is_json=row[0] in json_columns),
            type_text=row[2].lower(),
            nullable=row[3] == "YES",
            has_default=row[4] is not None or "auto_increment" in (row[11] or "").lower(),
            generated=_generated(row[11]),
        )
        for row in rows
    )
    return TableSchema(namespace=namespace, columns=columns, primary_key=info.primary_key)
