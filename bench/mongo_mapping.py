"""MongoDB documents <-> rows without a server: Worker-Sync's own cost per event on both sides of a MongoDB node,
against what the driver spends decoding the same events.

    python bench/mongo_mapping.py [--events 60000] [--repeat 3]

No real mongod can run on the machines this is built on, and timing the nx-27017 stand-in (pure Python on
SQLite) would time the stand-in. So this times the part that is Worker-Sync's, on change events in the shapes
MongoDB sends (one in three each: an insert; an update with its pre-image, ``updateDescription`` and the
looked-up document; a delete with its pre-image), for a collection declaring ten fields of eight BSON types:

- ``decode``: ``bson.decode`` of each raw event, which pymongo does before Worker-Sync sees it: the reference;
- ``map``: EventMapper.map, the capture's per-event work (types checked against the declaration, the update
  applied to the pre-image);
- ``map+encode``: the same plus encoding batches of 500 as the capture ships them to the appliers (msgspec);
- ``to_bulk``: the writer turning upserts into ``ReplaceOne`` operations with exact BSON values, the
  applier's per-row work before the network.

Each figure is the median of --repeat runs; the ratios to ``decode`` are what to quote (this machine is shared).
Writes bench/results/mongo_mapping.{json,png}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bson
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128

from actors.core.batches import Batch
from actors.core.changes import RowChange
from actors.core.encoding import encode_batch
from actors.core.events import Position
from actors.engines.mongodb.events import EventMapper
from actors.engines.mongodb.writer import MongoWriter
from bench import report
from config.model import MongoNode, Tls

NS = "shop.orders"
FIELDS = {
    "_id": "objectId", "customer": "string(40)", "qty": "int", "big": "long", "total": "decimal", "placed_at": "date",
    "paid": "bool", "ref": "uuid", "blob": "binData", "items": "array", "meta": "object",
}  # fmt: skip
OPTIONS = CodecOptions(tz_aware=True, uuid_representation=UuidRepresentation.STANDARD)
BATCH = 500


def document(i: int) -> dict[str, Any]:
    return {
        "_id": bson.ObjectId(i.to_bytes(12, "big")),
        "customer": f"customer-{i % 977}",
        "qty": i % 1000,
        "big": i * 1_000_003,
        "total": Decimal128(f"{i % 100000}.{i % 100:02d}"),
        "placed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i),
        "paid": i % 2 == 0,
        "ref": uuid.UUID(int=i),
        "blob": Binary(i.to_bytes(16, "big")),
        "items": [{"sku": f"s{i % 50}", "n": 1}, {"sku": "x", "n": 2}],
        "meta": {"source": "web", "tags": ["a", "b"]},
    }


def change_event(i: int) -> dict[str, Any]:
    """Event i: insert, update (pre-image, updateDescription, looked-up document) or delete, in turn."""
    doc = document(i)
    base = {
        "_id": {"_data": f"8265A1B2C8{i:016X}2B042C0100"},
        "clusterTime": bson.Timestamp(1_767_225_600 + i // 1000, i % 1000 + 1),
        "wallTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i),
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": doc["_id"]},
    }
    kind = i % 3
    if kind == 0:
        return {**base, "operationType": "insert", "fullDocument": doc}
    if kind == 1:
        after = {**doc, "qty": doc["qty"] + 1, "paid": True}
        description = {"updatedFields": {"qty": after["qty"], "paid": True}, "removedFields": [], "truncatedArrays": []}
        return {**base, "operationType": "update", "updateDescription": description, "fullDocument": after,
                "fullDocumentBeforeChange": doc}  # fmt: skip
    return {**base, "operationType": "delete", "fullDocumentBeforeChange": doc}


def rate(count: int, seconds: float) -> float:
    return round(count / seconds) if seconds > 0 else 0.0


def timed(work: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = work()
    return rate(count, time.perf_counter() - started)


def run_once(raw: list[bytes], rows: list[RowChange], writer: MongoWriter) -> tuple[dict[str, float], dict[str, int]]:
    def decode() -> int:
        for data in raw:
            bson.decode(data, codec_options=OPTIONS)
        return len(raw)

    decoded = [bson.decode(data, codec_options=OPTIONS) for data in raw]

    def map_only() -> int:
        mapper = EventMapper(node="mongo", fields={NS: FIELDS})
        for change in decoded:
            mapper.map(change)
        return len(decoded)

    mapper = EventMapper(node="mongo", fields={NS: FIELDS})
    ops = Counter(str(event.op) for event in map(mapper.map, decoded) if event is not None)

    def map_and_encode() -> int:
        mapper = EventMapper(node="mongo", fields={NS: FIELDS})
        events = []
        seq = 0
        for change in decoded:
            events.append(mapper.map(change))
            if len(events) == BATCH:
                seq += 1
                encode_batch(Batch("mongo", seq, events, Position(seq.to_bytes(8, "big"), "")))
                events = []
        if events:
            encode_batch(Batch("mongo", seq + 1, events, Position((seq + 1).to_bytes(8, "big"), "")))
        return len(decoded)

    def to_bulk() -> int:
        bulks = writer._bulks(None, rows)  # the conversion alone: no server is contacted
        return sum(len(operations) for _, operations, _ in bulks.values())

    return {
        "decode": timed(decode),
        "map": timed(map_only),
        "map+encode": timed(map_and_encode),
        "to_bulk": timed(to_bulk),
    }, dict(ops)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="change events per run (default 60,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; each figure is their median (default 3)")
    report.add_results_dir(parser)
    args = parser.parse_args()
    if args.events < 3 or args.repeat < 1:
        parser.error("--events must be at least 3 and --repeat at least 1")
    report.begin(args)
    started = time.monotonic()
    report.say(f"building {args.events:,} change events and as many upserts")
    raw = [bson.encode(change_event(i), codec_options=OPTIONS) for i in range(args.events)]
    mapper = EventMapper(node="mongo", fields={NS: FIELDS})
    rows = []
    for i in range(args.events):
        row = mapper.shape(NS, document(i))
        rows.append(RowChange(NS, "upsert", {"_id": row["_id"]}, row))
    node = MongoNode(
        host="unused", database="shop", username="bench", tls=Tls(mode="disable"), collections={NS: FIELDS}
    )
    writer = MongoWriter(node, None, name="mongo")
    runs: list[dict[str, float]] = []
    ops: dict[str, int] = {}
    interrupted = False
    try:
        for n in range(args.repeat):
            rates, ops = run_once(raw, rows, writer)
            runs.append(rates)
            report.say(f"run {n + 1}/{args.repeat}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in runs[-1].items()))
    except KeyboardInterrupt:
        interrupted = True
    medians = {stage: report.median([r[stage] for r in runs]) for stage in ("decode", "map", "map+encode", "to_bulk")}
    decode = medians["decode"] or 1.0
    result: dict[str, Any] = {
        "events": args.events,
        "runs": runs,
        "per_second": medians,
        "ratio_to_decode": {stage: round(value / decode, 2) for stage, value in medians.items()},
        "bytes_per_event": round(sum(len(r) for r in raw) / len(raw)),
        "mapped_ops": ops,
    }
    # Every event maps to a change (a third of each kind): the rates are of work that was actually done.
    mapped_all = sum(ops.values()) == args.events and len(ops) == 3

    def plot(result: dict[str, Any], name: str) -> None:
        labels = list(result["per_second"])
        report.bar_plot(name, "MongoDB events/s per stage (median, one core)", labels,
                        [result["per_second"][k] for k in labels], "events/s")  # fmt: skip

    return report.finish(
        "mongo_mapping",
        result,
        ok=bool(runs) and mapped_all,
        interrupted=interrupted,
        started=started,
        plot=plot,
        answers=[
            f"capture maps {medians['map']:,.0f} events/s ({result['ratio_to_decode']['map']}x the driver's decode "
            f"rate); with batch encoding {medians['map+encode']:,.0f}/s; the writer builds {medians['to_bulk']:,.0f} "
            "upserts/s"
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
