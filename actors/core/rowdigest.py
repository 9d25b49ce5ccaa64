"""One engine-neutral text form per value and row, and the hash `worker-sync verify` sums per key range.

A PostgreSQL ``numeric`` 1.50 and a MariaDB ``DECIMAL(14,4)`` 1.5000 hold the same value, so they must give
the same text: ``1.5``. Each engine's row reader (actors/engines/<engine>/rows.py) builds the same form in
SQL where it can, so ranges are hashed inside the database; for types without an exact SQL form (floats,
JSON, arrays, sets, bits, intervals) the rows are read as the capture types them and formed here.

Forms, by the column's type family (actors.core.typemap): integers and booleans as decimal digits
(true = 1); decimals as fixed-point text without trailing zeros; text as it is (CHAR without its padding);
bytes as lower-case hex; UUIDs lower-case; dates ``YYYY-MM-DD``; timestamps as UTC
``YYYY-MM-DD HH:MM:SS.ffffff``; time of day and durations ``[-]HH:MM:SS.ffffff``; floats as Python's
shortest repr (single precision rounded to 32 bits first); JSON, arrays and sets as sorted-key JSON with
exact numbers.

A row's text is the concatenation of ``N`` (null) or ``V<length>:<text>`` per column: unambiguous, so two
different rows never share a text. Its hash is the first 60 bits of the text's MD5, which both databases
compute natively; a range's digest is (row count, sum of row hashes), which needs no agreed row order.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import struct
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from actors.core.typemap import ColumnType

#: Hex digits of the MD5 a row hash keeps (60 bits: sums of millions of them stay exact everywhere).
HASH_HEX_DIGITS = 15

_json = msgspec.json.Encoder(order="sorted", decimal_format="number")
_json_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)


def decimal_form(value: decimal.Decimal) -> str:
    """Fixed-point text without trailing fraction zeros (``1.50`` -> ``1.5``, ``100.00`` -> ``100``)."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def duration_form(value: dt.timedelta | dt.time) -> str:
    """``[-]HH:MM:SS.ffffff`` (hours may exceed 24)."""
    if isinstance(value, dt.time):
        value = dt.timedelta(
            hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
        )
    micros = value // dt.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{sign}{hours:02d}:{minute:02d}:{second:02d}.{fraction:06d}"


def timestamp_form(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_value(value: Any) -> Any:
    """A JSON-ish value with exact, normalised numbers (so 1.0, 1 and 1.00 agree) and sets as sorted lists."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_json_value(v) for v in value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        value = decimal.Decimal(repr(value))
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return decimal.Decimal(decimal_form(value))
    if isinstance(value, dt.datetime):
        return timestamp_form(value)
    if isinstance(value, dt.date | uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta | dt.time):
        return duration_form(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _json_form(value: Any) -> str:
    if isinstance(value, str | bytes):
        try:
            value = _json_decoder.decode(value)
        except msgspec.DecodeError:
            return value if isinstance(value, str) else value.hex()
    return _json.encode(_json_value(value)).decode()


def canonical(value: Any, kind: ColumnType) -> str | None:
    """The engine-neutral text of one value of a column of type ``kind`` (None for null)."""
    if value is None:
        return None
    family = kind.family
    if isinstance(value, bool):
        return "1" if value else "0"
    if family in ("integer", "decimal", "boolean"):
        if isinstance(value, decimal.Decimal):
            return decimal_form(value)
        return str(value)
    if family == "float":
        number = float(value)
        if kind.bits == 24:
            number = struct.unpack("f", struct.pack("f", number))[0]
        return repr(number)
    if family in ("text", "enum"):
        text = value if isinstance(value, str) else str(value)
        return text.rstrip(" ") if kind.fixed else text
    if family == "bytes":
        return bytes(value).hex() if isinstance(value, bytes | bytearray | memoryview) else str(value)
    if family == "uuid":
        if isinstance(value, bytes | bytearray) and len(value) == 16:
            value = uuid.UUID(bytes=bytes(value))
        return str(value).lower()
    if family == "date":
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if family in ("timestamp", "timestamptz") and isinstance(value, dt.datetime):
        return timestamp_form(value)
    if family in ("time", "interval") and isinstance(value, dt.timedelta | dt.time):
        return duration_form(value)
    if family == "set":
        members = value.split(",") if isinstance(value, str) else value
        return _json.encode(sorted(str(m) for m in members if m != "")).decode()
    if family in ("json", "array"):
        return _json_form(value)
    if family == "bit":
        if isinstance(value, bytes | bytearray):
            return str(int.from_bytes(value, "big"))
        return str(int(value, 2)) if isinstance(value, str) else str(int(value))
    return str(value)


def row_text(values: Sequence[str | None]) -> str:
    """A row's canonical texts as one unambiguous string (``N`` or ``V<length>:<text>`` per column)."""
    return "".join("N" if v is None else f"V{len(v)}:{v}" for v in values)


def row_hash(values: Sequence[str | None]) -> int:
    """What the databases' ``md5`` over :func:`row_text` gives, as the summed 60-bit integer."""
    return int(hashlib.md5(row_text(values).encode(), usedforsecurity=False).hexdigest()[:HASH_HEX_DIGITS], 16)
