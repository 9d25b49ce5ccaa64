"""Offers to a MongoDB member of a bidirectional group (MongoWriter.apply_offers) against the harness endpoint.

Real MongoDB runs each offer slice in one multi-document transaction. The nx-27017 stand-in is no replica
set, so the writer refuses offers there (checked below). To still run the version bookkeeping over the wire
on the stand-in, ``writer_for`` builds a writer that assumes transactions when the server is the stand-in:
it accepts ``startTransaction``/``commitTransaction`` but ignores them, so those runs check decisions,
stored versions, the marker and the skipped writes, not atomicity. Atomicity, write conflicts and the echo
seen by a change stream (which needs ``lsid``/``txnNumber`` in the events) are real-mongod tests.
"""

from __future__ import annotations

import threading

import pytest

from actors.core.batches import TxnEnd
from actors.core.conflicts import Offer, Outcome, Version
from actors.core.errors import SinkError
from actors.engines.mongodb import versions
from actors.engines.mongodb.source import MongoSource
from actors.engines.mongodb.writer import MongoWriter
from actors.harness.mongo import MongoEndpoint
from tests.engines.test_mongo_parts import node_for
from tests.waiting import stays_true, wait_until

FIELDS = {"_id": "int", "v": "string"}


class _AssumingTransactions(MongoWriter):
    """The stand-in only: go on as if the server had transactions (see the module docstring)."""

    def _connect(self):
        client = super()._connect()
        self._transactions = True
        return client


def writer_for(endpoint: MongoEndpoint, namespace: str, echo_writer: str = "here_0") -> MongoWriter:
    kind = MongoWriter if endpoint.real else _AssumingTransactions
    return kind(node_for(endpoint, namespace, FIELDS), endpoint.password, name="here", echo_writer=echo_writer)


def offer(namespace: str, node: str, time_us: int, value: str | None, *, local: bool = False) -> Offer:
    row = None if value is None else {"_id": 1, "v": value}
    return Offer(namespace, {"_id": 1}, row, Version(time_us, 0, node, time_us.to_bytes(8, "big")), local=local)


def documents(endpoint: MongoEndpoint, database: str, collection: str = "kv") -> list[dict]:
    with endpoint.client() as client:
        return list(client[database][collection].find())


PRE_IMAGES = "does not record pre-images (changeStreamPreAndPostImages)"


@pytest.fixture
def prepared(mongo_server: MongoEndpoint, fresh_mongo_db: str) -> str:
    """``database.kv`` prepared as `worker-sync init` prepares a group member."""
    namespace = f"{fresh_mongo_db}.kv"
    with mongo_server.client() as client:
        assert versions.missing(client, [namespace]) == [
            f"`{fresh_mongo_db}.worker_sync_versions` is missing",
            f"`{fresh_mongo_db}.worker_sync_echo` is missing",
            f"`{namespace}` {PRE_IMAGES}",
        ]
        versions.prepare(client, [namespace])
        versions.prepare(client, [namespace])  # idempotent (the collections exist now)
        # The stand-in accepts collMod but keeps no collection options, so it never shows pre-images on.
        assert versions.missing(client, [namespace]) == ([] if mongo_server.real else [f"`{namespace}` {PRE_IMAGES}"])
    return namespace


def test_offers_are_refused_by_a_server_without_transactions(mongo_server: MongoEndpoint, prepared: str) -> None:
    if mongo_server.real:
        pytest.skip("a real mongod here is a replica set: this checks the refusal on a server that is none")
    plain = MongoWriter(node_for(mongo_server, prepared, FIELDS), mongo_server.password, name="here")
    with plain, pytest.raises(SinkError, match=r"needs multi-document transactions.*--replSet"):
        plain.apply_offers([offer(prepared, "there", 10, "ten")])
    assert documents(mongo_server, prepared.split(".")[0]) == []


def test_versions_decide_and_the_document_follows(mongo_server: MongoEndpoint, prepared: str) -> None:
    database = prepared.split(".")[0]
    with writer_for(mongo_server, prepared) as writer:
        assert [d.outcome for d in writer.apply_offers([offer(prepared, "there", 10, "ten")])] == [Outcome.WIN]
        assert documents(mongo_server, database) == [{"_id": 1, "v": "ten"}]
        # A replayed slice meets its own version; an older remote change is discarded.
        again = writer.apply_offers([offer(prepared, "there", 10, "ten"), offer(prepared, "elsewhere", 5, "five")])
        assert [d.outcome for d in again] == [Outcome.REPLAY, Outcome.DISCARD]
        assert documents(mongo_server, database) == [{"_id": 1, "v": "ten"}]
        # A user of this node writes after 'ten' arrived: causally later, its own offer wins (clock 7 or not).
        with mongo_server.client() as client:
            client[database]["kv"].update_one({"_id": 1}, {"$set": {"v": "mine"}})
        later = writer.apply_offers([offer(prepared, "here", 7, "mine", local=True)])
        assert [d.outcome for d in later] == [Outcome.WIN]
        assert documents(mongo_server, database) == [{"_id": 1, "v": "mine"}]
        # A user's write racing a newer remote change: that one is stored, not written over the pending value,
        # and the user's own offer then loses and repairs the document.
        with mongo_server.client() as client:
            client[database]["kv"].update_one({"_id": 1}, {"$set": {"v": "racing"}})
        newer = writer.apply_offers([offer(prepared, "there", 30, "thirty")])
        assert [d.outcome for d in newer] == [Outcome.WIN]
        assert documents(mongo_server, database) == [{"_id": 1, "v": "racing"}]
        repaired = writer.apply_offers([offer(prepared, "here", 12, "racing", local=True)])
        assert [d.outcome for d in repaired] == [Outcome.REPAIR]
        assert documents(mongo_server, database) == [{"_id": 1, "v": "thirty"}]
        # A newer delete wins; an older update after it is discarded (update-after-delete).
        gone = writer.apply_offers([offer(prepared, "there", 40, None), offer(prepared, "elsewhere", 35, "late")])
        assert [d.outcome for d in gone] == [Outcome.WIN, Outcome.DISCARD]
        assert documents(mongo_server, database) == []
    (stored,) = documents(mongo_server, database, versions.VERSIONS)
    assert stored["_id"].startswith(f"{prepared}/") and len(stored["_id"]) == len(prepared) + 1 + 64
    markers = documents(mongo_server, database, versions.ECHO)
    assert markers == [{"_id": "here_0", "applied": 6}]  # one bump per offer transaction (6 calls)


def test_a_documents_own_change_offered_back_is_not_written_again(mongo_server: MongoEndpoint, prepared: str) -> None:
    """The write would only come back as one more echo: the document is read in the transaction and skipped."""
    database = prepared.split(".")[0]
    with mongo_server.client() as client:
        client[database]["kv"].insert_one({"_id": 1, "v": "mine"})
        with client[database]["kv"].watch(max_await_time_ms=200) as stream, writer_for(mongo_server, prepared) as w:
            assert [d.outcome for d in w.apply_offers([offer(prepared, "here", 7, "mine", local=True)])] == [
                Outcome.WIN
            ]
            seen: list[dict] = []

            def read() -> list[dict]:
                change = stream.try_next()
                if change is not None:
                    seen.append(change)
                return seen

            stays_true(lambda: read() == [], for_s=1.0, what=lambda: f"no change on the stream, saw {seen}")
            # A different value is written (and seen).
            w.apply_offers([offer(prepared, "there", 9, "theirs")])
            wait_until(lambda: read() != [], timeout_s=5.0, what="the offered value's change on the stream")
            assert [c["fullDocument"]["v"] for c in seen if c.get("fullDocument")] == ["theirs"]


def test_concurrent_writers_of_one_row_never_decide_against_the_same_version(
    real_mongo: MongoEndpoint, prepared: str
) -> None:
    """Two writers offer interleaved versions of one row at once: write conflicts retry whole transactions,
    so the stored winner and the document are the newest offer's, whatever the interleaving."""
    database = prepared.split(".")[0]
    errors: list[BaseException] = []

    def offer_all(name: str, times: range) -> None:
        try:
            with writer_for(real_mongo, prepared, echo_writer=name) as writer:
                for t in times:
                    writer.apply_offers([offer(prepared, name, t, f"{name}-{t}")])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=offer_all, args=("a", range(1, 400, 2))),
        threading.Thread(target=offer_all, args=("b", range(2, 401, 2))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert documents(real_mongo, database) == [{"_id": 1, "v": "b-400"}]


def test_the_capture_sees_offer_transactions_as_echoes_and_users_writes_as_changes(
    real_mongo: MongoEndpoint, prepared: str
) -> None:
    database = prepared.split(".")[0]
    source = MongoSource(stream="s", node_name="here", node=node_for(real_mongo, prepared, FIELDS),
                         password=real_mongo.password, tables=[prepared], echo_marker=True)  # fmt: skip
    stop = threading.Event()
    past_snapshot = threading.Event()
    items: list[object] = []

    def read() -> None:
        for item in source.changes(None, stop):
            if isinstance(item, TxnEnd):
                if item.txid == "snapshot":  # what comes after is read from the change stream
                    past_snapshot.set()
            elif item is not None:
                items.append(item)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(past_snapshot.is_set, timeout_s=30, what="the capture to pass its (empty) snapshot")
        with writer_for(real_mongo, prepared) as writer:
            writer.apply_offers([offer(prepared, "there", 10, "ten")])
        with real_mongo.client() as client:
            client[database]["kv"].update_one({"_id": 1}, {"$set": {"v": "user"}})
        wait_until(lambda: len(items) >= 2, timeout_s=10, what=lambda: f"both changes captured, got {items}")
    finally:
        stop.set()
        source.close()
    assert [(e.after, e.origin) for e in items] == [({"_id": 1, "v": "ten"}, "here_0"), ({"_id": 1, "v": "user"}, None)]
