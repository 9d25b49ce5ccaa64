"""Column types of both engines in one vocabulary, and whether a target column can hold every source value.

Each engine's schema module turns its catalog into :class:`ColumnType`\\ s; :func:`loss` compares two of them
and names what would be lost. "Lossy" means *some* value of the source type cannot be stored exactly: a
mapping that is fine for today's data may still be refused, because a sync must not start corrupting rows
the day a larger value arrives. Values the writers reject at apply time instead (NaN/Infinity into MariaDB,
a duration out of a time-of-day range, a TINYINT(1) holding 2 into a boolean) raise a SinkError there and
are never silently changed.

MariaDB's TINYINT(1) is read as a boolean stored in 8 bits (that is what BOOLEAN declares), its TIME as an
interval of at most 838 hours, TIMESTAMP as a timestamptz of 32-bit seconds, and LONGTEXT with
``CHECK (json_valid(...))`` as JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Family = Literal[
    "integer",
    "decimal",
    "float",
    "boolean",
    "text",
    "bytes",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "json",
    "uuid",
    "array",
    "enum",
    "set",
    "bit",
    "interval",
    "other",
]


class ColumnType(msgspec.Struct, frozen=True, kw_only=True):
    """One column's type, as far as the range of values it holds is concerned.

    Attributes apply per family: ``bits`` (integer width; float 24 = single, 53 = double; boolean stored as
    an integer of that width; 32 on a timestamp means 32-bit Unix seconds, MariaDB TIMESTAMP),
    ``unsigned``, ``precision``/``scale`` (decimal digits; None precision = unbounded; fractional-second
    digits for time/timestamp/interval), ``length`` (characters for text, bytes for bytes, bits for bit;
    None = unbounded), ``fixed`` (CHAR/BINARY/BIT(n): values are padded), ``charset`` (None = full Unicode),
    ``labels`` (enum and set members), ``max_hours`` (interval: largest absolute value in hours, None =
    unbounded with months and days), ``element`` (array element type). ``name`` is the SQL type, for messages.
    """

    family: Family
    name: str = ""
    bits: int | None = None
    unsigned: bool = False
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    fixed: bool = False
    charset: str | None = None
    labels: tuple[str, ...] = ()
    max_hours: int | None = None
    element: ColumnType | None = None


class Column(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: ColumnType
    #: The declared type as the catalog spells it ("character varying(64)", "decimal(12,2) unsigned").
    type_text: str
    nullable: bool = True
    has_default: bool = False
    #: Computed by the database (generated/virtual columns): never written.
    generated: bool = False


class TableSchema(msgspec.Struct, frozen=True, kw_only=True):
    namespace: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _label(t: ColumnType) -> str:
    return f"`{t.name or t.family}`"


def int_range(t: ColumnType) -> tuple[int, int]:
    """The smallest and largest value of an integer type (64-bit signed when ``bits`` is unset)."""
    bits = t.bits or 64
    return (0, 2**bits - 1) if t.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _text_width(source: ColumnType) -> int | None:
    """The most characters the writers' text form of a ``source`` value takes; None when unbounded."""
    f = source.family
    if f == "integer":
        lo, hi = int_range(source)
        return max(len(str(lo)), len(str(hi)))
    if f == "decimal":
        return None if source.precision is None else source.precision + 3  # sign, "0.", point
    fixed = {"boolean": 5, "float": 24, "uuid": 36, "date": 10, "time": 15, "timestamp": 32, "timestamptz": 32}
    if f in fixed:
        return fixed[f]
    if f == "interval":
        return None if source.max_hours is None else len(str(source.max_hours)) + 13  # -HHH:MM:SS.ffffff
    if f == "enum":
        return max((len(label) for label in source.labels), default=0)
    if f == "set":
        return sum(len(label) for label in source.labels) + max(len(source.labels) - 1, 0)
    return source.length if f == "text" else None


def _into_text(source: ColumnType, target: ColumnType) -> str | None:
    f = source.family
    if f in ("bytes", "bit"):
        return f"{_label(target)} is text; {_label(source)} values are not"
    if f == "array":
        return f"{_label(target)} would hold arrays as text; map arrays to a JSON or array column"
    textual = f in ("text", "json", "enum", "set", "other")
    if textual and target.charset is not None and source.charset != target.charset:
        return f"{_label(target)} uses character set `{target.charset}`, which cannot hold every character"
    width = _text_width(source)
    if target.length is not None and (width is None or width > target.length):
        need = f"up to {width} characters" if width else "values of any length"
        return f"{_label(target)} holds {target.length} characters, {_label(source)} has {need}"
    if f == "text" and target.fixed and not source.fixed:
        return f"{_label(target)} pads with spaces: trailing spaces of {_label(source)} values are lost"
    return None


def _within(inner: int | None, outer: int | None) -> bool:
    """Whether a bound ``inner`` (None: unbounded) is within ``outer`` (None: unbounded)."""
    return outer is None or (inner is not None and inner <= outer)


def _fraction_loss(source: ColumnType, target: ColumnType) -> str | None:
    s = 6 if source.precision is None else source.precision
    t = 6 if target.precision is None else target.precision
    return None if t >= s else f"{_label(target)} keeps {t} fractional second digits, {_label(source)} {s}"


#: MongoDB's Decimal128 (``ColumnType(family="decimal", name=DECIMAL128, precision=34)``): 34 significant
#: digits with a floating exponent, so it holds any DECIMAL(p, s) with p <= 34 but no fixed scale holds it.
DECIMAL128 = "decimal128"


def _decimal128_loss(source: ColumnType, target: ColumnType) -> str | None:
    if source.name == target.name:
        return None
    if target.name == DECIMAL128:
        if source.precision is not None and source.precision <= 34:
            return None
        return f"{_label(target)} holds 34 significant digits, {_label(source)} {source.precision or 'any number'}"
    if target.precision is None:
        return None
    return f"{_label(target)} has a fixed scale; {_label(source)} holds 34 digits with any exponent"


def _numeric_loss(source: ColumnType, target: ColumnType) -> str | None:
    f, g = source.family, target.family
    if f == "float":
        if g == "float":
            if (target.bits or 53) < (source.bits or 53):
                return f"{_label(target)} is single precision, {_label(source)} double"
            return None if target.scale is None else f"{_label(target)} rounds to {target.scale} decimals"
        return f"{_label(target)} cannot hold every binary floating-point value of {_label(source)}"
    if f == "boolean" and g == "boolean":
        return None
    if f in ("integer", "boolean", "bit"):
        if f == "boolean":
            lo, hi = 0, 1
        elif f == "bit":
            if source.length is None:
                return f"{_label(source)} has no length bound"
            lo, hi = 0, 2**source.length - 1
        else:
            lo, hi = int_range(source)
        if g == "boolean" and not target.bits:
            return None if lo >= 0 and hi <= 1 else f"{_label(target)} holds only true and false"
        if f == "bit" and g != "bit":  # PostgreSQL captures bits as text ('0101'): only BIT(1) -> boolean
            return f"{_label(target)} is not a bit string type; map {_label(source)} to a BIT column"
        if g in ("integer", "boolean"):
            if target.name.lower() == "year":
                return f"{_label(target)} holds only 0 and 1901..2155"
            t_lo, t_hi = int_range(target)
            return (
                None
                if t_lo <= lo and hi <= t_hi
                else (f"{_label(target)} holds {t_lo}..{t_hi}, {_label(source)} {lo}..{hi}")
            )
        if g == "decimal":
            room = None if target.precision is None else target.precision - (target.scale or 0)
            need = max(len(str(lo)) - (lo < 0), len(str(hi)))
            if _within(need, room):
                return None
            return f"{_label(target)} has {room} integer digits, {_label(source)} needs {need}"
        if g == "float":
            mantissa = 24 if (target.bits or 53) <= 24 else 53
            return None if max(-lo, hi) <= 2**mantissa else f"{_label(target)} rounds integers beyond 2^{mantissa}"
        if g == "bit":
            if lo >= 0 and _within(hi.bit_length(), target.length):
                return None
            return f"{_label(target)} cannot hold negative or wider values of {_label(source)}"
    if f == "decimal":
        if g == "decimal":
            if DECIMAL128 in (source.name, target.name):
                return _decimal128_loss(source, target)
            if target.precision is None:
                return None
            if source.precision is None:
                return f"{_label(source)} has no precision bound, {_label(target)} holds {target.precision} digits"
            if target.unsigned and not source.unsigned:
                return f"{_label(target)} is unsigned, {_label(source)} holds negative values"
            s_scale, t_scale = source.scale or 0, target.scale or 0
            s_int, t_int = source.precision - s_scale, target.precision - t_scale
            found = [f"has {t_int} integer digits, {_label(source)} {s_int}"] if t_int < s_int else []
            if t_scale < s_scale:
                found.append(f"rounds to {t_scale} decimals, {_label(source)} has {s_scale}")
            return f"{_label(target)} " + " and ".join(found) if found else None
        if g == "integer" and source.precision is not None and not source.scale:
            return _numeric_loss(ColumnType(family="integer", bits=(10**source.precision).bit_length() + 1), target)
    return f"{_label(target)} cannot hold every value of {_label(source)}"


def _temporal_loss(source: ColumnType, target: ColumnType) -> str | None:
    f, g = source.family, target.family
    if g in ("timestamp", "timestamptz") and f in ("date", "timestamp", "timestamptz"):
        if target.bits == 32 and source.bits != 32:
            return f"{_label(target)} holds only 1970-01-01..2038-01-19 (UTC)"
        return None if f == "date" else _fraction_loss(source, target)
    if g == "date":
        return None if f == "date" else f"{_label(target)} drops the time of day of {_label(source)}"
    if g == "time" and f == "time":
        return _fraction_loss(source, target)
    if g == "time" and f == "interval":
        return f"{_label(target)} is a time of day; {_label(source)} also holds negative or >= 24 h durations"
    if g == "interval" and f in ("time", "interval"):
        hours = 24 if f == "time" else source.max_hours
        if not _within(hours, target.max_hours):
            return f"{_label(target)} holds at most +-{target.max_hours} hours, {_label(source)} more"
        return _fraction_loss(source, target)
    return f"{_label(target)} cannot hold every value of {_label(source)}"


def _same_family_loss(source: ColumnType, target: ColumnType) -> str | None:
    f = source.family
    if f in ("bytes", "bit"):
        unit = "bytes" if f == "bytes" else "bits"
        if not _within(source.length, target.length):
            return f"{_label(target)} holds {target.length} {unit}, {_label(source)} {source.length or 'any number'}"
        if target.fixed and not (source.fixed and source.length == target.length):
            return f"{_label(target)} pads shorter values"
        return None
    if f in ("enum", "set"):
        missing = [label for label in source.labels if label not in target.labels]
        return None if not missing else f"{_label(target)} lacks the members {', '.join(map(repr, missing))}"
    if f == "array":
        if source.element is None or target.element is None:
            return None if source.element == target.element else f"{_label(target)} has other elements"
        inner = loss(source.element, target.element)
        return None if inner is None else f"array elements: {inner}"
    if f == "other" and source.name.lower() != target.name.lower():
        return f"no known exact mapping from {_label(source)} to {_label(target)}"
    return None  # json, uuid, other of the same name


_NUMERIC = frozenset({"integer", "decimal", "float", "boolean", "bit"})
_TEMPORAL = frozenset({"date", "time", "timestamp", "timestamptz", "interval"})
#: Sources whose values the writers store as JSON without loss (numbers exact, sets and arrays as arrays).
_JSON_SOURCES = frozenset({"json", "array", "set", "integer", "decimal", "boolean"})


def loss(source: ColumnType, target: ColumnType) -> str | None:
    """A sentence naming what ``target`` cannot hold of ``source``'s values; None when it holds them all."""
    f, g = source.family, target.family
    if g == "text" and f != "text":
        return _into_text(source, target)
    if f == "text":
        if g == "text":
            return _into_text(source, target)
        if g == "bytes" and target.length is None:
            return None  # UTF-8
    elif f in _NUMERIC and g in _NUMERIC and not (f == "bit" and g == "bit"):
        return _numeric_loss(source, target)
    elif f in _TEMPORAL and g in _TEMPORAL:
        return _temporal_loss(source, target)
    elif g == "json":
        if f in _JSON_SOURCES:
            return None
        return f"{_label(target)} holds JSON; {_label(source)} values would lose their type"
    elif f == g:
        return _same_family_loss(source, target)
    elif f == "uuid" and g == "bytes":
        return (
            None
            if _within(16, target.length) and (not target.fixed or target.length == 16)
            else (f"{_label(target)} does not hold exactly 16 bytes")
        )
    elif f == "bytes" and g == "uuid" and source.fixed and source.length == 16:
        return None
    elif f == "set" and g == "array" and target.element is not None and target.element.family == "text":
        return _into_text(ColumnType(family="enum", labels=source.labels), target.element)
    return f"no exact mapping from {_label(source)} ({f}) to {_label(target)} ({g})"
