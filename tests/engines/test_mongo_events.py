"""MongoDB change-event documents (recorded in the documented shapes) -> normalized ChangeEvents.

Pure: no server. The files are in tests/engines/mongo_events/ (see its README).
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import threading
import uuid
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONOptions
from bson.timestamp import Timestamp

from actors.core.batches import Batch, TxnEnd
from actors.core.encoding import decode_batch, encode_batch
from actors.core.errors import SourceMisconfigured
from actors.core.events import UNCHANGED, Op
from actors.engines.mongodb.events import EventMapper, apply_update
from actors.engines.mongodb.positions import Resume, after, order_of
from actors.engines.mongodb.source import MongoSource
from config.model import MongoNode

EVENTS = Path(__file__).parent / "mongo_events"
OPTIONS = JSONOptions(tz_aware=True, tzinfo=dt.UTC, uuid_representation=UuidRepresentation.STANDARD)
OID = "65a1b2c3d4e5f60718293a4b"
NS = "shop.orders"
SHOP_NODE = MongoNode(host="h", database="shop", username="u")


def load(name: str) -> Any:
    return json_util.loads((EVENTS / name).read_text(), json_options=OPTIONS)


def mapper(fields: dict[str, str] | None = None, seq: int = 0) -> EventMapper:
    return EventMapper(node="mongo", fields={NS: fields}, seq=seq)


def test_insert_maps_every_bson_type_to_its_row_value() -> None:
    event = mapper().map(load("insert.json"))
    assert event is not None
    assert (event.op, event.namespace, event.engine, event.node) == (Op.INSERT, NS, "mongodb", "mongo")
    assert event.key == {"_id": OID} and event.before is None
    row = event.after
    assert row == {
        "_id": OID,
        "customer": "ada",
        "qty": 3,
        "big": 9007199254740993,
        "ratio": 0.25,
        "total": decimal.Decimal("1234567890.123456789"),
        "placed_at": dt.datetime(2024, 1, 12, 21, 44, 35, 123000, tzinfo=dt.UTC),
        "blob": b"\x00\x01\x02\xff",
        "ref": uuid.UUID("12345678-9012-3456-7890-123456789012"),
        "paid": False,
        "address": {"city": "Paris", "geo": [2.35, 48.85], "by": "65a1b2c3d4e5f60718293a4c"},
        "tags": ["a", decimal.Decimal("0.1"), None],
    }
    assert type(row["big"]) is int  # not bson.Int64: the event encoding is exact for plain ints
    assert event.commit_time_us == int(dt.datetime(2024, 1, 12, 21, 44, 35, 123000, tzinfo=dt.UTC).timestamp() * 1e6)
    assert event.txid == "1705095875.1"
    resume = Resume.decode(event.position.resume)
    assert resume.token == load("insert.json")["_id"] and resume.seq == 1
    assert event.position.order == order_of(Timestamp(1705095875, 1), 1)
    # The whole event survives the canonical encoding with its types (Decimal, UUID, aware datetime, bytes).
    batch = Batch("s", 1, [event], event.position)
    assert decode_batch(encode_batch(batch)).events == [event]


def test_update_prefers_the_preimage_with_the_update_description_applied() -> None:
    change = load("update_with_preimage.json")
    event = mapper().map(change)
    assert event is not None and event.op is Op.UPDATE
    # fullDocument (looked up later: qty is already 5) is not used: the pre-image + description is exact.
    assert event.after == {
        "_id": OID,
        "customer": "ada",
        "qty": 4,
        "address": {"city": "Lyon", "geo": [2.35]},
        "tags": ["a", "b", None],
        "a.b": 1,
    }
    assert event.before is not None and event.before["qty"] == 3 and event.before["ratio"] == 0.25


def test_update_without_preimage_takes_the_looked_up_document() -> None:
    event = mapper().map(load("update.json"))
    assert event is not None and event.op is Op.UPDATE and event.before is None
    assert event.after == {
        "_id": OID,
        "customer": "ada",
        "qty": 5,
        "address": {"city": "Lyon", "geo": [2.35]},
        "tags": ["a", "b", None],
    }


def test_update_of_a_document_deleted_since_carries_only_what_the_description_says() -> None:
    event = mapper().map(load("update_deleted_since.json"))
    assert event is not None
    # Top-level fields set or removed are known; `address` changed inside: left alone (UNCHANGED).
    assert event.after == {"_id": OID, "qty": 6, "address": UNCHANGED, "customer": None}


def test_declared_fields_fill_absent_ones_with_null_and_refuse_undeclared_ones() -> None:
    fields = {"_id": "objectId", "customer": "string", "qty": "int", "note": "string"}
    event = mapper(fields).map(load("replace.json"))
    assert event is not None and event.op is Op.UPDATE
    assert event.after == {"_id": OID, "customer": "grace", "qty": 1, "note": None}
    partial = mapper({**fields, "address": "object"}).map(load("update_deleted_since.json"))
    assert partial is not None
    assert partial.after == {"_id": OID, "customer": None, "qty": 6, "note": UNCHANGED, "address": UNCHANGED}
    with pytest.raises(SourceMisconfigured, match=r"`total`.*not declared"):
        mapper(fields).map(load("insert.json"))


def test_delete_without_and_with_preimage() -> None:
    plain = mapper().map(load("delete.json"))
    assert plain is not None
    assert (plain.op, plain.key, plain.before, plain.after) == (Op.DELETE, {"_id": OID}, {"_id": OID}, None)
    full = mapper().map(load("delete_with_preimage.json"))
    assert full is not None
    assert full.before == {"_id": OID, "customer": "grace", "qty": 1} and full.after is None


def test_transaction_events_share_a_txid_and_keep_their_order() -> None:
    m = mapper()
    first, second = (m.map(change) for change in load("transaction.json"))
    assert first is not None and second is not None
    assert first.txid == second.txid == "dd5e72ee455d43a999f1bde8d16ab6b0:7"
    assert first.position < second.position  # same cluster time: seq orders them
    assert Resume.decode(second.position.resume).seq == 2


class Recorded:
    """A change stream that hands out recorded documents, then reports nothing new (``try_next`` is None)."""

    def __init__(self, documents: list[Any], stop: threading.Event) -> None:
        self.documents, self.stop = list(documents), stop

    def try_next(self) -> Any:
        if self.documents:
            return self.documents.pop(0)
        self.stop.set()
        return None


def test_a_transaction_writing_the_echo_marker_is_passed_on_as_echoes_whatever_the_marker_order() -> None:
    """Worker-Sync's transaction (marker first, then an insert and a replace), a user's transaction, a second
    Worker-Sync transaction whose marker comes last, then a write outside any transaction."""
    source = MongoSource(stream="s", node_name="mongo", node=SHOP_NODE, password=None, tables=[NS], echo_marker=True)
    assert source.echo_namespaces == {"shop.worker_sync_echo"}
    stop = threading.Event()
    items = [i for i in source._follow(Recorded(load("transaction_echo.json"), stop), mapper(), stop) if i is not None]
    kinds = [(type(i).__name__, getattr(i, "key", None), getattr(i, "origin", None)) for i in items]
    assert kinds == [
        ("ChangeEvent", {"_id": "k1"}, "pg_1"),
        ("ChangeEvent", {"_id": "k2"}, "pg_1"),
        ("TxnEnd", None, None),
        ("ChangeEvent", {"_id": "k3"}, None),
        ("TxnEnd", None, None),
        ("ChangeEvent", {"_id": "k3"}, "pg_1"),
        ("TxnEnd", None, None),
        ("ChangeEvent", {"_id": "k4"}, None),
        ("TxnEnd", None, None),
    ]
    ends = [i for i in items if isinstance(i, TxnEnd)]
    events = [i for i in items if not isinstance(i, TxnEnd)]
    assert [e.position for e in ends] == [events[1].position, events[2].position, events[3].position,
                                          events[4].position]  # fmt: skip
    assert events[2].origin is None and events[2].txid.endswith(":41")


def test_without_the_echo_marker_option_marker_writes_are_not_watched() -> None:
    source = MongoSource(stream="s", node_name="mongo", node=SHOP_NODE, password=None, tables=[NS])
    assert source.echo_namespaces == set()


def test_resumed_mapper_orders_after_the_committed_position() -> None:
    first = mapper().map(load("insert.json"))
    resumed = mapper(seq=Resume.decode(first.position.resume).seq).map(load("update.json"))
    assert first is not None and resumed is not None and resumed.position > first.position


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("drop.json", "`shop.orders` was dropped"),
        ("rename.json", "renamed to `shop.orders_2024`"),
        ("invalidate.json", "invalidated"),
    ],
)
def test_stream_ending_events_raise_with_the_remedy(name: str, words: str) -> None:
    with pytest.raises(SourceMisconfigured, match="re-snapshot") as info:
        mapper().map(load(name))
    assert words in str(info.value)


def test_apply_update_handles_nested_paths_truncation_and_array_indexes() -> None:
    before = {"_id": 1, "a": {"b": [1, 2, 3, 4]}, "c": 1, "d": {"e": 1}}
    change = {
        "updateDescription": {
            "updatedFields": {"a.b.1": 20, "x.y": "new", "c": {"n": 1}},
            "removedFields": ["d.e"],
            "truncatedArrays": [{"field": "a.b", "newSize": 2}],
        }
    }
    kept = copy.deepcopy((before, change))
    assert apply_update(before, change) == {"_id": 1, "a": {"b": [1, 20]}, "c": {"n": 1}, "d": {}, "x": {"y": "new"}}
    assert (before, change) == kept  # neither the pre-image nor the event is modified
    # A value the update sets, then a later path into it, and an array grown by index.
    nested = {"updateDescription": {"updatedFields": {"p": {"q": [0]}, "p.q.2": 7, "a.b.5": "z"}}}
    assert apply_update(before, nested)["p"] == {"q": [0, None, 7]}
    assert apply_update(before, nested)["a"] == {"b": [1, 2, 3, 4, None, "z"]}
    assert nested["updateDescription"]["updatedFields"]["p"] == {"q": [0]} and before == kept[0]


def test_positions_round_trip_and_reject_garbage() -> None:
    token = {"_data": "82AB"}
    assert Resume.decode(Resume(token=token, seq=9).encode()) == Resume(token=token, seq=9)
    at = Resume(at=Timestamp(5, 6), seq=3)
    assert Resume.decode(at.encode()) == at
    assert after(Timestamp(5, 6)) == Timestamp(5, 7)
    for bad in ("", "mysql-bin.000001:4", '{"seq": 1}', '{"token": 3, "seq": 1}'):
        with pytest.raises(ValueError, match="not a MongoDB stream position"):
            Resume.decode(bad)


def test_a_value_without_row_form_is_named_by_its_full_path() -> None:
    from bson.regex import Regex

    from actors.engines.mongodb.values import row_value

    with pytest.raises(ValueError, match=r"field `doc\.a\.1\.b` holds a BSON Regex, which has no row form"):
        row_value({"a": [1, {"b": Regex("x")}]}, "doc")
    with pytest.raises(ValueError, match=r"field `0\.k` holds a BSON Regex"):
        row_value([{"k": Regex("x")}])
    assert row_value({"n": bson.Int64(5), "t": (1, 2)}, "doc") == {"n": 5, "t": [1, 2]}
    assert type(row_value(bson.Int64(5))) is int
