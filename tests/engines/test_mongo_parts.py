"""MongoDB engine parts: type mapping and the start-up check (pure), the writer and the source against the
harness endpoint (a real mongod when available, else the nx-27017 stand-in; real-only tests skip there)."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid

import bson
import pytest
from bson.decimal128 import Decimal128

from actors.core.batches import TxnEnd
from actors.core.changes import RowChange
from actors.core.errors import ConfigError, OffsetLost, SinkError
from actors.core.events import UNCHANGED, Op, Position
from actors.core.mapping import check_mapping
from actors.core.typemap import Column, ColumnType, TableSchema
from actors.engines.mongodb.schema import collection_schema
from actors.engines.mongodb.source import MongoSource
from actors.engines.mongodb.values import bson_converter, json_value
from actors.engines.mongodb.writer import MongoWriter
from actors.harness.mongo import MongoEndpoint
from config.model import MongoNode, Tls

FIELDS = {"_id": "string(64)", "qty": "int", "total": "decimal", "at": "date", "blob": "binData", "ref": "uuid",
          "doc": "object", "big": "long", "ratio": "double", "ok": "bool", "oid": "objectId"}  # fmt: skip


def pg_like(columns: dict[str, ColumnType]) -> TableSchema:
    return TableSchema(
        namespace="public.t",
        columns=tuple(
            Column(name=n, type=t, type_text=t.name or t.family, nullable=n != "_id") for n, t in columns.items()
        ),
        primary_key=("_id",),
    )


def test_start_up_check_refuses_what_bson_cannot_hold() -> None:
    target = collection_schema("m", {"d.c": FIELDS}, "d.c")
    ok = pg_like(
        {
            "_id": ColumnType(family="text", name="varchar", length=64),
            "total": ColumnType(family="decimal", name="numeric", precision=12, scale=2),
            "at": ColumnType(family="timestamptz", name="timestamptz", precision=3),
            "ref": ColumnType(family="uuid", name="uuid"),
            "big": ColumnType(family="integer", name="bigint", bits=64),
        }
    )
    assert check_mapping(ok, target, {}, "refuse") == []
    micro = pg_like(
        {"_id": ok.columns[0].type, "at": ColumnType(family="timestamptz", name="timestamptz", precision=6)}
    )
    with pytest.raises(ConfigError, match="keeps 3 fractional second digits"):
        check_mapping(micro, target, {}, "refuse")
    assert len(check_mapping(micro, target, {}, "warn")) == 1
    text_to_oid = pg_like({"_id": ok.columns[0].type, "oid": ColumnType(family="text", name="text")})
    with pytest.raises(ConfigError, match="character set `hex`"):
        check_mapping(text_to_oid, target, {}, "refuse")
    wide = pg_like({"_id": ok.columns[0].type, "total": ColumnType(family="decimal", name="numeric", precision=40)})
    with pytest.raises(ConfigError, match="34 significant digits"):
        check_mapping(wide, target, {}, "refuse")
    # And back: a Decimal128 has no fixed scale; an ObjectId fits 24 characters of text.
    back = pg_like(
        {
            "_id": ColumnType(family="text", name="text"),
            "total": ColumnType(family="decimal", name="numeric", precision=12, scale=2),
            "oid": ColumnType(family="text", name="bpchar", length=24, fixed=True),
        }
    )
    source = collection_schema("m", {"d.c": {"_id": "string", "total": "decimal", "oid": "objectId"}}, "d.c")
    with pytest.raises(ConfigError, match="fixed scale"):
        check_mapping(source, back, {}, "refuse")
    loose = pg_like({**{c.name: c.type for c in back.columns}, "total": ColumnType(family="decimal", name="numeric")})
    assert check_mapping(source, loose, {}, "refuse") == []
    with pytest.raises(ConfigError, match="no declared fields"):
        collection_schema("m", {}, "d.other")


def test_row_values_become_exact_bson_or_are_refused() -> None:
    assert bson_converter("decimal")(decimal.Decimal("1.10")) == Decimal128("1.10")
    with pytest.raises(ValueError, match="34 significant digits"):
        bson_converter("decimal")(decimal.Decimal("1." + "1" * 40))
    assert bson_converter("long")(2**40) == bson.Int64(2**40) and type(bson_converter("long")(1)) is bson.Int64
    with pytest.raises(ValueError, match="out of range"):
        bson_converter("int")(2**31)
    assert bson_converter("objectId")("65a1b2c3d4e5f60718293a4b") == bson.ObjectId("65a1b2c3d4e5f60718293a4b")
    with pytest.raises(ValueError, match="not an ObjectId"):
        bson_converter("objectId")("xyz")
    assert bson_converter("date")(dt.date(2024, 1, 2)) == dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    assert bson_converter("uuid")(uuid.UUID(int=5).bytes) == uuid.UUID(int=5)
    assert bson_converter("object")('{"a": 0.1}') == {"a": Decimal128("0.1")}
    with pytest.raises(ValueError, match="string\\(3\\)"):
        bson_converter("string(3)")("abcd")
    # JSON numbers keep their value: an int, a double when it is exactly the number, else Decimal128.
    assert json_value([1, decimal.Decimal("1.5"), decimal.Decimal("0.1")]) == [1, 1.5, Decimal128("0.1")]


def test_tls_modes_and_the_single_pem_rule() -> None:
    from actors.engines.mongodb.connection import tls_options

    assert tls_options(Tls(mode="prefer")) == {"tls": False}
    assert tls_options(Tls(mode="verify-full", ca_file="ca.pem"))["tlsAllowInvalidHostnames"] is False
    assert tls_options(Tls(mode="require"))["tlsAllowInvalidCertificates"] is True
    with pytest.raises(ConfigError, match="one PEM file"):
        tls_options(Tls(mode="require", cert_file="c.pem", key_file="k.pem"), "m")


def node_for(endpoint: MongoEndpoint, namespace: str, fields: dict[str, str]) -> MongoNode:
    return MongoNode(
        host=endpoint.host,
        port=endpoint.port,
        database=namespace.split(".")[0],
        username=endpoint.username,
        replica_set=endpoint.replica_set,
        tls=Tls(mode="disable"),
        collections={namespace: fields},
    )


def upsert(ns: str, key: str, **row: object) -> RowChange:
    return RowChange(ns, "upsert", {"_id": key}, {"_id": key, **row})


def writer_round(endpoint: MongoEndpoint, database: str, fields: dict[str, str], values: dict[str, object]) -> None:
    """Apply a slice twice (a replay changes nothing), then a partial upsert, then refused changes."""
    ns = f"{database}.items"
    blank = dict.fromkeys(values)
    slice_ = [
        upsert(ns, "a", **values),
        upsert(ns, "b", **blank),
        upsert(ns, "a", **{**dict.fromkeys(values, UNCHANGED), "qty": 3}),
        RowChange(ns, "delete", {"_id": "b"}, None),
        upsert(ns, "c", **{**blank, "qty": 9}),
    ]
    with MongoWriter(node_for(endpoint, ns, fields), endpoint.password, name="m") as writer:
        for _ in range(2):
            writer.apply(slice_)
            with endpoint.client() as client:
                docs = {d["_id"]: d for d in client[database]["items"].find()}
            assert set(docs) == {"a", "c"}
            assert docs["a"] == {"_id": "a", **values, "qty": 3}
            assert docs["c"] == {"_id": "c", **blank, "qty": 9}
        writer.apply([upsert(ns, "c", **{**dict.fromkeys(values, UNCHANGED), "qty": 10})])
        with endpoint.client() as client:
            assert client[database]["items"].find_one({"_id": "c"}) == {"_id": "c", **blank, "qty": 10}
        with pytest.raises(SinkError, match="field `qty`: 2147483648 is out of range"):
            writer.apply([upsert(ns, "d", qty=2**31)])
        with pytest.raises(SinkError, match="no declared field `nope`"):
            writer.apply([upsert(ns, "d", nope=1)])
        with pytest.raises(SinkError, match="addressed by `_id`"):
            writer.apply([RowChange(ns, "delete", {"id": "a"}, None)])


def test_writer_upserts_and_deletes_idempotently(mongo_server: MongoEndpoint, fresh_mongo_db: str) -> None:
    fields = {"_id": "string", "qty": "int", "doc": "object", "big": "long", "ok": "bool", "name": "string(8)"}
    values = {"qty": 1, "doc": {"k": [1, 2]}, "big": 2**40, "ok": True, "name": "héllo"}
    writer_round(mongo_server, fresh_mongo_db, fields, values)


def test_writer_replays_dates_binary_decimals(real_mongo: MongoEndpoint, fresh_mongo_db: str) -> None:
    """The stand-in cannot update a document holding a datetime or binary (nor store Decimal128)."""
    fields = {"_id": "string", "qty": "int", "at": "date", "blob": "binData", "total": "decimal", "ref": "uuid"}
    values = {"qty": 1, "at": dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC), "blob": b"\x00\xff",
              "total": Decimal128("12.30"), "ref": uuid.UUID(int=7)}  # fmt: skip
    writer_round(real_mongo, fresh_mongo_db, fields, values)


def collect(source: MongoSource, resume: Position | None, until, timeout_s: float = 20) -> list[object]:
    stop = threading.Event()
    items: list[object] = []
    deadline = time.monotonic() + timeout_s
    for item in source.changes(resume, stop):
        if item is not None:
            items.append(item)
        if until(items) or time.monotonic() > deadline:
            break
    source.close()
    return items


def events_of(items: list[object]) -> list:
    return [i for i in items if not isinstance(i, TxnEnd)]


def test_source_snapshots_streams_and_resumes(mongo_server: MongoEndpoint, fresh_mongo_db: str) -> None:
    ns = f"{fresh_mongo_db}.items"
    node = node_for(mongo_server, ns, {"_id": "string", "qty": "int"})
    with mongo_server.client() as client:
        coll = client[fresh_mongo_db]["items"]
        coll.insert_many([{"_id": f"k{i}", "qty": i} for i in range(5)])

        def make() -> MongoSource:
            return MongoSource(stream="s", node_name="m", node=node, password=mongo_server.password, tables=[ns])

        source = make()
        stop = threading.Event()
        items: list[object] = []
        iterator = source.changes(None, stop)
        for item in iterator:  # the snapshot, up to its end marker
            if item is not None:
                items.append(item)
            if items and isinstance(items[-1], TxnEnd):
                break
        snap = events_of(items)
        assert [e.op for e in snap] == [Op.READ] * 5 and {e.key["_id"] for e in snap} == {f"k{i}" for i in range(5)}
        coll.insert_one({"_id": "k9", "qty": 9})
        coll.update_one({"_id": "k1"}, {"$set": {"qty": 10}})
        coll.delete_one({"_id": "k2"})
        deadline = time.monotonic() + 20
        for item in iterator:
            if item is not None:
                items.append(item)
            if len(events_of(items)) >= 8 or time.monotonic() > deadline:
                break
        source.close()
        streamed = events_of(items)[5:]
        assert [(e.op, e.key["_id"]) for e in streamed] == [(Op.INSERT, "k9"), (Op.UPDATE, "k1"), (Op.DELETE, "k2")]
        assert streamed[1].after == {"_id": "k1", "qty": 10}
        positions = [i.position for i in items]
        assert positions == sorted(positions)
        # Resume after the insert: the update and the delete come again, nothing before them.
        coll.insert_one({"_id": "k10", "qty": 10})
        again = events_of(collect(make(), streamed[0].position, lambda got: len(events_of(got)) >= 3))
        assert [(e.op, e.key["_id"]) for e in again] == [(Op.UPDATE, "k1"), (Op.DELETE, "k2"), (Op.INSERT, "k10")]
        assert again[0].position == streamed[1].position


def test_a_garbled_position_is_offset_lost(mongo_server: MongoEndpoint, fresh_mongo_db: str) -> None:
    ns = f"{fresh_mongo_db}.items"
    source = MongoSource(stream="s", node_name="m", node=node_for(mongo_server, ns, {"_id": "string"}),
                         password=None, tables=[ns])  # fmt: skip
    with pytest.raises(OffsetLost, match="re-snapshot"):
        next(source.changes(Position(b"\x00", "mysql-bin.000001:4"), threading.Event()))


def test_history_lost_is_offset_lost(real_mongo: MongoEndpoint, fresh_mongo_db: str) -> None:
    """A resume point older than the oplog: real MongoDB answers 286 (ChangeStreamHistoryLost)."""
    ns = f"{fresh_mongo_db}.items"
    from bson.timestamp import Timestamp

    from actors.engines.mongodb.positions import Resume

    gone = Position(b"\x00", Resume(at=Timestamp(1, 1), seq=1).encode())
    source = MongoSource(stream="s", node_name="m", node=node_for(real_mongo, ns, {"_id": "string"}),
                         password=real_mongo.password, tables=[ns])  # fmt: skip
    with pytest.raises(OffsetLost, match="oplog no longer holds it"):
        collect(source, gone, lambda got: False, timeout_s=5)


def test_real_update_description_and_preimages(real_mongo: MongoEndpoint, fresh_mongo_db: str) -> None:
    ns = f"{fresh_mongo_db}.items"
    with real_mongo.client() as client:
        db = client[fresh_mongo_db]
        db.create_collection("items", changeStreamPreAndPostImages={"enabled": True})
        db["items"].insert_one({"_id": "a", "qty": 1, "doc": {"x": [1, 2, 3]}})
        source = MongoSource(stream="s", node_name="m", node=node_for(real_mongo, ns,
                             {"_id": "string", "qty": "int", "doc": "object"}), password=real_mongo.password,
                             tables=[ns])  # fmt: skip
        stop = threading.Event()
        iterator = source.changes(None, stop)
        items: list[object] = []
        for item in iterator:
            if item is not None:
                items.append(item)
            if items and isinstance(items[-1], TxnEnd):
                break
        db["items"].update_one({"_id": "a"}, [{"$set": {"qty": 2, "doc.x": [1]}}])
        db["items"].update_one({"_id": "a"}, {"$set": {"qty": 3}})
        db["items"].delete_one({"_id": "a"})
        for item in iterator:
            if item is not None:
                items.append(item)
            if len(events_of(items)) >= 4:
                break
        source.close()
        first, second, gone = events_of(items)[1:]
        assert first.after == {"_id": "a", "qty": 2, "doc": {"x": [1]}} and first.before["qty"] == 1
        assert second.after["qty"] == 3 and second.before["qty"] == 2
        assert gone.before == {"_id": "a", "qty": 3, "doc": {"x": [1]}}


def test_real_transactions_apply_whole_slices(real_mongo: MongoEndpoint, fresh_mongo_db: str) -> None:
    ns = f"{fresh_mongo_db}.items"
    with MongoWriter(node_for(real_mongo, ns, {"_id": "string", "qty": "int"}), real_mongo.password, name="m") as w:
        w.apply([upsert(ns, "a", qty=1)])
        with pytest.raises(SinkError):
            w.apply([upsert(ns, "a", qty=2), upsert(ns, "b", qty=2**40)])
        with real_mongo.client() as client:
            assert list(client[fresh_mongo_db]["items"].find({}, {"_id": 1, "qty": 1})) == [{"_id": "a", "qty": 1}]
