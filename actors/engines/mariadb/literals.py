"""SQL literals for the MariaDB writer's rows, planned once per table and column set.

pymysql binds parameters on the client: per value it runs ``escape`` -> ``escape_item`` -> an encoder looked
up by type, after the writer's own per-column conversion (``sink.converted``). In a drain that was a quarter
of the PostgreSQL -> MariaDB pipeline's CPU (issue 19). Here each column gets one function, chosen from its
type when the table is first written, that turns a captured value straight into its literal for the common
Python types (int, str, Decimal, float, naive or UTC datetime, None); anything else takes the general path
(the column's converter, then pymysql's own encoders), so the text sent is the same either way. A row that
the fast path cannot render (a value the column refuses, the NaN marker) is rebuilt by ``sink.converted``,
which raises the same RowRefused as before.

A row's literal is a :class:`Sql` string: the writer's ``execute`` splices it into the statement as it is.
Only for sessions with backslash escapes (MariaDB's default); under ``NO_BACKSLASH_ESCAPES`` the writer keeps
pymysql's binding.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from typing import Any

from pymysql import converters

from actors.core import convert
from actors.core.events import UNSENT_NUMBER
from actors.core.typemap import ColumnType

#: A value's literal from a captured value (raises on what the column cannot take or the fast path skips).
Literal = Callable[[Any], str]
#: Converter of the sink: captured value -> parameter (None: as it is).
Converter = Callable[[Any], Any] | None

_UTC = dt.UTC
_Decimal = decimal.Decimal
_datetime = dt.datetime
# What pymysql's connection uses (its ``encoders``: the default conversions, type keys only).
_ENCODERS: dict[Any, Any] = {k: v for k, v in converters.conversions.items() if type(k) is not int}
# pymysql's escape table for backslash-escaping sessions (converters.escape_string), built alike.
_ESCAPES = [chr(x) for x in range(128)]
for _char, _escaped in (("\0", "\\0"), ("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\032", "\\Z")):
    _ESCAPES[ord(_char)] = _escaped
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("'")] = "\\'"


class Sql(str):
    """A rendered SQL fragment (a row's ``(...)`` literal): spliced into a statement, never escaped again."""

    __slots__ = ()


class Unplanned(Exception):
    """A value only ``sink.converted`` can judge (the NaN marker): rebuild the row that way."""


def quoted(text: str) -> str:
    """A string literal as pymysql writes it for a session with backslash escapes."""
    return "'" + text.translate(_ESCAPES) + "'"


def escape(value: Any) -> str:
    """pymysql ``Connection.escape`` for a backslash-escaping session, with the default encoders."""
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, bytes | bytearray):
        return f"X'{value.hex()}'"
    if type(value) in (tuple, list, set, frozenset):
        return "(" + ",".join([escape(item) for item in value]) + ")"
    return str(converters.escape_item(value, "utf8", mapping=_ENCODERS))


def _integer(general: Literal) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is int:
            return str(value)
        return general(value)

    return literal


def _text(general: Literal) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is str:
            return "'" + value.translate(_ESCAPES) + "'"
        return general(value)

    return literal


def _decimal(general: Literal) -> Literal:
    def literal(value: Any) -> str:
        kind = type(value)
        if kind is _Decimal:
            # As the writer's _number: an integral value as an integer, else fixed-point text (which pymysql
            # quotes); a non-finite one raises ValueError there and here.
            if value.is_finite() and value == value.to_integral_value():
                return str(int(value))
            return "'" + convert.decimal_text(value) + "'"
        if kind is int:
            return str(value)
        return general(value)

    return literal


def _float(general: Literal) -> Literal:
    def literal(value: Any) -> str:
        kind = type(value)
        if kind is float:
            text = repr(convert.finite(value))
            return text if "e" in text else text + "e0"  # pymysql's escape_float
        if kind is int:
            return str(value)
        return general(value)

    return literal


def _timestamp(general: Literal) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is _datetime:
            zone = value.tzinfo
            if zone is _UTC:  # the capture's timestamptz: isoformat ends in "+00:00" (no copy to drop it)
                return "'" + value.isoformat(" ")[:-6] + "'"
            if zone is not None:  # convert.utc_naive
                value = value.astimezone(_UTC).replace(tzinfo=None)
            return "'" + value.isoformat(" ") + "'"  # pymysql's escape_datetime, in C
        return general(value)

    return literal


_FAST: dict[str, Callable[[Literal], Literal]] = {
    "integer": _integer,
    "decimal": _decimal,
    "float": _float,
    "text": _text,
    "timestamp": _timestamp,
    "timestamptz": _timestamp,
}


def _general(converter: Converter) -> Literal:
    def literal(value: Any) -> str:
        if value is None:
            return "NULL"
        if value is UNSENT_NUMBER:
            raise Unplanned
        return escape(value if converter is None else converter(value))

    return literal


def column_literal(kind: ColumnType, converter: Converter) -> Literal:
    """The literal function of a column of type ``kind`` whose writer converter is ``converter``.

    For the types a fast function takes it equals ``escape(converter(value))``; every other value, and the
    families without one (booleans, JSON, bytes, times, sets, bits, UUIDs, ...), go that general way."""
    general = _general(converter)
    fast = _FAST.get(kind.family)
    return general if fast is None else fast(general)


def row_literal(plan: Sequence[tuple[str, Literal]], values: dict[str, Any]) -> Sql:
    """``(v1,v2,...)`` for one row in the plan's column order; raises what a column's function raises."""
    return Sql("(" + ",".join([literal(values[name]) for name, literal in plan]) + ")")
