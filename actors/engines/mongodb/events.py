"""Change-stream event documents -> ChangeEvents (pure: no driver, no server).

The after-image of an update is, in this order of preference:

1. the pre-image (``fullDocumentBeforeChange``, where the collection has ``changeStreamPreAndPostImages``)
   with ``updateDescription`` applied: exactly the document right after this change;
2. ``fullDocument`` from ``updateLookup``: the document as it is when the server looked it up, possibly
   with later changes in it. Later events bring the same or newer values, so the target converges;
3. neither (the document was deleted since): the top-level fields ``updateDescription`` sets or removes,
   every other column UNCHANGED (left as the target has it) until the delete that follows arrives.

drop, rename, dropDatabase and invalidate end the stream: they raise SourceMisconfigured naming what
happened and the remedy, instead of going on with a stream that no longer describes the collection.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from actors.core.errors import SourceMisconfigured
from actors.core.events import UNCHANGED, ChangeEvent, Op, Position, Row
from actors.engines.mongodb.positions import Resume, cluster_parts, order_of
from actors.engines.mongodb.values import document_row, row_value

log = logging.getLogger(__name__)

ENGINE = "mongodb"
_ROW_OPS = {"insert": Op.INSERT, "update": Op.UPDATE, "replace": Op.UPDATE, "delete": Op.DELETE}
_ENDING = frozenset({"drop", "rename", "dropDatabase", "invalidate"})
#: DDL events of ``showExpandedEvents`` that change no document.
_NO_ROWS = frozenset({"create", "createIndexes", "dropIndexes", "modify", "shardCollection", "reshardCollection",
                      "refineCollectionShardKey"})  # fmt: skip


def namespace_of(change: Mapping[str, Any]) -> str:
    ns = change.get("ns") or {}
    return f"{ns.get('db', '')}.{ns.get('coll', '')}" if ns.get("coll") else str(ns.get("db", ""))


def _path(change: Mapping[str, Any], dotted: str) -> list[str]:
    """A field path's components; ``disambiguatedPaths`` (MongoDB 6.1+) says when a name holds dots."""
    known = ((change.get("updateDescription") or {}).get("disambiguatedPaths") or {}).get(dotted)
    return [str(part) for part in known] if known else dotted.split(".")


class _Updated:
    """A document being updated copy-on-write: a container is copied the first time a path goes into it, so
    the pre-image and the event are never changed and untouched subtrees are shared, not deep-copied (an
    update usually touches a field or two of a large document)."""

    def __init__(self, before: Mapping[str, Any]) -> None:
        self.document: dict[str, Any] = dict(before)
        self._owned = {id(self.document)}

    def _own(self, container: Any, slot: Any) -> Any:
        child = container[slot]
        if isinstance(child, dict | list) and id(child) not in self._owned:
            child = dict(child) if isinstance(child, dict) else list(child)
            container[slot] = child
            self._owned.add(id(child))
        return child

    def parent(self, parts: list[str]) -> Any:
        """The (owned) container holding the last part of a path; missing documents on the way are created."""
        container: Any = self.document
        for part in parts[:-1]:
            if isinstance(container, list):
                container = self._own(container, int(part))
            else:
                if part not in container:
                    container[part] = {}
                    self._owned.add(id(container[part]))
                container = self._own(container, part)
        return container

    def truncate(self, parts: list[str], size: int) -> None:
        parent = self.parent(parts)
        slot: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if isinstance(parent, list) or slot in parent:
            array = self._own(parent, slot)
            if isinstance(array, list):
                del array[size:]

    def unset(self, parts: list[str]) -> None:
        parent = self.parent(parts)
        if isinstance(parent, list):
            parent[int(parts[-1])] = None  # $unset of an array element leaves null, as the server does
        else:
            parent.pop(parts[-1], None)

    def set(self, parts: list[str], value: Any) -> None:
        parent = self.parent(parts)
        if isinstance(parent, list):
            index = int(parts[-1])
            parent.extend([None] * (index + 1 - len(parent)))
            parent[index] = value
        else:
            parent[parts[-1]] = value


def apply_update(before: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``before`` with the event's ``updateDescription`` applied (truncations, removals, then updates); neither
    argument is changed."""
    description = change.get("updateDescription") or {}
    document = _Updated(before)
    for truncated in description.get("truncatedArrays") or ():
        document.truncate(_path(change, truncated["field"]), int(truncated["newSize"]))
    for removed in description.get("removedFields") or ():
        document.unset(_path(change, removed))
    for name, value in (description.get("updatedFields") or {}).items():
        document.set(_path(change, name), value)
    return document.document


def _partial_update(change: Mapping[str, Any]) -> dict[str, Any]:
    """What ``updateDescription`` alone says of the top-level fields; nested changes leave a field UNCHANGED."""
    description = change.get("updateDescription") or {}
    row: dict[str, Any] = {}
    for name, value in (description.get("updatedFields") or {}).items():
        parts = _path(change, name)
        row[parts[0]] = value if len(parts) == 1 else UNCHANGED
    for name in description.get("removedFields") or ():
        parts = _path(change, name)
        row[parts[0]] = None if len(parts) == 1 else UNCHANGED
    for truncated in description.get("truncatedArrays") or ():
        row[_path(change, truncated["field"])[0]] = UNCHANGED
    return row


def txid_of(change: Mapping[str, Any], seq: int) -> str:
    """``lsid:txnNumber`` inside a multi-document transaction, else the cluster time (one write, one txn)."""
    lsid, number = change.get("lsid"), change.get("txnNumber")
    if lsid is not None and number is not None:
        ident = lsid.get("id") if isinstance(lsid, Mapping) else lsid
        text = ident.hex if ident is not None and hasattr(ident, "hex") and not isinstance(ident, bytes) else str(ident)
        return f"{text}:{int(number)}"
    t, i = cluster_parts(change.get("clusterTime"))
    return f"{t}.{i}" if t else f"op{seq}"


def commit_time_us(change: Mapping[str, Any]) -> int:
    """``wallTime`` (MongoDB 6.0+, milliseconds) when present, else the cluster time's seconds."""
    wall = change.get("wallTime")
    if isinstance(wall, dt.datetime):
        wall = wall if wall.tzinfo else wall.replace(tzinfo=dt.UTC)
        return int(wall.timestamp() * 1_000_000)
    return cluster_parts(change.get("clusterTime"))[0] * 1_000_000


class EventMapper:
    """Maps one stream's events in order; ``seq`` carries on from the position the stream resumed after.

    ``fields`` holds each captured namespace's declared fields (None: take the documents' fields as they
    come). With declarations, every row carries all declared columns (a field a document lacks is NULL),
    and a field that is not declared is refused: it has no column to go to.
    """

    def __init__(self, *, node: str, fields: Mapping[str, Mapping[str, str] | None], seq: int = 0) -> None:
        self.node = node
        self.fields = fields
        self.seq = seq

    def shape(self, namespace: str, document: Mapping[str, Any] | None, partial: bool = False) -> Row | None:
        """A document (or a partial update) as a row of the namespace's declared columns."""
        if document is None:
            return None
        declared = self.fields.get(namespace)
        try:
            row = {k: v if v is UNCHANGED else row_value(v, k) for k, v in document.items()} if partial else (
                document_row(dict(document), namespace))  # fmt: skip
        except ValueError as exc:
            raise SourceMisconfigured(f"mongodb node `{self.node}`: {exc}") from None
        if declared is None:
            return row
        extra = [name for name in row if name not in declared]
        if extra:
            raise SourceMisconfigured(
                f"mongodb node `{self.node}`: `{namespace}` document _id={row.get('_id')!r} has the field(s) "
                f"{', '.join(f'`{e}`' for e in extra)}, not declared in the node's `collections`: declare them "
                "(and their target columns) so they are not lost"
            )
        fill = UNCHANGED if partial else None
        return {name: row.get(name, fill) for name in declared}

    def map(self, change: Mapping[str, Any]) -> ChangeEvent | None:
        """The ChangeEvent of one change document; None for events that change no document."""
        kind = change.get("operationType")
        namespace = namespace_of(change)
        if kind in _ENDING:
            raise SourceMisconfigured(self._ended(kind, namespace, change))
        op = _ROW_OPS.get(kind) if isinstance(kind, str) else None
        if op is None:
            if kind not in _NO_ROWS:
                log.warning("mongodb node %s: ignoring a change event of unknown type `%s`", self.node, kind)
            return None
        self.seq += 1
        key = {"_id": row_value((change.get("documentKey") or {}).get("_id"), "_id")}
        pre = change.get("fullDocumentBeforeChange")
        full = change.get("fullDocument")
        before = self.shape(namespace, pre) if pre is not None else None
        after: Row | None
        if kind == "delete":
            after = None
            before = before if before is not None else dict(key)
        elif kind == "update" and pre is not None and change.get("updateDescription") is not None:
            after = self.shape(namespace, apply_update(pre, change))
        elif full is not None:
            after = self.shape(namespace, full)
        elif kind == "update":
            after = self.shape(namespace, {**_partial_update(change), "_id": (change.get("documentKey") or {})["_id"]},
                               partial=True)  # fmt: skip
        else:
            raise SourceMisconfigured(
                f"mongodb node `{self.node}`: a `{kind}` event on `{namespace}` carries no document (fullDocument)"
            )
        if after is not None:
            after["_id"] = key["_id"]
        token = change.get("_id")
        resume = Resume(token=dict(token), seq=self.seq).encode() if isinstance(token, Mapping) else ""
        return ChangeEvent(
            node=self.node,
            engine=ENGINE,
            namespace=namespace,
            op=op,
            key=key,
            before=before,
            after=after,
            commit_time_us=commit_time_us(change),
            txid=txid_of(change, self.seq),
            position=Position(order_of(change.get("clusterTime"), self.seq), resume),
        )

    def _ended(self, kind: str, namespace: str, change: Mapping[str, Any]) -> str:
        remedy = (
            "the stream cannot go on without a gap: restore the collection (or change the link to the new "
            "name), then re-snapshot (`worker-sync sync --manual --stream NAME`, or forget the stream's offset)"
        )
        if kind == "rename":
            to = change.get("to") or {}
            what = f"collection `{namespace}` was renamed to `{to.get('db')}.{to.get('coll')}`"
        elif kind == "drop":
            what = f"collection `{namespace}` was dropped"
        elif kind == "dropDatabase":
            what = f"database `{namespace}` was dropped"
        else:
            what = f"the change stream on `{namespace}` was invalidated (the collection was dropped or renamed)"
        return f"mongodb node `{self.node}`: {what}; {remedy}"
