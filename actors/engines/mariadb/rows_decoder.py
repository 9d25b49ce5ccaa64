"""Binlog rows events decoded straight from their bytes, for tables of common column types.

Why: mysql-replication decodes every value through several Python calls (its packet wrapper's ``read``,
pymysql's packet ``read``, ``struct.unpack``, a per-row ``none_sources`` dict), and that is where a
MariaDB/MySQL stream spends its time (FACTS.md: ~4k rows/s for a realistic mix). Here each table gets, once
per table map, one reader per column that takes its value from a ``bytes`` at an offset; a row is one loop
over those readers. The values are the final ones (what ``values.binlog_plan`` makes of the library's):
TIMESTAMP in UTC, TIME exact when negative, YEAR 0, BIT as int, SET as a sorted list (empty: ``[]``), binary
strings as bytes (BINARY padded), MariaDB JSON text parsed.

Only the format of rows is ours: the library still reads the table map (column types, metadata, names), and
the event header and columns-present bitmaps unless ``fast_events.FastReader`` read them. A table with any
other column type (GEOMETRY, MySQL binary JSON, pre-5.6 temporal formats, an unknown charset) keeps the
library's decoding (``LeanRows.for_table`` returns None). ``tests/engines/test_rows_decoder.py`` checks both
give equal rows for every supported type.

Formats: MySQL internals, "Rows events" and "Date and time data type representation"; DECIMAL as in
``decimal2bin``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import struct
from collections.abc import Callable, Sequence
from typing import Any

from pymysql.charset import charset_by_name
from pymysqlreplication.constants import FIELD_TYPE

from actors.engines.mariadb.fast_events import RowsSlice
from actors.engines.mariadb.schema import TableInfo

#: (bytes, offset) -> (value, offset after it).
Reader = Callable[[bytes, int], tuple[Any, int]]
Row = dict[str, Any]

_EPOCH = dt.datetime(1970, 1, 1)
_UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DECIMAL_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..9 leftover digits of a DECIMAL part
_FSP_BYTES = (0, 1, 1, 2, 2, 3, 3)  # bytes of the fraction, by fractional seconds precision


def _fixed(fmt: str) -> Reader:
    unpack = struct.Struct(fmt).unpack_from
    size = struct.calcsize(fmt)

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        return unpack(buf, at)[0], at + size

    return read


def _int24(unsigned: bool) -> Reader:
    def read(buf: bytes, at: int) -> tuple[Any, int]:
        return int.from_bytes(buf[at : at + 3], "little", signed=not unsigned), at + 3

    return read


def _length(size: int) -> Callable[[bytes, int], int]:
    if size == 1:
        return lambda buf, at: buf[at]
    return lambda buf, at: int.from_bytes(buf[at : at + size], "little")


def _text(prefix: int, encoding: str, as_json: bool) -> Reader:
    length_of = _length(prefix)

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        n = length_of(buf, at)
        at += prefix
        value: Any = buf[at : at + n].decode(encoding)
        return (json.loads(value) if as_json else value), at + n

    return read


def _binary(prefix: int, pad_to: int) -> Reader:
    length_of = _length(prefix)

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        n = length_of(buf, at)
        at += prefix
        value = buf[at : at + n]
        return (value.ljust(pad_to, b"\0") if pad_to else value), at + n

    return read


def _fraction(fsp: int) -> Callable[[bytes, int], int]:
    """Microseconds of an unsigned stored fraction (DATETIME2, TIMESTAMP2)."""
    size = _FSP_BYTES[fsp]
    scale = 10 ** (6 - fsp)
    odd = fsp % 2 == 1

    def micro(buf: bytes, at: int) -> int:
        value = int.from_bytes(buf[at : at + size], "big")
        if odd:
            value //= 10
        return value * scale

    return micro


def _datetime2(fsp: int) -> Reader:
    size = 5 + _FSP_BYTES[fsp]
    micro = _fraction(fsp)

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        packed = int.from_bytes(buf[at : at + 5], "big")
        year_month = (packed >> 22) & 0x1FFFF
        try:
            value = dt.datetime(
                year_month // 13,
                year_month % 13,
                (packed >> 17) & 0x1F,
                (packed >> 12) & 0x1F,
                (packed >> 6) & 0x3F,
                packed & 0x3F,
                micro(buf, at + 5) if fsp else 0,
            )
        except ValueError:
            value = None  # a zero date ('0000-00-00 ...'), as the library gives it
        return value, at + size

    return read


def _timestamp2(fsp: int) -> Reader:
    size = 4 + _FSP_BYTES[fsp]
    micro = _fraction(fsp)

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        seconds = int.from_bytes(buf[at : at + 4], "big")
        micros = micro(buf, at + 4) if fsp else 0
        return _UTC_EPOCH + dt.timedelta(seconds=seconds, microseconds=micros), at + size

    return read


def _time2(fsp: int) -> Reader:
    """TIME2: 3 bytes (sign, hours, minutes, seconds) offset by 0x800000, then the fraction, both negative
    for a negative time in two's complement (MySQL's ``my_time_packed_from_binary``)."""
    fraction_size = _FSP_BYTES[fsp]
    size = 3 + fraction_size

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        if fsp >= 5:
            packed = int.from_bytes(buf[at : at + 6], "big") - 0x800000000000
        else:
            intpart = int.from_bytes(buf[at : at + 3], "big") - 0x800000
            frac = int.from_bytes(buf[at + 3 : at + 3 + fraction_size], "big") if fraction_size else 0
            if intpart < 0 and frac:
                intpart += 1
                frac -= 1 << (8 * fraction_size)
            unit = 10_000 if fraction_size == 1 else 100
            packed = (intpart << 24) + frac * unit
        negative = packed < 0
        packed = -packed if negative else packed
        whole, micros = packed >> 24, packed & 0xFFFFFF
        value = dt.timedelta(
            hours=(whole >> 12) & 0x3FF, minutes=(whole >> 6) & 0x3F, seconds=whole & 0x3F, microseconds=micros
        )
        return (-value if negative else value), at + size

    return read


def _date(buf: bytes, at: int) -> tuple[Any, int]:
    packed = int.from_bytes(buf[at : at + 3], "little")
    day, month, year = packed & 0x1F, (packed >> 5) & 0x0F, packed >> 9
    if not (year and month and day):
        return None, at + 3  # zero dates, as the library gives them
    return dt.date(year, month, day), at + 3


def _year(buf: bytes, at: int) -> tuple[Any, int]:
    stored = buf[at]
    return (stored + 1900 if stored else 0), at + 1


_Decimal = decimal.Decimal


def _decimal(precision: int, scale: int) -> Reader:
    integral = precision - scale
    whole_int, left_int = divmod(integral, 9)
    whole_frac, left_frac = divmod(scale, 9)
    head, tail = _DECIMAL_BYTES[left_int], _DECIMAL_BYTES[left_frac]
    size = head + 4 * whole_int + 4 * whole_frac + tail

    # The digits are stored as big-endian groups (head, 9-digit words, 9-digit words, tail) with the sign in the
    # top bit (set: positive) and every bit inverted when negative. Read as one integer, then split from the
    # least significant group up into the value's digits as one integer.
    groups = [(head, left_int)] + [(4, 9)] * (whole_int + whole_frac) + [(tail, left_frac)]
    plan = [((1 << 8 * width) - 1, 8 * width, 10**digits) for width, digits in reversed(groups) if width]
    sign_bit = 1 << (8 * size - 1)
    flip_negative = ((1 << 8 * size) - 1) ^ sign_bit  # every bit inverted, the sign bit left as it is

    def read(buf: bytes, at: int) -> tuple[Any, int]:
        stored = int.from_bytes(buf[at : at + size], "big")
        negative = not stored & sign_bit
        stored ^= flip_negative if negative else sign_bit
        digits, weight = 0, 1
        for mask, bits, span in plan:
            digits += (stored & mask) * weight
            stored >>= bits
            weight *= span
        text = str(digits)
        if scale:
            text = text.rjust(scale + 1, "0")
            text = text[:-scale] + "." + text[-scale:]
        return _Decimal("-" + text if negative else text), at + size

    return read


def _enum(size: int, labels: Sequence[str]) -> Reader:
    def read(buf: bytes, at: int) -> tuple[Any, int]:
        return labels[int.from_bytes(buf[at : at + size], "little")], at + size

    return read


def _set(size: int, labels: Sequence[str]) -> Reader:
    def read(buf: bytes, at: int) -> tuple[Any, int]:
        mask = int.from_bytes(buf[at : at + size], "little")
        return sorted(label for i, label in enumerate(labels) if mask >> i & 1), at + size

    return read


def _bit(size: int) -> Reader:
    def read(buf: bytes, at: int) -> tuple[Any, int]:
        return int.from_bytes(buf[at : at + size], "big"), at + size

    return read


_INTS = {
    FIELD_TYPE.TINY: ("<b", "<B"),
    FIELD_TYPE.SHORT: ("<h", "<H"),
    FIELD_TYPE.LONG: ("<i", "<I"),
    FIELD_TYPE.LONGLONG: ("<q", "<Q"),
}


def _encoding(column: Any) -> str | None:
    """Python's codec for the column's charset, as mysql-replication picks it; None: binary or unknown."""
    name = getattr(column, "character_set_name", None)
    if name is None or name == "binary":
        return None
    charset = charset_by_name(name)
    encoding = charset.encoding if charset else name
    try:
        "".encode(encoding)
    except LookupError:
        return None
    return encoding


def reader_for(column: Any, json_text: bool) -> Reader | None:
    """The reader of one table-map column (``pymysqlreplication.column.Column``); None: not supported here."""
    kind = column.type
    if kind in _INTS:
        signed, unsigned = _INTS[kind]
        return _fixed(unsigned if column.unsigned else signed)
    if kind == FIELD_TYPE.INT24:
        return _int24(column.unsigned)
    if kind == FIELD_TYPE.FLOAT:
        return _fixed("<f")
    if kind == FIELD_TYPE.DOUBLE:
        return _fixed("<d")
    if kind == FIELD_TYPE.NEWDECIMAL:
        return _decimal(column.precision, column.decimals)
    if kind == FIELD_TYPE.DATETIME2:
        return _datetime2(column.fsp)
    if kind == FIELD_TYPE.TIMESTAMP2:
        return _timestamp2(column.fsp)
    if kind == FIELD_TYPE.TIME2:
        return _time2(column.fsp)
    if kind == FIELD_TYPE.DATE:
        return _date
    if kind == FIELD_TYPE.YEAR:
        return _year
    if kind == FIELD_TYPE.ENUM and column.enum_values:
        return _enum(column.size, column.enum_values)
    if kind == FIELD_TYPE.SET and column.set_values:
        return _set(column.size, column.set_values)
    if kind == FIELD_TYPE.BIT:
        return _bit(column.bytes)
    if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        prefix = column.length_size if kind == FIELD_TYPE.BLOB else (2 if column.max_length > 255 else 1)
        if getattr(column, "character_set_name", None) == "binary":
            return _binary(prefix, column.max_length if kind == FIELD_TYPE.STRING else 0)
        encoding = _encoding(column)
        return None if encoding is None else _text(prefix, encoding, json_text)
    return None


def _bits(bitmap: bytes, count: int) -> list[bool]:
    return [bool(bitmap[i >> 3] >> (i & 7) & 1) for i in range(count)]


class LeanRows:
    """The rows of one table's rows events, decoded from the event's bytes."""

    def __init__(self, names: tuple[str, ...], readers: tuple[Reader, ...]) -> None:
        self._names = names
        self._readers = readers
        self._present_cache: dict[bytes, tuple[tuple[int, str, Reader], ...]] = {}

    @classmethod
    def for_table(cls, columns: Sequence[Any], info: TableInfo) -> LeanRows | None:
        """None when a column's type or charset is not supported here (the library decodes that table)."""
        readers = []
        for column in columns:
            reader = reader_for(column, column.name in info.json_columns)
            if reader is None:
                return None
            readers.append(reader)
        return cls(tuple(column.name for column in columns), tuple(readers))

    def _present(self, bitmap: bytes) -> tuple[tuple[int, str, Reader], ...]:
        """(null-bitmap index, name, reader) of each column the image carries (all of them with a FULL image)."""
        found = self._present_cache.get(bitmap)
        if found is None:
            flags = _bits(bitmap, len(self._names))
            chosen = [(name, reader) for name, reader, on in zip(self._names, self._readers, flags, strict=True) if on]
            found = tuple((i, name, reader) for i, (name, reader) in enumerate(chosen))
            self._present_cache[bitmap] = found
        return found

    @staticmethod
    def _image(buf: bytes, at: int, present: tuple[tuple[int, str, Reader], ...]) -> tuple[Row, int]:
        null_size = (len(present) + 7) >> 3
        nulls = buf[at : at + null_size]
        at += null_size
        row: Row = {}
        for index, name, read in present:
            if nulls[index >> 3] >> (index & 7) & 1:
                row[name] = None
            else:
                row[name], at = read(buf, at)
        return row, at

    def images(self, event: Any, *, update: bool) -> list[tuple[Row, Row | None]]:
        """Each row of a rows event: (image, after-image of an update). ``event``: the library's, whose header
        it has read, or a ``fast_events.RowsSlice`` (the rows are a slice of its packet's bytes)."""
        if type(event) is RowsSlice:
            buf, at, end = event.data, event.at, event.end
            first = self._present(event.present)
            second = self._present(event.present2) if update else first
        else:
            packet = event.packet
            buf = packet.read(event.event_size - packet.read_bytes)
            at, end = 0, len(buf)
            first = self._present(event.columns_present_bitmap)
            second = self._present(event.columns_present_bitmap2) if update else first
        rows: list[tuple[Row, Row | None]] = []
        image = self._image
        while at < end:
            row, at = image(buf, at, first)
            after = None
            if update:
                after, at = image(buf, at, second)
            rows.append((row, after))
        return rows
