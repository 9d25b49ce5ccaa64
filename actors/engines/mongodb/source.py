"""MongoSource: the change stream of a MongoDB node's collections as a ChangeSource (snapshot, then stream).

One change stream per capture stream: on the collection when the stream captures one, on the database
(``$match`` on the collection names) when they share one, on the deployment otherwise. Options:
``fullDocument: updateLookup`` and ``fullDocumentBeforeChange: whenAvailable`` (pre-images where the
collection has ``changeStreamPreAndPostImages``; see events.py for how each is used).

Where a stream starts (``changes(resume_after)``): with no resumable position, the initial snapshot
(snapshot.py) and the stream from where it ends; otherwise ``resumeAfter`` the committed event's token
(or ``startAtOperationTime`` for a position at a snapshot's end). A resume point the oplog no longer holds
(ChangeStreamHistoryLost, code 286) or a token the server refuses (code 280) raises OffsetLost naming the
remedy, a re-snapshot: never a silent gap.

On a node in a bidirectional group (``echo_marker``) the stream also covers Worker-Sync's echo marker
collections and always watches the database(s), not a single collection: a transaction that writes a marker
is Worker-Sync's own (versions.py), so its events are passed on as echoes (``origin`` set to the writer).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import pymongo
from pymongo import errors

from actors.core.batches import TxnEnd
from actors.core.errors import OffsetLost, SourceMisconfigured
from actors.core.events import ChangeEvent, Position
from actors.core.streams import StreamSpec
from actors.engines.base import Change
from actors.engines.mongodb import snapshot
from actors.engines.mongodb.connection import FATAL, HISTORY_LOST, connect, translate
from actors.engines.mongodb.events import EventMapper, namespace_of, txid_of
from actors.engines.mongodb.positions import Resume, after, order_of
from actors.engines.mongodb.schema import declared_fields, split_namespace
from actors.engines.mongodb.versions import ECHO, databases_of
from config.model import MongoNode

log = logging.getLogger(__name__)

#: How long one getMore waits on the server for new changes before the source reports idle.
AWAIT_MS = 200
_REMEDY = "re-snapshot (`worker-sync sync --manual --stream NAME`, or forget the stream's offset)"


class MongoSource:
    def __init__(
        self,
        *,
        stream: str,
        node_name: str,
        node: MongoNode,
        password: str | None,
        tables: list[str],
        chunk_rows: int = 5_000,
        echo_marker: bool = False,
    ) -> None:
        for name in tables:
            split_namespace(name)
        self.stream = stream
        self.node = node_name
        self.config = node
        self.password = password
        self.tables = list(dict.fromkeys(tables))
        self.chunk_rows = chunk_rows
        #: Worker-Sync's echo marker collections on this node (a member of a bidirectional group), else none.
        self.echo_namespaces = {f"{db}.{ECHO}" for db in databases_of(self.tables)} if echo_marker else set()
        self.subject = f"mongodb node `{node_name}`"
        #: The last position downstream applied (the oplog is kept by the server's own retention).
        self.acknowledged: Position | None = None
        self._closed = threading.Event()
        self._client: pymongo.MongoClient | None = None

    # --- ChangeSource ----------------------------------------------------------------------------------------

    def changes(self, resume_after: Position | None, stop: threading.Event) -> Iterator[Change]:
        client = self._connect()
        fields = {ns: declared_fields(self.config.collections, ns) for ns in self.tables}
        try:
            if resume_after is not None and resume_after.resume:
                try:
                    resume = Resume.decode(resume_after.resume)
                except ValueError as exc:
                    raise OffsetLost(f"{self.subject}: the committed position is unusable ({exc}); {_REMEDY}") from None
                mapper = EventMapper(node=self.node, fields=fields, seq=resume.seq)
                stream = self._watch(client, resume)
            else:
                mapper = EventMapper(node=self.node, fields=fields)
                stream = yield from self._snapshot(client, mapper, stop)
                if stream is None:
                    return
            with stream:
                yield from self._follow(stream, mapper, stop)
        except errors.PyMongoError as exc:
            if self._closed.is_set() or stop.is_set():
                return
            raise self._translate(exc) from None

    def acknowledge(self, upto: Position) -> None:
        """Nothing to release: the server keeps the oplog by its own size/retention settings, whatever we read.
        Size it for the longest outage capture must survive; a resume point it no longer holds is OffsetLost."""
        self.acknowledged = upto

    def close(self) -> None:
        """Idempotent; safe from another thread than the one iterating ``changes``."""
        self._closed.set()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken client: nothing left to release
                client.close()

    # --- internals -------------------------------------------------------------------------------------------

    def _connect(self) -> pymongo.MongoClient:
        if self._closed.is_set():
            raise SourceMisconfigured(f"{self.subject}: the source is closed")
        self._client = connect(self.config, self.password, name=self.node, app=f"worker-sync:{self.stream}")
        return self._client

    def _translate(self, exc: errors.PyMongoError) -> Exception:
        if isinstance(exc, errors.OperationFailure) and exc.code in (HISTORY_LOST, FATAL):
            return OffsetLost(
                f"{self.subject}: the change stream cannot resume from the committed position (error "
                f"{exc.code}: {str(exc).split(', full error')[0]}): the oplog no longer holds it, so the changes "
                f"since then are lost to capture; {_REMEDY}"
            )
        return translate(exc, self.subject, "reading the change stream", (self.password or "",))

    def _watch(self, client: pymongo.MongoClient, resume: Resume | None) -> Any:
        options: dict[str, Any] = {
            "full_document": "updateLookup",
            "full_document_before_change": "whenAvailable",
            "max_await_time_ms": AWAIT_MS,
        }
        if resume is not None and resume.token is not None:
            options["resume_after"] = resume.token
        elif resume is not None and resume.at is not None:
            options["start_at_operation_time"] = resume.at
        parts = [split_namespace(ns) for ns in [*self.tables, *sorted(self.echo_namespaces)]]
        databases = {db for db, _ in parts}
        if len(parts) == 1:
            database, collection = parts[0]
            return client[database][collection].watch(**options)
        if len(databases) == 1:
            names = [coll for _, coll in parts]
            match: dict[str, Any] = {
                "$or": [{"ns.coll": {"$in": names}}, {"operationType": {"$in": ["dropDatabase", "invalidate"]}}]
            }
            return client[databases.pop()].watch([{"$match": match}], **options)
        match = {"$or": [{"ns": {"db": db, "coll": coll}} for db, coll in parts] + [{"operationType": "invalidate"}]}
        return client.watch([{"$match": match}], **options)

    def _snapshot(self, client: pymongo.MongoClient, mapper: EventMapper, stop: threading.Event):
        at = snapshot.majority_time(client, self.tables[0])
        early = None if at is not None else self._watch(client, None)  # see snapshot.py: no cluster time
        if at is None:
            log.warning(
                "%s reports no cluster time (not a replica set): the snapshot is read after opening the stream; "
                "changes made during the scan may be applied twice (harmless, writes are idempotent)",
                self.subject,
            )
        try:
            yield from snapshot.read(client, self.tables, mapper, at=at, chunk_rows=self.chunk_rows, stop=stop)
        except BaseException:
            if early is not None:
                early.close()
            raise
        if stop.is_set() or self._closed.is_set():
            if early is not None:
                early.close()
            return None
        if at is not None:
            resume = Resume(at=after(at), seq=mapper.seq)
            yield TxnEnd(Position(order_of(at, mapper.seq), resume.encode()), "snapshot", 0)
            yield None  # the snapshot is complete: let the consumer hand it on
            return self._watch(client, resume)
        assert early is not None  # opened before the snapshot, as there is no cluster time
        token = early.resume_token
        end = Resume(token=dict(token), seq=mapper.seq).encode() if token else ""
        yield TxnEnd(Position(order_of(None, mapper.seq), end), "snapshot", 0)
        yield None
        return early

    def _follow(self, stream: Any, mapper: EventMapper, stop: threading.Event) -> Iterator[Change]:
        """Events, with a TxnEnd after each transaction (a change outside one is its own transaction)."""
        transaction = _Transaction()
        while not stop.is_set() and not self._closed.is_set():
            change = stream.try_next()
            if change is None:  # a transaction's events are all visible at its commit: it has ended
                yield from transaction.flush()
                yield None
                continue
            txid = txid_of(change, mapper.seq) if change.get("txnNumber") is not None else None
            if txid != transaction.txid:
                yield from transaction.flush()
            if namespace_of(change) in self.echo_namespaces:
                transaction.mark(txid, change)
                continue
            event = mapper.map(change)
            if event is None:
                continue
            if txid is None:
                yield event
                yield TxnEnd(event.position, event.txid, event.commit_time_us)
            else:
                transaction.add(txid, event)


class _Transaction:
    """The events of the transaction being read, held until it ends: only then is it known whether one of
    its writes was Worker-Sync's echo marker (whatever the order of events within it)."""

    def __init__(self) -> None:
        self.txid: str | None = None
        self.events: list[ChangeEvent] = []
        self.writer: str | None = None

    def mark(self, txid: str | None, marker: dict[str, Any]) -> None:
        """A marker write: outside a transaction it marks nothing (Worker-Sync writes it in one)."""
        if txid is not None:
            self.txid = txid
            self.writer = str((marker.get("documentKey") or {}).get("_id", ECHO))

    def add(self, txid: str, event: ChangeEvent) -> None:
        self.txid = txid
        self.events.append(event)

    def flush(self) -> Iterator[Change]:
        events, writer = self.events, self.writer
        self.txid, self.events, self.writer = None, [], None
        if not events:
            return
        for event in events:
            yield event if writer is None else msgspec.structs.replace(event, origin=writer)
        last = events[-1]
        yield TxnEnd(last.position, last.txid, last.commit_time_us)


def source_for_node(spec: StreamSpec, password: str | None) -> MongoSource:
    """The capture source of a stream whose node is a MongoNode (see actors.engines.registry)."""
    node = spec.node
    if not isinstance(node, MongoNode):
        raise TypeError(f"stream `{spec.stream}`: node `{spec.node_name}` is not a MongoDB node")
    return MongoSource(
        stream=spec.stream,
        node_name=spec.node_name,
        node=node,
        password=password,
        tables=spec.tables,
        chunk_rows=spec.snapshot_chunk_rows,
        echo_marker=spec.echo_marker,
    )
