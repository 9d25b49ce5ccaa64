"""Whole-table comparison across engines: target equals source, row by row, after type normalization.

Used by the tests and by `worker-sync demo`.

``table_rows`` reads a table with the admin account and normalizes each value by its column's type family
(actors.core.typemap), so that a PostgreSQL table and its MariaDB copy compare equal exactly when they hold
the same data: integral numbers as int and other decimals as normalized Decimal (booleans as 0/1), datetimes
as naive UTC with microseconds, TIME/time/interval as timedelta, JSON parsed (numbers exact), UUIDs as
lower-case text, SET members and arrays as lists, BIT as int, CHAR without its padding.

``assert_tables_equal`` compares two tables (optionally with renamed columns), and where one side stores a
value as text and the other as a typed column it reads the text as that type first. ``checksum`` gives one
digest of a normalized table, for summaries.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import struct
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from actors.core.typemap import ColumnType, TableSchema
from actors.harness import Endpoint

Rows = dict[tuple[Any, ...], dict[str, Any]]


def _loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=decimal.Decimal)


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return value.normalize() if value.is_finite() else value
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, float):
        return _number(decimal.Decimal(repr(value)))
    return value if isinstance(value, bool | str) or value is None else _number(value)


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def normalize(value: Any, kind: ColumnType) -> Any:
    """One value in the engine-neutral form (see the module docstring)."""
    if value is None:
        return None
    family = kind.family
    if family in ("integer", "boolean", "decimal"):
        return _number(value)
    if family == "float":
        value = float(value)
        return struct.unpack("f", struct.pack("f", value))[0] if kind.bits == 24 else value
    if family == "text":
        return value.rstrip(" ") if kind.fixed and isinstance(value, str) else value
    if family == "bytes":
        return bytes(value)
    if family in ("time", "interval"):
        if isinstance(value, dt.time):
            return dt.timedelta(
                hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
            )
        return value
    if family in ("timestamp", "timestamptz"):
        return _utc(value)
    if family == "json":
        return _json_value(_loads(value) if isinstance(value, str | bytes) else value)
    if family == "uuid":
        return str(value).lower()
    if family == "array":
        element = kind.element or ColumnType(family="other")
        return [normalize(v, element) for v in value]
    if family == "set":
        if isinstance(value, str):
            return sorted(value.split(",")) if value else []
        return sorted(value)
    if family == "bit":
        if isinstance(value, bytes):
            return int.from_bytes(value, "big")
        return int(value, 2) if isinstance(value, str) else int(value)
    return value


def _from_text(text: str, kind: ColumnType) -> Any:
    """A text column's value read as the type the other side stores it as (the writers' text forms)."""
    family = kind.family
    try:
        if family in ("json", "array"):
            return normalize(_loads(text), ColumnType(family="json")) if text[:1] in '[{"' else text
        if family == "set":
            return normalize(text, kind)
        if family == "boolean":
            return {"true": 1, "false": 0}.get(text, text)
        if family in ("integer", "decimal"):
            return _number(decimal.Decimal(text))
        if family in ("timestamp", "timestamptz"):
            return _utc(dt.datetime.fromisoformat(text))
        if family == "date":
            return dt.date.fromisoformat(text)
        if family == "uuid":
            return str(uuid.UUID(text))
    except (ValueError, decimal.InvalidOperation):
        return text
    return text


def read_table(endpoint: Endpoint, namespace: str) -> tuple[TableSchema, Rows]:
    """The table's schema and its rows, normalized, keyed by the primary key (values in key order)."""
    conn = endpoint.connect("admin")
    try:
        if endpoint.engine == "postgresql":
            from actors.engines.postgresql.schema import split_namespace, table_schema

            conn.execute("SET TIME ZONE 'UTC'")
            schema = table_schema(conn, namespace)
            schema_name, table = split_namespace(namespace)
            # JSON as text, parsed here with exact numbers (and a JSON string stays told apart from text).
            names = ", ".join(
                '"' + c.name.replace('"', '""') + '"' + ("::text" if c.type.family == "json" else "")
                for c in schema.columns
            )
            qualified = '"' + schema_name.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
            raw = conn.execute(f"SELECT {names} FROM {qualified}").fetchall()
        else:
            from actors.engines.mariadb.schema import quote, split_namespace
            from actors.engines.mariadb.table_schema import table_schema

            schema = table_schema(conn, namespace)
            database, table = split_namespace(namespace)
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                names = ", ".join(quote(c.name) for c in schema.columns)
                cur.execute(f"SELECT {names} FROM {quote(database)}.{quote(table)}")
                raw = cur.fetchall()
    finally:
        conn.close()
    rows: Rows = {}
    for values in raw:
        row = {c.name: normalize(v, c.type) for c, v in zip(schema.columns, values, strict=True)}
        rows[tuple(row[k] for k in schema.primary_key)] = row
    return schema, rows


def table_rows(endpoint: Endpoint, namespace: str) -> Rows:
    """Every row of a table, normalized, keyed by the primary key values in key order."""
    return read_table(endpoint, namespace)[1]


_canonical = msgspec.json.Encoder(order="sorted", decimal_format="string")


def checksum(rows: Rows) -> str:
    """A SHA-256 over the normalized rows in key order: equal tables give equal digests."""
    digest = hashlib.sha256()
    for key in sorted(rows, key=repr):
        digest.update(_canonical.encode([repr(key), rows[key]]))
    return digest.hexdigest()


def _aligned(a_schema: TableSchema, b_schema: TableSchema, columns: Mapping[str, str]) -> list[tuple[str, str, Any]]:
    """(a column, b column, how to make b's value comparable: None or the a-side type for text)."""
    pairs = []
    for column in a_schema.columns:
        other = b_schema.column(columns.get(column.name, column.name))
        if other is None:
            raise AssertionError(f"`{b_schema.namespace}` has no column for `{a_schema.namespace}`.`{column.name}`")
        a_kind, b_kind = column.type, other.type
        hint: Any = None
        if b_kind.family == "text" and a_kind.family != "text":
            hint = ("b", a_kind)
        elif a_kind.family == "text" and b_kind.family != "text":
            hint = ("a", b_kind)
        pairs.append((column.name, other.name, hint))
    return pairs


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} chars)"


def diff_tables(
    a_endpoint: Endpoint,
    a_ns: str,
    b_endpoint: Endpoint,
    b_ns: str,
    *,
    columns: Mapping[str, str] | None = None,
    limit: int = 5,
) -> list[str]:
    """Readable differences (at most ``limit`` keys shown, plus counts); empty when the tables are equal."""
    columns = columns or {}
    a_schema, a_rows = read_table(a_endpoint, a_ns)
    b_schema, b_rows = read_table(b_endpoint, b_ns)
    pairs = _aligned(a_schema, b_schema, columns)
    only_a = [k for k in a_rows if k not in b_rows]
    only_b = [k for k in b_rows if k not in a_rows]
    differing: list[str] = []
    for key, a_row in a_rows.items():
        b_row = b_rows.get(key)
        if b_row is None:
            continue
        cells = []
        for a_col, b_col, hint in pairs:
            a_value, b_value = a_row[a_col], b_row[b_col]
            if hint is not None and isinstance(a_value if hint[0] == "a" else b_value, str):
                if hint[0] == "a":
                    a_value = _from_text(a_value, hint[1])
                else:
                    b_value = _from_text(b_value, hint[1])
            if a_value != b_value:
                cells.append(f"{a_col}: {_short(a_value)} != {_short(b_value)}")
        if cells:
            differing.append(f"key {key!r}: " + "; ".join(cells))
    problems = []
    if only_a:
        problems.append(f"{len(only_a)} rows only in {a_ns}, e.g. keys {only_a[:limit]!r}")
    if only_b:
        problems.append(f"{len(only_b)} rows only in {b_ns}, e.g. keys {only_b[:limit]!r}")
    if differing:
        problems.append(f"{len(differing)} rows differ:\n  " + "\n  ".join(differing[:limit]))
    return problems


def assert_tables_equal(
    a_endpoint: Endpoint, a_ns: str, b_endpoint: Endpoint, b_ns: str, *, columns: Mapping[str, str] | None = None
) -> None:
    """Fail with a readable diff unless the two tables hold the same rows after normalization.

    ``columns`` maps a's column names to b's where they differ (the link's ``TableMap.columns``).
    """
    problems = diff_tables(a_endpoint, a_ns, b_endpoint, b_ns, columns=columns)
    if problems:
        raise AssertionError(
            f"`{a_ns}` ({a_endpoint.engine}) != `{b_ns}` ({b_endpoint.engine}):\n" + "\n".join(problems)
        )
