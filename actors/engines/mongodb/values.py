"""BSON values <-> the row values every engine shares (see actors.core.events.Row).

Capture (``row_value``) goes by the value's own BSON type, so it needs no declaration:

==================  ==========================================================================
ObjectId            24 lower-case hexadecimal characters
Decimal128          Decimal (exact)
datetime            time-zone aware UTC datetime (BSON keeps milliseconds)
Binary subtype 4    UUID (standard representation); other binary: bytes
int32 / int64       int
document / array    dict / list, converted the same way inside (JSON columns)
==================  ==========================================================================

Inside documents and arrays the values end in JSON columns, where an ObjectId stays its hex text, a datetime
its ISO text and binary its base64 text. Timestamp, regular expression, code, MinKey/MaxKey and DBRef have no
row form: they are refused with the field's name rather than guessed at.

Writing (``bson_value``) goes by the field's declared BSON type and refuses (ValueError) a value that type
cannot hold exactly. JSON numbers inside documents become int, a double when the double *is* the number,
else Decimal128, so no JSON number changes its value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import bson
from bson.binary import UUID_SUBTYPE, Binary
from bson.decimal128 import Decimal128, create_decimal128_context

from actors.core import convert

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")
_D128 = create_decimal128_context()


# --- BSON -> row ---------------------------------------------------------------------------------------------


class _NoRowForm(Exception):
    """A value with no row form, and the path to it from the innermost container outwards."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.path: list[str] = []


#: Types whose decoded values are row values as they are (Int64 is not among them: it becomes a plain int).
_AS_IS = frozenset({type(None), bool, str, float, int, bytes, uuid.UUID})


def row_value(value: Any, field: str = "") -> Any:
    """A decoded BSON value (pymongo with ``tz_aware=True``, ``uuidRepresentation="standard"``) as a row value;
    ValueError naming the field path when it has no row form."""
    try:
        return _row_value(value)
    except _NoRowForm as exc:
        path = ".".join([*([field] if field else []), *reversed(exc.path)])
        raise ValueError(f"field `{path}` holds a BSON {exc.kind}, which has no row form") from None


def _row_value(value: Any) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        row = {}
        for key, item in value.items():
            try:
                row[str(key)] = _row_value(item)
            except _NoRowForm as exc:
                exc.path.append(str(key))
                raise
        return row
    if kind is list or kind is tuple:
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_row_value(item))
            except _NoRowForm as exc:
                exc.path.append(str(index))
                raise
        return items
    if isinstance(value, bool | str | float):  # subclasses
        return value
    if isinstance(value, int):
        return int(value)  # Int64 -> int
    if isinstance(value, bson.ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, dt.datetime):
        return convert.utc_aware(value)
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, Binary):
        return value.as_uuid() if value.subtype == UUID_SUBTYPE and len(value) == 16 else bytes(value)
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return _row_value(dict(value))
    if isinstance(value, list | tuple):
        return _row_value(list(value))
    raise _NoRowForm(type(value).__name__)


def document_row(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A document's top-level fields as a row; ValueError names the field and the document's `_id`."""
    try:
        return {name: row_value(value, name) for name, value in document.items()}
    except ValueError as exc:
        raise ValueError(f"`{namespace}` document _id={document.get('_id')!r}: {exc}") from None


# --- row -> BSON ---------------------------------------------------------------------------------------------


def _decimal128(value: Any) -> Decimal128:
    if isinstance(value, Decimal128):
        return value
    if isinstance(value, bool) or not isinstance(value, int | decimal.Decimal | str):
        raise ValueError(f"a `{type(value).__name__}` is not a decimal")
    number = decimal.Decimal(value)
    with decimal.localcontext(_D128) as ctx:
        exact = ctx.create_decimal(number)
        if exact != number or ctx.flags[decimal.Inexact] or ctx.flags[decimal.Rounded]:
            raise ValueError(f"{value} has more than 34 significant digits (Decimal128)")
    return Decimal128(exact)


def _integer(bounds: tuple[int, int], name: str) -> Callable[[Any], Any]:
    def to_int(value: Any) -> Any:
        value = convert.integer(value)  # bool and integral Decimal -> int
        if not isinstance(value, int):
            raise ValueError(f"a `{type(value).__name__}` is not an integer")
        if not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"{value} is out of range for BSON {name}")
        return bson.Int64(value) if name == "long" else int(value)

    return to_int


def _double(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int) and abs(value) <= 2**53:
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, decimal.Decimal) and decimal.Decimal(float(value)) == value:
        return float(value)
    raise ValueError(f"{value!r} is not exactly a double")


def _object_id(value: Any) -> bson.ObjectId:
    if isinstance(value, bson.ObjectId):
        return value
    if isinstance(value, str) and _HEX24.match(value):
        return bson.ObjectId(value)
    raise ValueError(f"{value!r} is not an ObjectId (24 hexadecimal characters)")


def _date(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return convert.utc_aware(value)  # pymongo stores milliseconds (the start-up check refuses finer sources)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise ValueError(f"a `{type(value).__name__}` is not a date and time")


def _uuid(value: Any) -> uuid.UUID:
    value = convert.uuid_value(value)
    if isinstance(value, str):
        return uuid.UUID(value)
    if isinstance(value, uuid.UUID):
        return value
    raise ValueError(f"a `{type(value).__name__}` is not a UUID")


def _binary(value: Any) -> bytes:
    value = convert.binary(value)
    if not isinstance(value, bytes):
        raise ValueError(f"a `{type(value).__name__}` is not binary data")
    return value


def _boolean(value: Any) -> bool:
    value = convert.boolean(value)
    if not isinstance(value, bool):
        raise ValueError(f"a `{type(value).__name__}` is not a boolean")
    return value


def _string(limit: int | None) -> Callable[[Any], str]:
    def to_text(value: Any) -> str:
        text = convert.text(value)
        if limit is not None and len(text) > limit:
            raise ValueError(f"{len(text)} characters, the field is declared string({limit})")
        return text

    return to_text


def json_value(value: Any) -> Any:
    """A JSON tree (or any row value) as BSON; a JSON text is parsed, numbers keep their exact value."""
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else _decimal128(value)
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value() and _INT64[0] <= value <= _INT64[1]:
            return int(value)
        if value.is_finite() and decimal.Decimal(float(value)) == value:
            return float(value)
        return _decimal128(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    if isinstance(value, dt.datetime):
        return convert.utc_aware(value)
    if isinstance(value, uuid.UUID | bytes | bytearray | memoryview):
        return value if isinstance(value, uuid.UUID) else bytes(value)
    raise ValueError(f"a `{type(value).__name__}` has no BSON form")


def _document(kind: type) -> Callable[[Any], Any]:
    def to_tree(value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value, parse_float=decimal.Decimal)
            except ValueError:
                raise ValueError("text that is not JSON") from None
        if not isinstance(value, kind):
            raise ValueError(f"a `{type(value).__name__}` is not a {'document' if kind is dict else 'array'}")
        return json_value(value)

    return to_tree


_BY_TYPE: dict[str, Callable[[Any], Any]] = {
    "objectId": _object_id,
    "string": _string(None),
    "int": _integer(_INT32, "int"),
    "long": _integer(_INT64, "long"),
    "double": _double,
    "decimal": _decimal128,
    "bool": _boolean,
    "date": _date,
    "binData": _binary,
    "uuid": _uuid,
    "object": _document(dict),
    "array": _document(list),
}


def bson_converter(declared: str | None) -> Callable[[Any], Any]:
    """How a row value becomes the BSON of a field declared ``declared`` (None: by the value's own type)."""
    if declared is None:
        return json_value
    if declared.startswith("string("):
        return _string(int(declared[7:-1]))
    return _BY_TYPE[declared]
