"""Issue 21, the MongoDB oplog window as a stream's retention figures (actors/engines/mongodb/retention.py).

The arithmetic runs on documents in the shapes MongoDB documents for `local.oplog.rs` entries and for
`$collStats` (`storageStats`), written by hand like tests/engines/mongo_events (no real mongod could be run
where this was built). The `nx-27017` stand-in has no oplog: the engine reports no figure, without an error.
With a real mongod (WORKER_SYNC_MONGO_URI, or `mongod` on PATH) the figures are read from its own oplog.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from bson import json_util
from bson.timestamp import Timestamp

from actors.core.events import Position
from actors.engines.mongodb.engine import MongoEngine
from actors.engines.mongodb.positions import order_of
from actors.engines.mongodb.retention import (
    OplogFacts,
    facts_from,
    oplog_facts,
    resume_seconds,
    window_retention,
)
from actors.harness.mongo import MongoEndpoint
from tests.engines.test_mongo_parts import node_for

#: The first and last entries of a full 1 GiB oplog holding 10 hours (as `find({}, {ts: 1})` returns them,
#: `ts` and `_id`-less entries of `db.oplog.rs.find().sort({$natural: 1}).limit(1)`), and its `$collStats`.
FIRST = '{"ts": {"$timestamp": {"t": 1764990000, "i": 3}}}'
LAST = '{"ts": {"$timestamp": {"t": 1765026000, "i": 1}}}'
FULL_STATS = """{"ns": "local.oplog.rs", "host": "db1:27017", "localTime": {"$date": "2025-12-06T13:00:00Z"},
 "storageStats": {"size": 1063004405, "count": 4200000, "avgObjSize": 253, "storageSize": 402853888,
                  "capped": true, "max": -1, "maxSize": 1073741824, "nindexes": 0}}"""
HALF_STATS = FULL_STATS.replace('"size": 1063004405', '"size": 536870912')
HOUR = 3600


def facts(stats: str = FULL_STATS) -> OplogFacts:
    found = facts_from(json_util.loads(FIRST), json_util.loads(LAST), json_util.loads(stats))
    assert found is not None
    return found


def test_recorded_documents_give_the_window_and_size() -> None:
    assert facts() == OplogFacts(oldest_s=1764990000, newest_s=1765026000, used_bytes=1063004405, max_bytes=1073741824)
    assert facts_from({"op": "n"}, json_util.loads(LAST), None) is None  # an entry without `ts`


def test_a_stream_near_the_newest_entry_has_the_window_ahead() -> None:
    window = facts()
    measured = window_retention(window.newest_s - 60, window)  # one minute behind
    assert measured.state == "ok"
    assert measured.headroom_seconds == 10 * HOUR - 60
    # It still needs the last minute of the 10 hours the oplog holds: 1/600 of its bytes.
    assert measured.retained_bytes == int(1063004405 * 60 / (10 * HOUR))
    assert "oplog window 36000 s" in measured.detail


def test_a_stream_in_the_oldest_tenth_is_at_risk_and_one_rolled_past_is_lost() -> None:
    window = facts()
    at_risk = window_retention(window.oldest_s + HOUR - 1, window)  # under a tenth of 10 h from the end
    assert at_risk.state == "at_risk" and at_risk.headroom_seconds == HOUR - 1
    safe = window_retention(window.oldest_s + HOUR + 1, window)
    assert safe.state == "ok"
    lost = window_retention(window.oldest_s - 1, window)
    assert lost.state == "lost" and lost.headroom_seconds == 0.0 and "rolled over" in lost.detail


def test_an_oplog_still_filling_adds_the_time_to_fill_it() -> None:
    half = facts(HALF_STATS)  # 512 MiB of 1 GiB in 10 h: 10 h more before anything rolls off
    measured = window_retention(half.oldest_s, half)
    assert measured.headroom_seconds == pytest.approx(10 * HOUR)
    assert measured.state == "ok" and "50% full" in measured.detail


def test_positions_without_a_cluster_time_give_no_figure() -> None:
    assert resume_seconds(order_of(Timestamp(1765026000, 4), 9)) == 1765026000
    assert resume_seconds(order_of(None, 9)) is None  # a stream on the stand-in: no cluster times
    assert resume_seconds(b"") is None


def node_with_password(endpoint: MongoEndpoint, tmp_path: Path, ns: str):
    node = node_for(endpoint, ns, {"_id": "string"})
    if not endpoint.password:
        return node
    secret = tmp_path / "mongo-password"
    secret.write_text(endpoint.password)
    return msgspec.structs.replace(node, password_file=str(secret))


def test_the_stand_in_has_no_oplog_and_gives_no_figure(mongo_server: MongoEndpoint, tmp_path: Path) -> None:
    if mongo_server.real:
        pytest.skip("the stand-in's case: a real mongod is in use")
    node = node_with_password(mongo_server, tmp_path, "shop.items")
    with mongo_server.client() as client:
        assert oplog_facts(client) is None
    position = Position(order_of(Timestamp(1765026000, 1), 3), "")
    assert MongoEngine().retention("m", node, position) is None


def test_a_real_oplog_gives_its_window(real_mongo: MongoEndpoint, fresh_mongo_db: str, tmp_path: Path) -> None:
    with real_mongo.client() as client:
        client[fresh_mongo_db]["items"].insert_one({"_id": "a"})
        found = oplog_facts(client)
    assert found is not None and found.oldest_s <= found.newest_s and found.used_bytes > 0
    assert found.max_bytes is not None and found.max_bytes >= found.used_bytes
    node = node_with_password(real_mongo, tmp_path, f"{fresh_mongo_db}.items")
    engine = MongoEngine()
    current = engine.retention("m", node, Position(order_of(Timestamp(found.newest_s, 1), 1), ""))
    assert current is not None and current.state == "ok", current
    assert current.headroom_seconds is not None and current.headroom_seconds >= found.newest_s - found.oldest_s
    gone = engine.retention("m", node, Position(order_of(Timestamp(found.oldest_s - 1, 1), 1), ""))
    assert gone is not None and gone.state == "lost", gone
