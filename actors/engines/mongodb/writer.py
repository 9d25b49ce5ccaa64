"""MongoWriter: applies slices of RowChanges to MongoDB collections (the BatchWriter contract, no SQL).

Per collection, the collapsed slice (actors.core.changes.collapse: per key ``delete``, ``upsert`` or
``delete, upsert``, in order) becomes one ordered ``bulk_write``: ``DeleteOne({_id})``, and for an upsert
``ReplaceOne({_id}, document, upsert=True)`` when it carries every declared field (the document becomes
the row), else ``UpdateOne({_id}, {$set: carried fields}, upsert=True)``: the BatchWriter contract, an
upsert writes exactly the columns it carries (UNCHANGED ones are left as the target has them). Either way,
applying a change twice leaves what applying it once did.

On a replica set or mongos (``hello`` says so) the whole slice runs in one multi-document transaction
(majority write concern): all of it, or nothing. On a server without transactions the bulk writes run
plain and ordered: a failure leaves a prefix applied, which the idempotent retry of the same slice
completes. Values are converted per field by the collection's declared BSON types (values.py).

In a bidirectional group (``apply_offers``) transactions are required: the versions, the row writes and
the echo marker (versions.py) must commit together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pymongo
from pymongo import DeleteOne, ReplaceOne, UpdateOne, errors
from pymongo.client_session import ClientSession
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from actors.core.changes import RowChange, TableChanges, collapse
from actors.core.conflicts import Decision, Offer, RowKey, decide_all
from actors.core.errors import SinkError, SourceMisconfigured, SourceUnavailable
from actors.core.events import UNCHANGED
from actors.core.typemap import TableSchema
from actors.engines.mongodb import versions
from actors.engines.mongodb.connection import client_options, is_replica_set, reason
from actors.engines.mongodb.events import EventMapper
from actors.engines.mongodb.schema import collection_schema, declared_fields, split_namespace
from actors.engines.mongodb.values import bson_converter
from actors.engines.sink import BatchWriter, Execute, Statement, describe_key, winner_write
from config.model import MongoNode

#: Error classes that mean "the server or network, not the data": retry the slice.
_RETRYABLE = (errors.ConnectionFailure, errors.ServerSelectionTimeoutError, errors.NotPrimaryError)
#: WriteConflict: a concurrent transaction wrote the same document; running the slice again resolves it.
_WRITE_CONFLICT = 112
_NOT_SQL = "not used: MongoDB is written with bulk operations (see apply and apply_offers)"
#: Per collection: the target, its bulk operations and the key of each (to name a refused one).
Bulks = dict[str, tuple["_Collection", list[Any], list[dict[str, Any]]]]


class _Collection:
    def __init__(self, schema: TableSchema, fields: dict[str, str]) -> None:
        self.schema = schema
        self.database, self.name = split_namespace(schema.namespace)
        self.converters = {name: bson_converter(kind) for name, kind in fields.items()}


class MongoWriter(BatchWriter[pymongo.MongoClient, _Collection]):
    """Writes RowChanges to one MongoDB deployment; build it with ``MongoWriter.for_node``."""

    engine = "mongodb"

    def __init__(self, node: MongoNode, password: str | None, *, name: str, echo_writer: str | None = None) -> None:
        super().__init__(node=name)
        self._config = node
        self._password = password or ""
        self._transactions: bool | None = None
        #: The name this writer's transactions are marked with in a bidirectional group (versions.py).
        self._echo_writer = echo_writer or name
        #: Documents typed as the node's capture types them (for _current_rows).
        self._mapper = EventMapper(
            node=name, fields={ns: declared_fields(node.collections, ns) for ns in node.collections}
        )

    @classmethod
    def for_node(
        cls, name: str, node: MongoNode, password: str | None, *, echo_writer: str | None = None
    ) -> MongoWriter:
        return cls(node, password, name=name, echo_writer=echo_writer)

    # --- BatchWriter hooks -----------------------------------------------------------------------------------

    def _secrets(self) -> Sequence[str]:
        return (self._password,)

    def _connect(self) -> pymongo.MongoClient:
        options = client_options(self._config, self._password, name=self.node, app=f"worker-sync-apply:{self.node}")
        try:
            client = pymongo.MongoClient(**options)
            self._transactions = is_replica_set(client)
        except errors.PyMongoError as exc:
            raise self._translate(exc, "connecting") from None
        return client

    def _close(self, conn: pymongo.MongoClient) -> None:
        conn.close()

    def _load(self, conn: pymongo.MongoClient, namespace: str) -> _Collection:
        schema = collection_schema(self.node, self._config.collections, namespace)
        return _Collection(schema, declared_fields(self._config.collections, namespace) or {})

    def _schema(self, table: _Collection) -> TableSchema:
        return table.schema

    def _driver_error(self, exc: BaseException) -> tuple[bool, str] | None:
        if isinstance(exc, _RETRYABLE):
            return True, reason(exc)
        if isinstance(exc, errors.PyMongoError):
            return _write_conflict(exc) or exc.has_error_label("TransientTransactionError"), reason(exc)
        return None

    def _statements(self, table: _Collection, changes: TableChanges) -> tuple[list[Statement], list[Statement]]:
        raise NotImplementedError(_NOT_SQL)

    @contextlib.contextmanager
    def _transaction(self, conn: pymongo.MongoClient, *, commit: bool) -> Iterator[Execute]:
        raise NotImplementedError(_NOT_SQL)
        yield  # pragma: no cover

    def _lock_versions_sql(self, rows: int) -> str:
        raise NotImplementedError(_NOT_SQL)

    def _store_versions_sql(self, rows: int) -> str:
        raise NotImplementedError(_NOT_SQL)

    def _current_rows(
        self, conn: pymongo.MongoClient, reader: Any, namespace: str, keys: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """The documents read in the transaction (``reader`` is its session), shaped as the capture shapes
        them; None (write anyway) when one has a field the collection does not declare."""
        target = self._table(conn, namespace)
        ids = [self._value(target, key, "_id", key["_id"]) for key in keys]
        documents = conn[target.database][target.name].find({"_id": {"$in": ids}}, session=reader)
        try:
            return [self._mapper.shape(namespace, document) for document in documents]  # type: ignore[misc]
        except SourceMisconfigured:
            return None

    # --- applying --------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[RowChange]) -> None:
        """Apply a slice: in one transaction on a replica set, as ordered bulk writes otherwise.

        Raises SourceUnavailable (retry the same slice) or SinkError (a value or document was refused).
        """
        net = collapse(changes)
        if not net:
            return
        try:
            client = self._connection()
            bulks = self._bulks(client, net)
            if self._transactions:
                self._in_transaction(client, lambda session: self._write(client, bulks, session))
            else:
                self._write(client, bulks, None)
        except SourceUnavailable:
            self._disconnect()
            raise
        except SinkError:
            for change in net:
                self._tables.pop(change.namespace, None)
            raise
        except errors.PyMongoError as exc:  # outside a bulk write: the session, or the commit itself
            raise self._failed(exc, "applying a slice") from None

    def apply_offers(self, offers: Sequence[Offer]) -> list[Decision]:
        """Offer changes of a bidirectional group to this node: the BatchWriter contract, in one
        multi-document transaction that marks the echo, claims and reads the versions, writes the winners
        and repairs, reads them back, and stores the new records (versions.py).

        Raises SinkError when the server has no transactions (not a replica set or mongos), else as ``apply``.
        """
        if not offers:
            return []
        decisions: list[Decision] = []
        try:
            client = self._connection()
            if not self._transactions:
                raise SinkError(
                    f"{self.subject}: bidirectional sync needs multi-document transactions, and this server is "
                    "neither a replica set member nor a mongos (a single node can be one: `mongod --replSet rs0`)"
                )
            keyed = [(self._row_key(client, offer), offer) for offer in offers]
            offers_by_key: dict[RowKey, Offer] = {}
            for row_key, offer in keyed:
                offers_by_key.setdefault(row_key, offer)
            databases = versions.databases_of(offer.namespace for offer in offers)

            def attempt(session: ClientSession) -> None:  # run again from the start on a transient error
                decisions.clear()
                versions.mark_echo(client, databases, self._echo_writer, session)
                stored = versions.claim_and_read(client, offers_by_key, session)
                now = self._rows_now(client, session, offers_by_key)
                decided, writes, stores = decide_all(dict(stored), keyed, now)
                rows = [winner_write(offers_by_key[row_key], state) for row_key, state in writes.items()]
                self._write(client, self._bulks(client, rows), session)
                versions.store(client, self._read_back(client, session, stores, offers_by_key), session)
                decisions.extend(decided)

            self._in_transaction(client, attempt)
        except SourceUnavailable:
            self._disconnect()
            raise
        except SinkError:
            self._tables.clear()
            raise
        except errors.PyMongoError as exc:
            raise self._failed(exc, "offering changes of a bidirectional group") from None
        return decisions

    def _failed(self, exc: errors.PyMongoError, doing: str) -> Exception:
        """The error to raise for a driver error; a retryable one also drops the connection."""
        translated = self._translate(exc, doing)
        if isinstance(translated, SourceUnavailable):
            self._disconnect()
        return translated

    def _in_transaction(self, client: pymongo.MongoClient, body: Any) -> None:
        """Run ``body(session)`` in a transaction, retried whole on TransientTransactionError (write conflicts)."""
        with client.start_session() as session:
            session.with_transaction(body, read_concern=ReadConcern("majority"), write_concern=WriteConcern("majority"))

    def _bulks(self, client: pymongo.MongoClient, changes: Sequence[RowChange]) -> Bulks:
        bulks: Bulks = {}
        for change in changes:
            target = self._table(client, change.namespace)
            _, ops, keys = bulks.setdefault(change.namespace, (target, [], []))
            ops.append(self._operation(target, change))
            keys.append(change.key)
        return bulks

    def _operation(self, target: _Collection, change: RowChange) -> Any:
        schema = target.schema
        if set(change.key) != {"_id"}:
            raise SinkError(
                f"{self.subject}: collection `{schema.namespace}`: change keyed by {sorted(change.key)}; a "
                "document is addressed by `_id` (map the source key column to `_id` in the link's `columns`)"
            )
        document_id = self._value(target, change.key, "_id", change.key["_id"])
        if change.op == "delete":
            return DeleteOne({"_id": document_id})
        row = change.row or {}
        fields: dict[str, Any] = {}
        for name, value in row.items():
            if value is UNCHANGED or name == "_id":
                continue
            fields[name] = None if value is None else self._value(target, change.key, name, value)
        if len(fields) == len(target.converters) - 1:  # every declared field: the document is the row
            return ReplaceOne({"_id": document_id}, {"_id": document_id, **fields}, upsert=True)
        update = {"$set": fields} if fields else {"$setOnInsert": {"_id": document_id}}
        return UpdateOne({"_id": document_id}, update, upsert=True)

    def _value(self, target: _Collection, key: dict[str, Any], name: str, value: Any) -> Any:
        convert = target.converters.get(name)
        if convert is None:
            raise SinkError(
                f"{self.subject}: collection `{target.schema.namespace}` has no declared field `{name}` "
                "(declare it under the node's `collections`)"
            )
        try:
            return convert(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SinkError(
                f"{self.subject}: collection `{target.schema.namespace}`, key {describe_key(key)}, field `{name}`: "
                f"{exc}; nothing of the slice was applied"
            ) from None

    def _write(self, client: pymongo.MongoClient, bulks: Bulks, session: ClientSession | None) -> None:
        for namespace, (target, ops, keys) in bulks.items():
            try:
                client[target.database][target.name].bulk_write(ops, ordered=True, session=session)
            except errors.BulkWriteError as exc:
                failed = (exc.details.get("writeErrors") or [{}])[0]
                if session is not None and (exc.has_error_label("TransientTransactionError") or _write_conflict(exc)):
                    raise  # with_transaction retries a labelled error; otherwise the slice is retried (retryable)
                index = failed.get("index")
                which = describe_key(keys[index]) if isinstance(index, int) and index < len(keys) else "?"
                done = "nothing of the slice was applied" if session is not None else "earlier keys may be applied"
                raise SinkError(
                    f"{self.subject}: collection `{namespace}`, key {which}: "
                    f"{self._scrub(str(failed.get('errmsg', exc)))} (code {failed.get('code')}); {done}"
                ) from None
            except errors.PyMongoError as exc:
                if session is not None and exc.has_error_label("TransientTransactionError"):
                    raise  # with_transaction retries the whole callback
                retryable, why = self._reason(exc)
                kind = SourceUnavailable if retryable else SinkError
                raise kind(f"{self.subject}: writing to `{namespace}`: {why}; retry the slice") from None


def _write_conflict(exc: errors.PyMongoError) -> bool:
    """A WriteConflict, as a command error or as the write error of a bulk write."""
    if isinstance(exc, errors.BulkWriteError):
        return any(error.get("code") == _WRITE_CONFLICT for error in exc.details.get("writeErrors") or ())
    return isinstance(exc, errors.OperationFailure) and exc.code == _WRITE_CONFLICT
