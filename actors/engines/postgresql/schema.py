"""A PostgreSQL table's columns in the shared type vocabulary (actors.core.typemap), from pg_catalog.

Used twice: by the supervisor's start-up mapping check (either side of a link) and by PostgresWriter,
which also needs what to cast each parameter to. Type modifiers are decoded from ``atttypmod`` the way
``format_type`` does; domains are read through to their base type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg

from actors.core.errors import ConfigError
from actors.core.typemap import Column, ColumnType, Family, TableSchema

_COLUMNS_SQL = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       CASE t.typname  -- "character" and "bit" without a modifier mean length 1: cast to the varying kinds
           WHEN 'bpchar' THEN 'text' WHEN '_bpchar' THEN 'text[]'
           WHEN 'bit' THEN 'bit varying' WHEN '_bit' THEN 'bit varying[]'
           ELSE format_type(a.atttypid, NULL) END,
       bt.typname, bt.typtype, et.typname, et.typtype,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)),
       (a.atthasdef AND a.attgenerated = '') OR a.attidentity <> '',
       a.attgenerated <> '',
       a.attidentity = 'a',
       (SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) WHERE k.attnum = a.attnum),
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
          FROM pg_enum e WHERE e.enumtypid = coalesce(et.oid, bt.oid))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_INTEGERS = {"int2": 16, "int4": 32, "int8": 64}
_TIMES: dict[str, Family] = {"time": "time", "timestamp": "timestamp", "timestamptz": "timestamptz"}
_PLAIN: dict[str, ColumnType] = {
    "bool": ColumnType(family="boolean", name="boolean"),
    "text": ColumnType(family="text", name="text"),
    "bytea": ColumnType(family="bytes", name="bytea"),
    "date": ColumnType(family="date", name="date"),
    "json": ColumnType(family="json", name="json"),
    "jsonb": ColumnType(family="json", name="jsonb"),
    "uuid": ColumnType(family="uuid", name="uuid"),
    "float4": ColumnType(family="float", name="real", bits=24),
    "float8": ColumnType(family="float", name="double precision", bits=53),
    "oid": ColumnType(family="integer", name="oid", bits=32, unsigned=True),
    "name": ColumnType(family="text", name="name", length=63),
}


def column_type(
    typname: str, typtype: str, typmod: int, *, labels: tuple[str, ...] = (), charset: str | None = None, name: str = ""
) -> ColumnType:
    """The ColumnType of one (base) type; ``typmod`` as in pg_attribute (-1: none)."""
    return msgspec.structs.replace(_column_type(typname, typtype, typmod, labels, charset), name=name or typname)


def _column_type(typname: str, typtype: str, typmod: int, labels: tuple[str, ...], charset: str | None) -> ColumnType:
    if typname in _INTEGERS:
        return ColumnType(family="integer", bits=_INTEGERS[typname])
    if typname in _PLAIN:
        plain = _PLAIN[typname]
        return msgspec.structs.replace(plain, charset=charset) if plain.family == "text" else plain
    if typname == "numeric":
        if typmod < 4:
            return ColumnType(family="decimal")
        scale = (typmod - 4) & 0x7FF
        scale = scale - 0x800 if scale & 0x400 else scale  # PostgreSQL 15 allows negative scales
        return ColumnType(family="decimal", precision=((typmod - 4) >> 16) & 0xFFFF, scale=scale)
    if typname in ("varchar", "bpchar"):
        length = typmod - 4 if typmod >= 4 else None
        if typname == "bpchar" and length is None:
            length = 1  # bare "character" is character(1)
        return ColumnType(family="text", length=length, fixed=typname == "bpchar", charset=charset)
    if typname in _TIMES:
        return ColumnType(family=_TIMES[typname], precision=None if typmod < 0 else typmod)
    if typname == "interval":
        precision = typmod & 0xFFFF if typmod >= 0 else 0xFFFF  # the low 16 bits; 0xFFFF: full precision
        return ColumnType(family="interval", precision=None if precision == 0xFFFF else precision)
    if typname in ("bit", "varbit"):
        return ColumnType(family="bit", length=typmod if typmod >= 0 else None, fixed=typname == "bit")
    if typtype == "e":
        return ColumnType(family="enum", labels=labels)
    return ColumnType(family="other")


@dataclass(frozen=True)
class PgTable:
    """What the writer needs beyond TableSchema: the type each parameter is cast to (no modifiers, so
    that a value too long for varchar(n) fails instead of being truncated by the cast) and whether
    inserts need OVERRIDING SYSTEM VALUE (GENERATED ALWAYS identity columns)."""

    schema: TableSchema
    casts: dict[str, str]
    identity_always: frozenset[str]


def split_namespace(namespace: str) -> tuple[str, str]:
    schema, dot, table = namespace.partition(".")
    if not dot or not schema or not table:
        raise ConfigError(namespace, f"postgresql table `{namespace}` must be written `schema.table`")
    return schema, table


def load_table(conn: psycopg.Connection[Any], namespace: str) -> PgTable:
    """Read a table; ConfigError when it does not exist (or is not visible) or has no primary key."""
    schema, table = split_namespace(namespace)
    found = conn.execute(
        "SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s))::oid, "
        "pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()",
        (schema, table),
    ).fetchone()
    if found is None or found[0] is None:
        raise ConfigError(
            namespace,
            f"postgresql table `{namespace}` does not exist in database "
            f"`{conn.info.dbname}` (or the user `{conn.info.user}` cannot see it)",
        )
    oid, encoding = found
    charset = None if encoding == "UTF8" else encoding.lower()
    columns, casts, identity, key = [], {}, set(), []
    for (
        attname,
        type_text,
        cast,
        typname,
        typtype,
        elem,
        elemtype,
        typmod,
        nullable,
        has_default,
        generated,
        always,
        key_pos,
        labels,
    ) in conn.execute(_COLUMNS_SQL, (oid,)).fetchall():
        labels_t = tuple(labels or ())
        if elem is not None:
            element = column_type(elem, elemtype, typmod, labels=labels_t, charset=charset)
            kind = ColumnType(family="array", name=type_text, element=element)
        else:
            kind = column_type(typname, typtype, typmod, labels=labels_t, charset=charset, name=type_text)
        columns.append(
            Column(
                name=attname,
                type=kind,
                type_text=type_text,
                nullable=nullable,
                has_default=has_default,
                generated=generated,
            )
        )
        casts[attname] = cast
        if always:
            identity.add(attname)
        if key_pos:
            key.append((key_pos, attname))
    if not key:
        raise ConfigError(
            namespace,
            f"postgresql table `{namespace}` has no primary key; add one (Worker-Sync applies changes by key)",
        )
    primary_key = tuple(name for _, name in sorted(key))
    return PgTable(
        TableSchema(namespace=namespace, columns=tuple(columns), primary_key=primary_key), casts, frozenset(identity)
    )


def table_schema(conn: psycopg.Connection[Any], namespace: str) -> TableSchema:
    """Columns in order with their types, and the primary key in key order (see load_table for errors)."""
    return load_table(conn, namespace).schema
