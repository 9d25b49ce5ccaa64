"""PostgreSQL column values -> Python values, by type name.

wal2json (format 2) writes numbers as JSON numbers (decoded as Decimal, so numeric stays
exact), booleans as JSON booleans, and everything else as the type's text output. The snapshot
selects every column as text and runs it through the same converters, so a row read by the
snapshot and the same row in the change stream give equal values by construction.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

Converter = Callable[[Any], Any]


def _to_int(value: Any) -> Any:
    return int(value)


def _to_float(value: Any) -> Any:
    return float(value)  # also "NaN", "Infinity", "-Infinity", which arrive as strings


def _to_decimal(value: Any) -> Any:
    return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))


def _to_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else value in ("t", "true")


def _to_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("\\x") else value)


def _timestamp(value: str) -> Any:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return value  # 'infinity', BC dates: kept as text, the writer decides


def _timestamptz(value: str) -> Any:
    parsed = _timestamp(value)
    return parsed.astimezone(dt.UTC) if isinstance(parsed, dt.datetime) else parsed


def _date(value: str) -> Any:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return value


def _time(value: str) -> Any:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        return value  # 24:00:00


_json_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)


def _json(value: str) -> Any:
    return _json_decoder.decode(value)


SCALARS: dict[str, Converter] = {
    "smallint": _to_int,
    "integer": _to_int,
    "bigint": _to_int,
    "oid": _to_int,
    "numeric": _to_decimal,
    "real": _to_float,
    "double precision": _to_float,
    "boolean": _to_bool,
    "bytea": _to_bytes,
    "timestamp without time zone": _timestamp,
    "timestamp with time zone": _timestamptz,
    "date": _date,
    "time without time zone": _time,
    "uuid": uuid.UUID,
    "json": _json,
    "jsonb": _json,
}


def parse_array(text: str, element: Converter) -> list[Any] | str:
    """A one-dimensional PostgreSQL array literal (``{1,2,NULL,"a b"}``) as a list.

    Multi-dimensional arrays and arrays with explicit bounds stay text.
    """
    if not (text.startswith("{") and text.endswith("}")) or text.startswith("{{"):
        return text
    items: list[Any] = []
    body = text[1:-1]
    i, n = 0, len(body)
    while i < n:
        if body[i] == '"':
            j, chars = i + 1, []
            while body[j] != '"':
                if body[j] == "\\":
                    j += 1
                chars.append(body[j])
                j += 1
            items.append(element("".join(chars)))
            i = j + 2  # closing quote and comma
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            token = body[i:j]
            items.append(None if token == "NULL" else element(token))
            i = j + 1
    return items


def _text_element(base: str) -> Converter:
    convert = SCALARS.get(base)
    if convert is None:
        return str
    if base in ("smallint", "integer", "bigint", "oid"):
        return int
    if base in ("numeric",):
        return decimal.Decimal
    if base in ("real", "double precision"):
        return float
    if base == "boolean":
        return lambda token: token == "t"
    if base == "bytea":
        return _to_bytes
    return convert


def converter_for(type_name: str) -> Converter | None:
    """The converter for a wal2json type name (without typmod); None means keep the value."""
    if type_name.endswith("[]"):
        element = _text_element(type_name[:-2])
        return lambda value: parse_array(value, element) if isinstance(value, str) else value
    return SCALARS.get(type_name)
