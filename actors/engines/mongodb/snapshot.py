"""The initial snapshot of MongoDB collections, and the cluster time the change stream joins it at.

Why it is consistent on real MongoDB (a replica set or sharded cluster, 5.0+):

1. ``T`` is the ``operationTime`` of a majority read: every write acknowledged with ``w: majority``
   before it has a cluster time <= T, and T is majority-committed, so it can be read at.
2. Each collection is read with ``readConcern: {level: "snapshot", atClusterTime: T}`` (one cursor per
   collection, all in one session): the documents exactly as of T, whatever is written meanwhile.
3. The change stream then opens with ``startAtOperationTime`` = the cluster time right after T (that option
   includes its own time): it sends exactly the changes with cluster time > T. No change is in both, none in
   neither. The oplog must still hold T when the scan ends, and the scan must end within the server's
   ``minSnapshotHistoryWindowInSeconds`` (300 s by default; raise it for large collections), else the read
   fails with SnapshotTooOld and the stream stops with that remedy.

A server that reports no ``operationTime`` keeps no cluster time (it is not a replica set; a real standalone
``mongod`` has no change streams at all). There the stream is opened *before* the scan and read after it:
nothing is missed, but a document written during the scan can arrive twice (scanned, then streamed), which
the idempotent writers absorb. The ``nx-27017`` stand-in used in tests is such a server: it honours neither
``atClusterTime`` nor ``startAtOperationTime``, so tests of the exact join need a real ``mongod``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymongo
from bson.timestamp import Timestamp
from pymongo.client_session import ClientSession

from actors.core.errors import SourceMisconfigured
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.mongodb.events import ENGINE, EventMapper
from actors.engines.mongodb.positions import order_of
from actors.engines.mongodb.schema import split_namespace

log = logging.getLogger(__name__)

SNAPSHOT_TOO_OLD = 239


def majority_time(client: pymongo.MongoClient, namespace: str) -> Timestamp | None:
    """The cluster time of a majority read (step 1 above); None when the server reports none."""
    database, collection = split_namespace(namespace)
    reply = client[database].command(
        {"find": collection, "limit": 1, "batchSize": 1, "readConcern": {"level": "majority"}}
    )
    found = reply.get("operationTime")
    return found if isinstance(found, Timestamp) else None


def _snapshot_cursor(
    db: Any, collection: str, at: Timestamp, chunk_rows: int, session: ClientSession
) -> Iterator[dict[str, Any]]:
    reply = db.command(
        {
            "find": collection,
            "batchSize": chunk_rows,
            "readConcern": {"level": "snapshot", "atClusterTime": at},
        },
        session=session,
    )
    cursor = reply["cursor"]
    yield from cursor["firstBatch"]
    while cursor["id"]:
        reply = db.command(
            {"getMore": cursor["id"], "collection": collection, "batchSize": chunk_rows}, session=session
        )
        cursor = reply["cursor"]
        yield from cursor["nextBatch"]


def documents(
    client: pymongo.MongoClient, namespace: str, at: Timestamp | None, chunk_rows: int, session: ClientSession
) -> Iterator[dict[str, Any]]:
    """Every document of ``namespace``: as of ``at`` when given, else as a plain read finds them."""
    database, collection = split_namespace(namespace)
    if at is None:
        yield from client[database][collection].find({}, batch_size=chunk_rows, session=session)
        return
    try:
        yield from _snapshot_cursor(client[database], collection, at, chunk_rows, session)
    except pymongo.errors.OperationFailure as exc:
        if exc.code == SNAPSHOT_TOO_OLD:
            raise SourceMisconfigured(
                f"mongodb snapshot of `{namespace}`: the scan outlived the server's snapshot history "
                "(SnapshotTooOld); raise `minSnapshotHistoryWindowInSeconds` on the server above the scan's "
                "duration, or snapshot fewer collections per stream"
            ) from None
        raise


def read(
    client: pymongo.MongoClient,
    namespaces: list[str],
    mapper: EventMapper,
    *,
    at: Timestamp | None,
    chunk_rows: int,
    stop: threading.Event,
) -> Iterator[ChangeEvent]:
    """READ events for every document, ordered before every streamed change (their cluster time is > at)."""
    taken_us = int(time.time() * 1_000_000)
    with client.start_session(causal_consistency=False) as session:
        for namespace in namespaces:
            done = 0
            for document in documents(client, namespace, at, chunk_rows, session):
                after = mapper.shape(namespace, document)
                assert after is not None
                mapper.seq += 1
                yield ChangeEvent(
                    node=mapper.node,
                    engine=ENGINE,
                    namespace=namespace,
                    op=Op.READ,
                    key={"_id": after["_id"]},
                    before=None,
                    after=after,
                    commit_time_us=taken_us,
                    txid="snapshot",
                    position=Position(order_of(at, mapper.seq), ""),  # a crash restarts the snapshot
                )
                done += 1
                if stop.is_set():
                    return
            log.info("mongodb snapshot %s: done, %d documents", namespace, done)
