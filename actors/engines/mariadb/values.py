"""Column values as Python values: the same value whether a row comes from the binlog or from a snapshot.

Two decoders meet here: mysql-replication (binlog rows) and pymysql (snapshot SELECTs, text protocol).
They disagree in places; each table gets a conversion plan once (per table map, or per snapshot table),
so the per-row cost is one loop over only the columns that need fixing.

=====================  ========================  ==================================================
SQL type               Python value              quirks fixed here
=====================  ========================  ==================================================
TINYINT..BIGINT        int (UNSIGNED exact)      -
DECIMAL                decimal.Decimal, exact,   -
                       with the column's scale
FLOAT                  float: the exact binary32 pymysql reads FLOAT as text rounded to 6 digits
                       value (1.1 -> 1.100000023  (1.1); the snapshot selects CAST(col AS DOUBLE)
                       841858)                    so both paths give the stored value
DOUBLE                 float                     -
DATETIME               naive datetime, with      zero dates ('0000-00-00') come out as None
                       fractional seconds
TIMESTAMP              aware datetime in UTC     binlog gives naive UTC; the snapshot session runs
                                                  with time_zone '+00:00'; both get tzinfo=UTC
DATE                   datetime.date             zero dates -> None
TIME                   datetime.timedelta        (negative and > 24 h values are exact)
YEAR                   int                       mysql-replication adds 1900 to the stored byte, so
                                                  YEAR 0000 arrives as 1900 (not a valid YEAR): -> 0
CHAR/VARCHAR/TEXT      str                       CHAR trailing spaces are stripped by both paths
BINARY                 bytes, padded to its      the binlog strips trailing 0x00 bytes; they are put
                       length with 0x00          back (the column's max_length)
VARBINARY/BLOB         bytes                     an empty value arrives as '' (str): -> b''
                                                  (also for BINARY)
JSON                   dict/list/str/int/float/  MariaDB: JSON is LONGTEXT + CHECK json_valid(), so
                       bool/None, str keys       both paths give text -> json.loads. MySQL: binary
                                                  JSON from the binlog may hold bytes keys/strings
                                                  -> decoded as UTF-8
ENUM                   str ('' for the invalid   needs binlog_row_metadata=FULL (else the binlog
                       value, index 0)           gives no labels)
SET                    sorted list of str        msgpack has no set type; mysql-replication gives a
                       (code-point order)        Python set, and an EMPTY set as None (told apart
                                                  from NULL by its none_sources); pymysql gives
                                                  'a,b' text
BIT                    int                       binlog gives a '0101' string, pymysql bytes
GEOMETRY               bytes (internal WKB)      not converted
=====================  ========================  ==================================================
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE

from actors.engines.mariadb.schema import TableInfo, quote

Converter = Callable[[Any], Any]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def _year(value: int) -> int:
    return 0 if value == 1900 else value


def _bits_text(value: str) -> int:
    return int(value, 2) if value else 0


def _bits_bytes(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _set_members(value: Any) -> list[str]:
    if isinstance(value, str):
        return sorted(value.split(",")) if value else []
    return sorted(value)


def _json_text(value: str | bytes) -> Any:
    return json.loads(value)


def _json_tree(value: Any) -> Any:
    """MySQL binary JSON as decoded by mysql-replication: bytes keys and strings become str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {_json_tree(k): _json_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_tree(v) for v in value]
    return value


def _binary(value: bytes | str) -> bytes:
    # mysql-replication "decodes" binary columns with the codec "binary", which does not exist: it keeps
    # the bytes, except for an empty value, where Python's b"".decode(<any name>) returns "".
    return value if isinstance(value, bytes) else value.encode()


def _pad_binary(length: int) -> Converter:
    def pad(value: bytes | str) -> bytes:
        return _binary(value).ljust(length, b"\0")

    return pad


_BINARY_CAPABLE = frozenset({FIELD_TYPE.STRING, FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.BLOB})


def _negative_time2(value: dt.timedelta) -> dt.timedelta:
    """mysql-replication misreads negative TIME(n) values with a fraction (TIME2 format): for
    '-12:34:56.789' it returns -12:34:56.211. TIME2 stores such a value as -(seconds + 1) plus
    (1 - fraction); the library un-complements the fraction but keeps the extra second, so we
    give back 2 x fraction - 1 s. Values without a fraction, and positive ones, are right."""
    if value.days < 0 and value.microseconds:
        return value - dt.timedelta(microseconds=2 * value.microseconds) + dt.timedelta(seconds=1)
    return value


@dataclass(frozen=True)
class RowPlan:
    """What to fix in each row of one table: ``(column, converter)`` pairs and the SET columns."""

    converters: tuple[tuple[str, Converter], ...] = ()
    set_columns: tuple[str, ...] = ()

    def apply(self, row: dict[str, Any], none_sources: dict[str, str] | None = None) -> dict[str, Any]:
        """Fix ``row`` in place (and return it). ``none_sources`` is mysql-replication's per-row note of
        why a value is None, which is how an empty SET differs from NULL."""
        for name, convert in self.converters:
            value = row[name]
            if value is not None:
                row[name] = convert(value)
        for name in self.set_columns:
            value = row[name]
            if value is not None:
                row[name] = _set_members(value)
            elif none_sources and none_sources.get(name) == NONE_SOURCE.EMPTY_SET:
                row[name] = []
        return row


def binlog_plan(columns: Sequence[Any], info: TableInfo, flavor: str) -> RowPlan:
    """The plan for rows decoded by mysql-replication, from one table map's columns
    (``pymysqlreplication.column.Column``: ``name``, ``type``, ``character_set_name``, ``max_length``)."""
    json_columns = info.json_columns
    converters: list[tuple[str, Converter]] = []
    set_columns: list[str] = []
    for column in columns:
        name, kind = column.name, column.type
        convert: Converter | None = None
        if kind in (FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2):
            convert = _utc
        elif kind == FIELD_TYPE.YEAR:
            convert = _year
        elif kind == FIELD_TYPE.TIME2:
            convert = _negative_time2
        elif kind == FIELD_TYPE.BIT:
            convert = _bits_text
        elif kind == FIELD_TYPE.SET:
            set_columns.append(name)
        elif kind == FIELD_TYPE.JSON:
            convert = _json_tree
        elif name in json_columns:
            convert = _json_text
        elif kind in _BINARY_CAPABLE and getattr(column, "character_set_name", None) == "binary":
            convert = _pad_binary(column.max_length) if kind == FIELD_TYPE.STRING else _binary
        if convert is not None:
            converters.append((name, convert))
    del flavor  # both flavours decode alike today; kept so a flavour-specific fix has a place
    return RowPlan(tuple(converters), tuple(set_columns))


@dataclass(frozen=True)
class SnapshotQuery:
    """How to SELECT one table so that pymysql's values match the binlog's after ``plan``."""

    select_list: str
    plan: RowPlan
    column_names: tuple[str, ...]


def snapshot_query(info: TableInfo) -> SnapshotQuery:
    expressions: list[str] = []
    converters: list[tuple[str, Converter]] = []
    set_columns: list[str] = []
    for column in info.columns:
        q = quote(column.name)
        if column.data_type == "float":
            expressions.append(f"CAST({q} AS DOUBLE) AS {q}")
        else:
            expressions.append(q)
        if column.data_type == "timestamp":
            converters.append((column.name, _utc))
        elif column.data_type == "bit":
            converters.append((column.name, _bits_bytes))
        elif column.data_type == "set":
            set_columns.append(column.name)
        elif column.is_json:
            converters.append((column.name, _json_text))
    return SnapshotQuery(
        ", ".join(expressions), RowPlan(tuple(converters), tuple(set_columns)), tuple(c.name for c in info.columns)
    )
