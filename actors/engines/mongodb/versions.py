"""MongoDB side of bidirectional sync: the version collection and the in-transaction echo marker.

The MariaDB design (actors/engines/mariadb/versions.py) carried over to documents, per database of the
synced collections:

- ``<database>.worker_sync_versions`` holds each synced document's stored winner (actors/core/conflicts.py):
  ``_id: "database.collection/<hex digest of the key>"``, ``stored: Binary``.
- ``<database>.worker_sync_echo`` holds one document per writer. Every transaction Worker-Sync applies to a
  group member bumps its writer's document in each database it writes, inside the transaction. A change
  stream reports the events of one transaction with the same ``lsid`` and ``txnNumber``, so the node's
  capture (source.py) knows every event of a transaction that carries the marker is Worker-Sync's own
  write. That needs multi-document transactions: group members must be replica sets (or sharded clusters),
  which change streams need anyway.

Locking: MongoDB has no SELECT ... FOR UPDATE. Claiming a version document writes it (an upsert that bumps
``claims``), and a second transaction that writes the same document before the first commits fails with
WriteConflict, a TransientTransactionError that ``with_transaction`` retries from the start. So two writers
never both decide against the same stored version, as on the SQL engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pymongo
from bson import Binary
from pymongo import UpdateOne
from pymongo.client_session import ClientSession

from actors.core.conflicts import RowKey, Stored, decode_stored, encode_stored
from actors.engines.mongodb.schema import split_namespace

VERSIONS = "worker_sync_versions"
ECHO = "worker_sync_echo"


def version_id(row_key: RowKey) -> str:
    namespace, digest = row_key
    return f"{namespace}/{digest.hex()}"


def row_key_of(vid: str) -> RowKey:
    namespace, _, digest = vid.rpartition("/")
    return namespace, bytes.fromhex(digest)


def databases_of(namespaces: Iterable[str]) -> list[str]:
    """The databases holding these collections, in first-seen order."""
    return list(dict.fromkeys(split_namespace(namespace)[0] for namespace in namespaces))


def mark_echo(client: pymongo.MongoClient, databases: Sequence[str], writer: str, session: ClientSession) -> None:
    """Bump the writer's marker in each database the transaction writes (always a write, so always an event)."""
    for database in databases:
        client[database][ECHO].update_one({"_id": writer}, {"$inc": {"applied": 1}}, upsert=True, session=session)


def claim_and_read(
    client: pymongo.MongoClient, row_keys: Iterable[RowKey], session: ClientSession
) -> dict[RowKey, Stored]:
    """The stored versions of ``row_keys`` (absent: no version yet), each claimed (written) first so that a
    concurrent transaction offering the same row conflicts instead of deciding against the same version."""
    by_database: dict[str, list[RowKey]] = {}
    for row_key in sorted(row_keys):
        by_database.setdefault(split_namespace(row_key[0])[0], []).append(row_key)
    stored: dict[RowKey, Stored] = {}
    for database, keys in by_database.items():
        versions = client[database][VERSIONS]
        ids = [version_id(row_key) for row_key in keys]
        claims = [
            UpdateOne({"_id": vid}, {"$inc": {"claims": 1}, "$setOnInsert": {"stored": Binary(b"")}}, upsert=True)
            for vid in ids
        ]
        versions.bulk_write(claims, ordered=True, session=session)
        for document in versions.find({"_id": {"$in": ids}}, session=session):
            data = bytes(document.get("stored") or b"")
            if data:  # empty: claimed, no version yet
                stored[row_key_of(document["_id"])] = decode_stored(data)
    return stored


def store(client: pymongo.MongoClient, changed: dict[RowKey, Stored], session: ClientSession) -> None:
    """Write the new stored winners."""
    by_database: dict[str, list[Any]] = {}
    for row_key, state in changed.items():
        update = UpdateOne(
            {"_id": version_id(row_key)}, {"$set": {"stored": Binary(encode_stored(state))}}, upsert=True
        )
        by_database.setdefault(split_namespace(row_key[0])[0], []).append(update)
    for database, updates in by_database.items():
        client[database][VERSIONS].bulk_write(updates, ordered=True, session=session)


def prepare(client: pymongo.MongoClient, namespaces: Iterable[str]) -> None:
    """What a group member needs (idempotent): both collections in each database, and pre-images on every
    synced collection (created if absent). The collections are created up front so that a transaction can
    write them on every server version (implicit creation inside one needs 4.4+ and no sharding).

    Pre-images make an update event's after-image exact (events.py: the pre-image with the update applied).
    Without them it is the document looked up later, which may already hold a write Worker-Sync applied
    after this change; offered with this change's older version, that row would overwrite the user's newer
    value on the other nodes. ``collMod`` needs the dbAdmin role (MongoDB 6.0+)."""
    namespaces = list(namespaces)
    for database in databases_of(namespaces):
        present = set(client[database].list_collection_names())
        for name in (VERSIONS, ECHO):
            if name not in present:
                client[database].create_collection(name)
    for namespace in namespaces:
        database, collection = split_namespace(namespace)
        if collection in client[database].list_collection_names():
            client[database].command("collMod", collection, changeStreamPreAndPostImages={"enabled": True})
        else:
            client[database].create_collection(collection, changeStreamPreAndPostImages={"enabled": True})


def missing(client: pymongo.MongoClient, namespaces: Iterable[str]) -> list[str]:
    """What ``prepare`` would still do, in words."""
    namespaces = list(namespaces)
    absent = []
    options: dict[str, dict[str, Any]] = {}
    for database in databases_of(namespaces):
        for info in client[database].list_collections():
            options[f"{database}.{info['name']}"] = info.get("options") or {}
        absent += [f"`{ns}` is missing" for ns in (f"{database}.{VERSIONS}", f"{database}.{ECHO}") if ns not in options]
    for namespace in namespaces:
        if not (options.get(namespace, {}).get("changeStreamPreAndPostImages") or {}).get("enabled"):
            absent.append(f"`{namespace}` does not record pre-images (changeStreamPreAndPostImages)")
    return absent
