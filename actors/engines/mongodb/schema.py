"""A collection's declared fields as a TableSchema, so the start-up check and the writers treat it like a table.

Collections are schemaless: the node's ``collections`` config declares, per ``database.collection``, each
top-level field and its BSON type. Those become columns (``_id`` is the primary key; every field is nullable,
since a document may lack it). The ColumnTypes say what range each BSON type holds, in the vocabulary of
actors.core.typemap: a BSON datetime keeps milliseconds, Decimal128 34 significant digits with a floating
exponent, an ObjectId is 24 hexadecimal characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from actors.core.errors import ConfigError
from actors.core.typemap import DECIMAL128, Column, ColumnType, TableSchema

_STRING_N = re.compile(r"^string\((\d+)\)$")

#: BSON type (as declared) -> the range of values it holds.
TYPES: dict[str, ColumnType] = {
    # 24 hexadecimal digits: a text column holds them; text of other characters is no ObjectId.
    "objectId": ColumnType(family="text", name="objectId", length=24, fixed=True, charset="hex"),
    "string": ColumnType(family="text", name="string"),
    "int": ColumnType(family="integer", name="int", bits=32),
    "long": ColumnType(family="integer", name="long", bits=64),
    "double": ColumnType(family="float", name="double", bits=53),
    "decimal": ColumnType(family="decimal", name=DECIMAL128, precision=34),
    "bool": ColumnType(family="boolean", name="bool"),
    # BSON datetime: signed 64-bit milliseconds since the epoch, UTC.
    "date": ColumnType(family="timestamptz", name="date", precision=3),
    "binData": ColumnType(family="bytes", name="binData"),
    "uuid": ColumnType(family="uuid", name="uuid"),
    "object": ColumnType(family="json", name="object"),
    "array": ColumnType(family="json", name="array"),
}

DEFAULT_ID_TYPE = "objectId"


def column_type(declared: str) -> ColumnType:
    """The ColumnType of a declared BSON type (``string(N)`` included); ValueError for anything else."""
    match = _STRING_N.match(declared)
    if match:
        return ColumnType(family="text", name=declared, length=int(match.group(1)))
    try:
        return TYPES[declared]
    except KeyError:
        raise ValueError(f"unknown BSON type `{declared}`; expected one of {', '.join(TYPES)} or string(N)") from None


def declared_fields(collections: Mapping[str, Mapping[str, str]], namespace: str) -> dict[str, str] | None:
    """Field -> declared type of ``namespace`` (``_id`` first, objectId unless declared); None when undeclared."""
    fields = collections.get(namespace)
    if fields is None:
        return None
    return {"_id": fields.get("_id", DEFAULT_ID_TYPE), **{k: v for k, v in fields.items() if k != "_id"}}


def split_namespace(namespace: str) -> tuple[str, str]:
    """``database.collection`` -> (database, collection); the collection name may itself contain dots."""
    database, dot, collection = namespace.partition(".")
    if not dot or not database or not collection:
        raise ConfigError("config", f"`{namespace}` is not `database.collection`")
    return database, collection


def collection_schema(node: str, collections: Mapping[str, Mapping[str, str]], namespace: str) -> TableSchema:
    """The TableSchema of a declared collection; ConfigError naming what to declare when it is not."""
    split_namespace(namespace)
    fields = declared_fields(collections, namespace)
    if fields is None:
        raise ConfigError(
            "config",
            f"mongodb node `{node}`: collection `{namespace}` has no declared fields; add it under the node's "
            "`collections:` (field: BSON type, e.g. `{_id: objectId, total: decimal, placed_at: date}`)",
        )
    columns = tuple(
        Column(name=name, type=column_type(kind), type_text=kind, nullable=name != "_id")
        for name, kind in fields.items()
    )
    return TableSchema(namespace=namespace, columns=columns, primary_key=("_id",))
