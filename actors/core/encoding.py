"""Deterministic binary encoding of change events (msgpack via msgspec).

Why not plain ``msgspec.msgpack.encode``: it writes Decimal, naive datetime, date, time and
UUID as strings, so they would come back as ``str`` and an exact DECIMAL could not be told from
text. Here each such value travels as a msgpack extension with a fixed code (time-zone aware
datetimes use msgpack's own timestamp extension, normalized to UTC), and dict keys are written
sorted, so equal events give equal bytes on every machine and round-trip to values of the
same type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from actors.core.batches import Batch
from actors.core.errors import EncodingError
from actors.core.events import UNCHANGED, UNSENT_NUMBER, ChangeEvent, Position, Row, Unchanged, UnsentNumber

# Extension codes are part of the wire format: never renumber them.
_EXT_DECIMAL = 1
_EXT_DATETIME_NAIVE = 2
_EXT_DATETIME_UTC = 3  # retired: aware datetimes travel as msgpack's own timestamp extension
_EXT_DATE = 4
_EXT_TIME = 5
_EXT_UUID = 6
_EXT_UNCHANGED = 7
_EXT_TIMEDELTA = 8
_EXT_TIME_TZ = 9
_EXT_BIG_INT = 10
_EXT_UNSENT_NUMBER = 11

_PLAIN_TYPES = frozenset({str, bool, float, bytes, type(None)})
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack can carry as an integer


def _ext(value: Any) -> msgspec.msgpack.Ext:
    """Map one non-msgpack value to its extension."""
    if isinstance(value, int):
        return msgspec.msgpack.Ext(_EXT_BIG_INT, str(value).encode())
    if isinstance(value, decimal.Decimal):
        return msgspec.msgpack.Ext(_EXT_DECIMAL, str(value).encode())
    if isinstance(value, dt.datetime):  # naive; aware ones are msgpack timestamps (see _is_plain)
        return msgspec.msgpack.Ext(_EXT_DATETIME_NAIVE, value.isoformat().encode())
    if isinstance(value, dt.date):
        return msgspec.msgpack.Ext(_EXT_DATE, value.isoformat().encode())
    if isinstance(value, dt.time):
        code = _EXT_TIME if value.tzinfo is None else _EXT_TIME_TZ
        return msgspec.msgpack.Ext(code, value.isoformat().encode())
    if isinstance(value, dt.timedelta):
        micros = value // dt.timedelta(microseconds=1)
        return msgspec.msgpack.Ext(_EXT_TIMEDELTA, str(micros).encode())
    if isinstance(value, uuid.UUID):
        return msgspec.msgpack.Ext(_EXT_UUID, value.bytes)
    if isinstance(value, Unchanged):
        return msgspec.msgpack.Ext(_EXT_UNCHANGED, b"")
    if isinstance(value, UnsentNumber):
        return msgspec.msgpack.Ext(_EXT_UNSENT_NUMBER, b"")
    raise EncodingError(f"cannot encode a value of type `{type(value).__name__}` in a change event")


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX
    return kind in _PLAIN_TYPES or (kind is dt.datetime and value.tzinfo is not None)


def _wire(value: Any) -> Any:
    if _is_plain(value):
        return value
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return _ext(value)


_DECIMAL = decimal.Decimal
_DATETIME = dt.datetime
_Ext = msgspec.msgpack.Ext


def _wire_row(row: Row | None) -> Row | None:
    """The row with non-msgpack values as extensions; the row itself when it has none (the hot path)."""
    if row is None:
        return None
    wired = None
    for name, value in row.items():
        kind = type(value)
        if kind in _PLAIN_TYPES or (kind is int and _INT_MIN <= value <= _INT_MAX):
            continue
        if kind is dt.datetime and value.tzinfo is not None:
            continue
        if wired is None:
            wired = dict(row)
        # Decimal (every numeric column) and naive datetimes (MariaDB's DATETIME) straight to their
        # extensions, as _ext makes them: the common cases.
        if kind is _DECIMAL:
            wired[name] = _Ext(_EXT_DECIMAL, str(value).encode())
        elif kind is _DATETIME:
            wired[name] = _Ext(_EXT_DATETIME_NAIVE, value.isoformat().encode())
        else:
            wired[name] = _wire(value)
    return row if wired is None else wired


# Text payloads are decoded straight from the buffer: str(b, "utf-8") (bytes(b).decode() copies them first).
_EXT_DECODERS: dict[int, Callable[[memoryview], Any]] = {
    _EXT_DECIMAL: lambda b: _DECIMAL(str(b, "utf-8")),
    _EXT_DATETIME_NAIVE: lambda b: _DATETIME.fromisoformat(str(b, "utf-8")),
    _EXT_DATE: lambda b: dt.date.fromisoformat(str(b, "utf-8")),
    _EXT_TIME: lambda b: dt.time.fromisoformat(str(b, "utf-8")),
    _EXT_TIME_TZ: lambda b: dt.time.fromisoformat(str(b, "utf-8")),
    _EXT_TIMEDELTA: lambda b: dt.timedelta(microseconds=int(str(b, "utf-8"))),
    _EXT_UUID: lambda b: uuid.UUID(bytes=bytes(b)),
    _EXT_UNCHANGED: lambda b: UNCHANGED,
    _EXT_UNSENT_NUMBER: lambda b: UNSENT_NUMBER,
    _EXT_BIG_INT: lambda b: int(str(b, "utf-8")),
}


def _ext_hook(code: int, data: memoryview) -> Any:
    try:
        return _EXT_DECODERS[code](data)
    except KeyError:
        raise EncodingError(f"unknown extension code {code} in an encoded change event") from None


_encoder = msgspec.msgpack.Encoder(order="sorted")
_event_decoder = msgspec.msgpack.Decoder(ChangeEvent, ext_hook=_ext_hook)
_batch_decoder = msgspec.msgpack.Decoder(Batch, ext_hook=_ext_hook)


def _to_wire(event: ChangeEvent) -> ChangeEvent:
    key, before, after = _wire_row(event.key), _wire_row(event.before), _wire_row(event.after)
    if key is event.key and before is event.before and after is event.after:
        return event
    return msgspec.structs.replace(event, key=key, before=before, after=after)


def encode_event(event: ChangeEvent) -> bytes:
    """The canonical bytes of one event (the audit chain hashes these)."""
    return _encoder.encode(_to_wire(event))


def decode_event(data: bytes) -> ChangeEvent:
    """Inverse of :func:`encode_event`."""
    return _event_decoder.decode(data)


def encode_batch(batch: Batch) -> bytes:
    """Encode a whole batch in one buffer: one Ray call carries hundreds of events."""
    return _encoder.encode(msgspec.structs.replace(batch, events=[_to_wire(e) for e in batch.events]))


class _EncodedBatch(msgspec.Struct, frozen=True, array_like=True):
    """A :class:`Batch` whose events are encoded already: encodes to the very bytes ``encode_batch`` gives."""

    stream: str
    seq: int
    events: list[msgspec.Raw]
    upto: Position | None
    snapshot: bool = False
    newest_commit_time_us: int = 0
    read_at_us: int = 0


def encode_events(events: list[ChangeEvent]) -> list[msgspec.Raw]:
    """Each event's canonical bytes, to assemble several batches from without encoding an event twice."""
    return [msgspec.Raw(_encoder.encode(_to_wire(event))) for event in events]


def encode_batch_of(batch: Batch, events: list[msgspec.Raw]) -> bytes:
    """The bytes of ``batch`` carrying ``events`` (from :func:`encode_events`) instead of its own."""
    shell = _EncodedBatch(
        batch.stream, batch.seq, events, batch.upto, batch.snapshot, batch.newest_commit_time_us, batch.read_at_us
    )
    return _encoder.encode(shell)


def decode_batch(data: bytes) -> Batch:
    """Inverse of :func:`encode_batch`."""
    return _batch_decoder.decode(data)


def encode_row(row: Row) -> bytes:
    """Canonical bytes of one row or key (sorted names, typed values), e.g. to hash it."""
    return _encoder.encode(_wire_row(row))


_row_decoder = msgspec.msgpack.Decoder(dict[str, Any], ext_hook=_ext_hook)


def decode_row(data: bytes) -> Row:
    """Inverse of :func:`encode_row`."""
    return _row_decoder.decode(data)
