"""PostgreSQL <-> MongoDB in one bidirectional group, end to end: both written at once, then both hold the same
rows and no change came back as a new one (echoes suppressed), as tests/actors/test_bidirectional.py checks
for the SQL engines.

Needs a real MongoDB replica set: a group member's writes and their echo marker are one multi-document
transaction, and the capture recognises the transaction by the ``lsid``/``txnNumber`` of its change events,
neither of which the nx-27017 stand-in has. On the stand-in the test skips with that reason (the writer's
version bookkeeping still runs there, in tests/engines/test_mongo_offers.py).
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
from pymongo import errors

from actors.engines.mongodb import versions
from actors.harness import Endpoint
from actors.harness.bidirectional import prepare_bidirectional
from actors.harness.mongo import MongoEndpoint
from actors.harness.secret_files import write_secret_file
from config import parse_config
from tests.actors.test_bidirectional import Writer, _idle, counter, streaming
from tests.pipeline_helpers import running

pytestmark = pytest.mark.usefixtures("ray_session")

FIELDS = "{_id: long, owner: 'string(16)', n: int, note: 'string(64)'}"


class MongoWriterThread(threading.Thread):
    """The MongoDB twin of test_bidirectional.Writer: the same mix on overlapping keys, one write at a time."""

    def __init__(self, mongo: MongoEndpoint, database: str, ops: int, keys: int, seed: int) -> None:
        super().__init__(name="writer-mongo", daemon=True)
        self.mongo, self.database, self.ops, self.keys = mongo, database, ops, keys
        self.random = random.Random(seed)
        self.changed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.mongo.client() as client:
                kv = client[self.database]["kv"]
                for i in range(self.ops):
                    key = self.random.randint(1, 5) if i % 5 == 0 else self.random.randint(1, self.keys)
                    roll = self.random.random()
                    if roll < 0.4:
                        try:
                            kv.insert_one({"_id": key, "owner": "mongo", "n": 0, "note": f"mongo-{i}"})
                            self.changed += 1
                        except errors.DuplicateKeyError:
                            pass
                    elif roll < 0.85:
                        done = kv.update_one(
                            {"_id": key}, {"$inc": {"n": 1}, "$set": {"owner": "mongo", "note": f"u{i}"}}
                        )
                        self.changed += done.modified_count
                    else:
                        self.changed += kv.delete_one({"_id": key}).deleted_count
                    time.sleep(0.001)
        except BaseException as exc:  # reported by the test
            self.error = exc


def pg_rows(pg: Endpoint) -> dict[int, tuple]:
    with pg.connect("admin") as conn:
        return {r[0]: tuple(r) for r in conn.execute("SELECT id, owner, n, note FROM public.kv").fetchall()}


def mongo_rows(mongo: MongoEndpoint, database: str) -> dict[int, tuple]:
    with mongo.client() as client:
        return {d["_id"]: (d["_id"], d.get("owner"), d.get("n"), d.get("note")) for d in client[database]["kv"].find()}


def config_for(pg: Endpoint, mongo: MongoEndpoint, database: str, tmp_path: Path):
    with pg.connect("admin") as conn:
        # As test_bidirectional's table, but `n` nullable: a document may lack the field, so the start-up check
        # refuses a NOT NULL column for it.
        conn.execute("CREATE TABLE public.kv (id bigint PRIMARY KEY, owner varchar(16), n int, note varchar(64))")
    prepare_bidirectional(pg, account="capture")
    with mongo.client() as client:
        versions.prepare(client, [f"{database}.kv"])  # as `worker-sync init` does
    pg_password = write_secret_file(tmp_path, "pg-password", pg.capture.password)
    mongo_password = (
        f", password_file: '{write_secret_file(tmp_path, 'mongo-password', mongo.password)}'" if mongo.password else ""
    )
    replica_set = f", replica_set: {mongo.replica_set}" if mongo.replica_set else ""
    text = f"""
nodes:
  - {{name: pg, engine: postgresql, host: {pg.host}, port: {pg.port}, database: {pg.database},
      username: {pg.capture.user}, password_file: {pg_password}, tls: {{mode: disable}}, priority: 1,
      slot_name: ws_{pg.database}}}
  - {{name: mongo, engine: mongodb, host: '{mongo.host}', port: {mongo.port}, database: {database},
      username: '{mongo.username}', auth_source: {mongo.auth_source}, tls: {{mode: disable}},
      priority: 0{replica_set}{mongo_password},
      collections: {{'{database}.kv': {FIELDS}}}}}
links:
  - {{name: pg-mongo, source: pg, target: mongo, bidirectional: true,
      tables: [{{source: public.kv, target: {database}.kv, columns: {{id: _id}}}}]}}
audit:
  enabled: false
supervisor:
  applier_shards: 2
  state_dir: {tmp_path / "state"}
  restart_backoff_initial_s: 0.5
  restart_backoff_max_s: 2
http:
  token_env: null
"""
    return parse_config(text, source="test config")


def test_postgresql_and_mongodb_written_concurrently_converge_without_echoes(
    fresh_pg_db: Endpoint, real_mongo: MongoEndpoint, fresh_mongo_db: str, tmp_path: Path
) -> None:
    config = config_for(fresh_pg_db, real_mongo, fresh_mongo_db, tmp_path)
    names = ("worker_sync_events_captured_total", "worker_sync_echoes_suppressed_total", "worker_sync_offers_total")
    before = {name: counter(name) for name in names}
    with running(config) as supervisor:
        streaming(supervisor, timeout_s=120)
        writers = [
            Writer("pg", fresh_pg_db, 800, 80, seed=1),
            MongoWriterThread(real_mongo, fresh_mongo_db, 800, 80, 2),
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=300)
            assert writer.error is None, f"{writer.name}: {writer.error}"
        deadline = time.monotonic() + 90
        while True:
            pg, mongo = pg_rows(fresh_pg_db), mongo_rows(real_mongo, fresh_mongo_db)
            if pg == mongo and _idle(supervisor):
                time.sleep(1.0)
                if pg_rows(fresh_pg_db) == pg and mongo_rows(real_mongo, fresh_mongo_db) == mongo and _idle(supervisor):
                    break
            differ = {k: (pg.get(k), mongo.get(k)) for k in pg.keys() | mongo.keys() if pg.get(k) != mongo.get(k)}
            assert time.monotonic() < deadline, f"nodes differ, e.g. {list(differ.items())[:5]}; {supervisor.status()}"
            time.sleep(0.5)
    counts = {name: counter(name) - value for name, value in before.items()}
    changed = sum(w.changed for w in writers)
    print("pg<->mongo run:", json.dumps({"changes_made": changed, "rows": len(pg), **counts}))
    assert counts["worker_sync_events_captured_total"] - counts["worker_sync_echoes_suppressed_total"] == changed
    assert counts["worker_sync_offers_total"] == 2 * changed
