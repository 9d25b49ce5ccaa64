"""The canonical event encoding: deterministic, type-preserving, round-tripping."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import uuid

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.batches import Batch
from actors.core.encoding import decode_batch, decode_event, encode_batch, encode_event
from actors.core.errors import EncodingError
from actors.core.events import UNCHANGED, ChangeEvent, Op, Position

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.just(UNCHANGED),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=10,
)
rows = st.dictionaries(names, scalars | json_values, max_size=8)


@st.composite
def events(draw: st.DrawFn) -> ChangeEvent:
    op = draw(st.sampled_from(list(Op)))
    return ChangeEvent(
        node=draw(names),
        engine=draw(st.sampled_from(["postgresql", "mariadb", "mongodb"])),
        namespace=draw(names),
        op=op,
        key=draw(st.dictionaries(names, st.integers() | st.text(max_size=8) | st.uuids(), min_size=1)),
        before=draw(rows) if op in (Op.UPDATE, Op.DELETE) else None,
        after=draw(rows) if op is not Op.DELETE else None,
        commit_time_us=draw(st.integers(0, 2**62)),
        txid=draw(st.text(max_size=20)),
        position=Position(draw(st.binary(max_size=16)), draw(st.text(max_size=20))),
        origin=draw(st.none() | names),
    )


@settings(max_examples=150, deadline=None)
@given(events())
def test_round_trip_keeps_values_and_types(event: ChangeEvent) -> None:
    decoded = decode_event(encode_event(event))
    assert decoded == event
    for original, back in ((event.after, decoded.after), (event.before, decoded.before)):
        for name, value in (original or {}).items():
            assert type(back[name]) is type(value), name


@settings(max_examples=100, deadline=None)
@given(events())
def test_encoding_is_deterministic_whatever_the_key_order(event: ChangeEvent) -> None:
    reordered = msgspec.structs.replace(
        event,
        key=dict(reversed(list(event.key.items()))),
        after=None if event.after is None else dict(reversed(list(event.after.items()))),
    )
    assert encode_event(event) == encode_event(reordered)
    assert encode_event(decode_event(encode_event(event))) == encode_event(event)


@given(st.lists(events(), max_size=5))
def test_batches_round_trip(events_: list[ChangeEvent]) -> None:
    upto = events_[-1].position if events_ else None
    batch = Batch("stream", 3, events_, upto, False, 17)
    assert decode_batch(encode_batch(batch)) == batch


def test_known_bytes_are_stable() -> None:
    """Pins the wire format: a change here breaks every stored audit hash."""
    event = ChangeEvent(
        node="pg",
        engine="postgresql",
        namespace="public.t",
        op=Op.UPDATE,
        key={"id": 1},
        before={"id": 1, "blob": UNCHANGED},
        after={"id": 1, "price": decimal.Decimal("10.50"), "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
        commit_time_us=1_700_000_000_000_000,
        txid="42",
        position=Position(b"\x00\x00\x00\x01", "0/1"),
    )
    assert encode_event(event).hex() == (
        "9ba27067aa706f737467726573716ca87075626c69632e74a675706461746581"
        "a269640182a4626c6f62c70007a269640183a26174d6ff65920080a2696401a5"
        "7072696365c7050131302e3530cf00060a24181e4000a2343292c40400000001"
        "a3302f31c0"
    )


def test_aware_datetimes_are_normalized_to_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    local = dt.datetime(2024, 3, 1, 12, 30, 0, 123456, tzinfo=paris)
    event = ChangeEvent(
        node="n",
        engine="postgresql",
        namespace="s.t",
        op=Op.INSERT,
        key={"id": 1},
        before=None,
        after={"at": local},
        commit_time_us=0,
        txid="1",
        position=Position(b"\x01"),
    )
    decoded = decode_event(encode_event(event)).after["at"]
    assert decoded == local
    assert decoded.utcoffset() == dt.timedelta(0)
    assert decoded.hour == 11 and decoded.microsecond == 123456


def test_unencodable_values_are_refused_with_the_type_named() -> None:
    event = ChangeEvent(
        node="n",
        engine="postgresql",
        namespace="s.t",
        op=Op.INSERT,
        key={"id": 1},
        before=None,
        after={"x": object()},
        commit_time_us=0,
        txid="1",
        position=Position(b"\x01"),
    )
    with pytest.raises(EncodingError, match="`object`"):
        encode_event(event)


def test_positions_order_bytewise_and_unchanged_survives_pickle() -> None:
    assert Position(b"\x00\x01") < Position(b"\x00\x02") < Position(b"\x01")
    assert pickle.loads(pickle.dumps(UNCHANGED)) is UNCHANGED
    assert uuid.UUID(int=5) != UNCHANGED
