"""Captured Python values reshaped for a target column: the conversions both writers share.

Pure functions, no drivers. Each raises ValueError with a reason when a value cannot be stored exactly;
the writer turns that into a SinkError naming the table, the key and the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import msgspec

# Exact decimals stay exact inside JSON (a Decimal is written as a JSON number, not a string or a float).
_json_encoder = msgspec.json.Encoder(decimal_format="number")


def json_text(value: Any) -> str:
    """A JSON document as text; Decimal as an exact number, datetime/UUID as strings (msgspec's forms)."""
    try:
        return _json_encoder.encode(value).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"cannot write a `{type(value).__name__}` value as JSON: {exc}") from None


def utc_naive(value: dt.datetime) -> dt.datetime:
    """A datetime as naive UTC: aware ones are converted, naive ones are taken to be UTC already."""
    return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def utc_aware(value: dt.datetime) -> dt.datetime:
    """A datetime as aware UTC; naive ones are taken to be UTC (the convention of every capture)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def duration_text(value: dt.timedelta) -> str:
    """``[-]HH:MM:SS[.ffffff]`` with hours beyond 24: MariaDB TIME's own form (pymysql's is wrong below zero)."""
    micros = value // dt.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def time_of_day(value: dt.timedelta | dt.time) -> dt.time:
    """A duration in [0, 24 h) as a time of day (MariaDB TIME -> PostgreSQL time)."""
    if isinstance(value, dt.time):
        return value
    if not dt.timedelta(0) <= value < dt.timedelta(days=1):
        raise ValueError(f"duration {duration_text(value)} is not a time of day (00:00:00 to 23:59:59.999999)")
    return (dt.datetime.min + value).time()


def duration(value: dt.time | dt.timedelta) -> dt.timedelta:
    """A time of day as the duration since midnight (PostgreSQL time -> MariaDB TIME / interval)."""
    if isinstance(value, dt.timedelta):
        return value
    return dt.timedelta(hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond)


def decimal_text(value: decimal.Decimal) -> str:
    """Fixed-point text (``1E+3`` -> ``1000``): SQL reads exponent notation as a float, losing exactness."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return format(value, "f")


def finite(value: float) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} cannot be stored in a MariaDB/MySQL number column")
    return value


def integer(value: Any) -> Any:
    """bool -> int; an integral Decimal -> int; other values unchanged (the server checks them)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


def boolean(value: Any) -> Any:
    """0/1 (MariaDB tinyint(1)) -> bool; other integers are refused rather than guessed."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    if value in (0, 1):
        return bool(value)
    raise ValueError(f"{value} is not a boolean (0 or 1)")


def bit_string(value: Any, length: int | None, fixed: bool) -> Any:
    """An integer (MariaDB BIT) as a PostgreSQL bit string, padded to ``length`` for bit(n)."""
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        return value
    if value < 0:
        raise ValueError(f"{value} is negative: not a bit string")
    text = format(value, "b")
    if length is not None and len(text) > length:
        raise ValueError(f"{value} needs {len(text)} bits, the column holds {length}")
    return text.zfill(length) if fixed and length else text


def bit_integer(value: Any) -> Any:
    """A PostgreSQL bit string ('0101') as the integer MariaDB BIT takes."""
    if isinstance(value, str):
        if value and set(value) <= {"0", "1"}:
            return int(value, 2)
        raise ValueError(f"{value!r} is not a bit string")
    return int(value) if isinstance(value, bool) else value


def uuid_value(value: Any) -> Any:
    """16 bytes (BINARY(16)) -> UUID; other values unchanged."""
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 16:
        return uuid.UUID(bytes=bytes(value))
    return value


def binary(value: Any) -> Any:
    """bytes-like -> bytes; text as UTF-8; a UUID as its 16 bytes."""
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, uuid.UUID):
        return value.bytes
    return value


def set_text(value: Any) -> Any:
    """A SET's member list as MariaDB's comma text."""
    if not isinstance(value, list | tuple | set | frozenset):
        return value
    members = sorted(str(m) for m in value)
    for member in members:
        if "," in member:
            raise ValueError(f"set member {member!r} contains a comma")
    return ",".join(members)


def text(value: Any) -> Any:
    """The text form of any captured value, for CHAR/VARCHAR/TEXT columns (the forms loss() measures).

    Lists of strings (SET members) become comma text, other lists and dicts JSON, bytes ``\\x`` + hex.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | uuid.UUID):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return decimal_text(value) if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(sep=" ") if value.tzinfo else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) and "," not in v for v in value):
        return ",".join(value)
    if isinstance(value, list | tuple | dict):
        return json_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()  # PostgreSQL's bytea text form
    raise ValueError(f"a `{type(value).__name__}` value has no text form")
