"""SQL -> MongoDB -> SQL through the real pipeline: the second SQL table ends equal to the first, per mapped type.

One Supervisor runs two one-way links: the SQL table `src` to the collection `items` (the key column renamed to
`_id`), and `items` back to an empty twin table `back` (`_id` renamed to the key column). Each case carries
one family of BSON types through a snapshot, inserts, updates (to values and to NULL), a delete and a key
change, then compares `back` with `src` (actors.harness.compare) and checks the BSON types in MongoDB.

The endpoint is the harness's (tests/fix_mongo.py). The nx-27017 stand-in cannot carry some types; those cases
skip on it only, each with what the stand-in does wrong (seen with plain pymongo against it), never on a real
mongod.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.decimal128 import Decimal128

from actors.core.routing import build_routes
from actors.harness import Endpoint
from actors.harness.compare import diff_tables
from actors.harness.mongo import MongoEndpoint
from actors.harness.secret_files import write_secret_file
from actors.preflight import check_routes
from config import Config, parse_config
from tests.pipeline_helpers import running

pytestmark = pytest.mark.usefixtures("ray_session")

STANDIN = "the nx-27017 stand-in"


@dataclass(frozen=True)
class Column:
    name: str
    pg: str
    mariadb: str
    bson: str
    #: Three SQL literals per engine (PostgreSQL, MariaDB); the third must not be NULL.
    pg_values: tuple[str, str, str]
    mariadb_values: tuple[str, str, str]
    #: The Python type pymongo reads the third value back as (None: do not check).
    python: type | tuple[type, ...] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    columns: tuple[Column, ...]
    #: Key column DDL (PostgreSQL, MariaDB), the `_id` BSON type, and the SQL literal of key n.
    key: tuple[str, str, str] = ("varchar(40)", "varchar(40)", "string(40)")
    key_sql: Callable[[int], str] = field(default=lambda n: f"'k{n}'")
    #: Why the case cannot run on the stand-in (None: it can).
    standin: str | None = None
    #: Lossy-type warnings the start-up check must give (regular expressions, one per warning; links `warn`).
    warnings: tuple[str, ...] = ()


def _hex(n: int) -> str:
    return f"'{n:024x}'"


CASES = [
    Case(
        "int-long-double-bool-string-json",
        (
            Column("small", "integer", "int", "int", ("-7", "NULL", "2147483647"), ("-7", "NULL", "2147483647"), int),
            Column(
                "big", "bigint", "bigint", "long", ("-1", "NULL", str(2**62)), ("-1", "NULL", str(2**62)), bson.Int64
            ),
            Column(
                "ratio",
                "double precision",
                "double",
                "double",
                ("0.1", "NULL", "-2.5e300"),
                ("0.1", "NULL", "-2.5e300"),
                float,
            ),
            Column("flag", "boolean", "boolean", "bool", ("true", "NULL", "false"), ("1", "NULL", "0"), bool),
            Column(
                "label", "text", "longtext", "string", ("'naïve ☃'", "NULL", "''"), ("'naïve ☃'", "NULL", "''"), str
            ),
            Column(
                "doc",
                "jsonb",
                "json",
                "object",
                ("""'{"a": [1, 2.5, null], "b": {"c": "x"}}'""", "NULL", """'{"n": -3, "t": true}'"""),
                ("""'{"a": [1, 2.5, null], "b": {"c": "x"}}'""", "NULL", """'{"n": -3, "t": true}'"""),
                dict,
            ),
            Column(
                "tags",
                "jsonb",
                "json",
                "array",
                ("""'["red", null, 3]'""", "NULL", "'[]'"),
                ("""'["red", null, 3]'""", "NULL", "'[]'"),
                list,
            ),
        ),
    ),
    Case(
        "long-key",
        (Column("label", "text", "longtext", "string", ("'a'", "NULL", "'c'"), ("'a'", "NULL", "'c'"), str),),
        key=("bigint", "bigint", "long"),
        key_sql=lambda n: str(n * 1_000_000_007),
        standin=f"{STANDIN} reports integer `_id`s as strings in change events' documentKey (insert {{_id: 5}} "
        "-> documentKey {_id: '5'})",
    ),
    Case(
        "decimal",
        (
            Column(
                "amount",
                "numeric(20,6)",
                "decimal(20,6)",
                "decimal",
                ("12345678901234.123456", "NULL", "-0.000001"),
                ("12345678901234.123456", "NULL", "-0.000001"),
                Decimal128,
            ),
            # 0.1 is no double: it must travel as Decimal128 inside the document too.
            Column(
                "doc",
                "jsonb",
                "json",
                "object",
                ("""'{"x": 0.1}'""", "NULL", """'{"x": 1e-30}'"""),
                ("""'{"x": 0.1}'""", "NULL", """'{"x": 1e-30}'"""),
                dict,
            ),
        ),
        standin=f"{STANDIN} cannot store Decimal128 (insert_one({{'v': Decimal128('12.300')}}) fails: 'Object of "
        "type Decimal128 is not JSON serializable')",
        warnings=(r"column `amount` decimal -> `amount` (numeric|decimal)\(20,6\): .* has a fixed scale",),
    ),
    Case(
        "date",
        (
            Column(
                "at",
                "timestamptz(3)",
                "datetime(3)",
                "date",
                ("'2024-02-29 23:59:58.123+00'", "NULL", "'1970-01-01 00:00:01+00'"),
                ("'2024-02-29 23:59:58.123'", "NULL", "'1970-01-01 00:00:01'"),
                dt.datetime,
            ),
        ),
        standin=f"{STANDIN} sends a stored datetime as {{'$date': '<ISO text>'}} in change events' fullDocument "
        "(and stores a $set datetime as text)",
    ),
    Case(
        "binary",
        (
            Column(
                "raw",
                "bytea",
                "longblob",
                "binData",
                ("'\\x00ff10'", "NULL", "'\\x'"),
                ("x'00ff10'", "NULL", "''"),
                bytes,
            ),
        ),
        standin=f"{STANDIN} fails to replace a document holding binary ('Object of type bytes is not JSON "
        "serializable') and sends binary as {'__neosqlite_binary__': True, ...} in change events",
    ),
    Case(
        "uuid",
        (
            Column(
                "ident",
                "uuid",
                "uuid",
                "uuid",
                ("'12345678-1234-5678-1234-567812345678'", "NULL", "'00000000-0000-0000-0000-000000000007'"),
                ("'12345678-1234-5678-1234-567812345678'", "NULL", "'00000000-0000-0000-0000-000000000007'"),
                uuid.UUID,
            ),
        ),
        standin=f"{STANDIN} stores a standard UUID (binary subtype 4) as subtype 0: it reads back as bytes",
    ),
    Case(
        "objectid",
        (
            Column(
                "ref",
                "char(24)",
                "char(24)",
                "objectId",
                (_hex(1), "NULL", "'65a1b2c3d4e5f60718293a4b'"),
                (_hex(1), "NULL", "'65a1b2c3d4e5f60718293a4b'"),
                bson.ObjectId,
            ),
        ),
        key=("char(24)", "char(24)", "objectId"),
        key_sql=_hex,
        standin=f"{STANDIN} sends ObjectIds as {{'__neosqlite_objectid__': True, 'id': ...}} in change events' "
        "fullDocument and documentKey",
        warnings=(
            r"column `id` \w+\(24\) -> `_id` objectId: `objectId` uses character set `hex`",
            r"column `ref` \w+\(24\) -> `ref` objectId: `objectId` uses character set `hex`",
        ),
    ),
]


def _sql_table(engine: str, name: str, case: Case) -> str:
    key = case.key[0] if engine == "postgresql" else case.key[1]
    cols = ", ".join(f"{c.name} {c.pg if engine == 'postgresql' else c.mariadb}" for c in case.columns)
    qualified = f"public.{name}" if engine == "postgresql" else name
    return f"CREATE TABLE {qualified} (id {key} PRIMARY KEY, {cols})"


def _values(engine: str, case: Case, i: int) -> list[str]:
    return [(c.pg_values if engine == "postgresql" else c.mariadb_values)[i] for c in case.columns]


def _node_yaml(name: str, engine: str, endpoint: Endpoint, role: str, tmp_path: Path) -> str:
    account = endpoint.capture if role == "capture" else endpoint.apply
    secret = write_secret_file(tmp_path, f"{name}-password", account.password)
    extra = f"slot_name: ws_{endpoint.database}" if engine == "postgresql" else "server_id: 4242"
    return (
        f"  - {{name: {name}, engine: {'postgresql' if engine == 'postgresql' else 'mysql'}, host: '{endpoint.host}', "
        f"port: {endpoint.port}, database: {endpoint.database}, username: {account.user}, "
        f"password_file: '{secret}', tls: {{mode: disable}}, {extra}}}"
    )


def round_trip_config(
    engine: str, sql: Endpoint, mongo: MongoEndpoint, database: str, case: Case, tmp_path: Path
) -> Config:
    """SQL `src` -> MongoDB `items` -> SQL `back`: the source as the capture account, targets as apply."""
    schema = "public" if engine == "postgresql" else sql.database
    fields = ", ".join(f"{c.name}: '{c.bson}'" for c in case.columns)
    mongo_password = (
        f", password_file: '{write_secret_file(tmp_path, 'mongo-password', mongo.password)}'" if mongo.password else ""
    )
    replica_set = f", replica_set: {mongo.replica_set}" if mongo.replica_set else ""
    text = f"""
nodes:
{_node_yaml("sql-src", engine, sql, "capture", tmp_path)}
{_node_yaml("sql-back", engine, sql, "apply", tmp_path)}
  - {{name: mongo, engine: mongodb, host: '{mongo.host}', port: {mongo.port}, database: {database},
      username: '{mongo.username}', auth_source: {mongo.auth_source},
      tls: {{mode: disable}}{mongo_password}{replica_set},
      collections: {{'{database}.items': {{_id: '{case.key[2]}', {fields}}}}}}}
links:
  - name: to-mongo
    source: sql-src
    target: mongo
    lossy_types: warn
    tables: [{{source: {schema}.src, target: {database}.items, columns: {{id: _id}}}}]
  - name: from-mongo
    source: mongo
    target: sql-back
    lossy_types: warn
    tables: [{{source: {database}.items, target: {schema}.back, columns: {{_id: id}}}}]
audit:
  enabled: false
supervisor:
  applier_shards: 2
  state_dir: '{tmp_path / "state"}'
  restart_backoff_initial_s: 0.5
  restart_backoff_max_s: 2
http:
  token_env: null
"""
    return parse_config(text, source="test config")


def _execute(sql: Endpoint, engine: str, statements: list[str]) -> None:
    if engine == "postgresql":
        with sql.connect("admin") as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        with sql.connect("admin") as conn, conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def _wait_ready(supervisor: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not supervisor.ready():
        status = supervisor.status()
        errors = [s.error for s in status.streams if s.error] if status else []
        assert not errors, f"a stream stopped: {errors}"
        assert time.monotonic() < deadline, f"the pipeline was not ready after {timeout_s}s: {status}"
        time.sleep(0.05)


def run_round_trip(engine: str, sql: Endpoint, mongo: MongoEndpoint, database: str, case: Case, tmp_path: Path) -> None:
    table = "public.src" if engine == "postgresql" else "src"
    names = ", ".join(c.name for c in case.columns)
    k = case.key_sql
    _execute(sql, engine, [_sql_table(engine, "src", case), _sql_table(engine, "back", case)])
    _execute(  # rows before the start travel through the SQL snapshot
        sql,
        engine,
        [
            f"INSERT INTO {table} (id, {names}) VALUES ({k(n)}, {', '.join(_values(engine, case, n % 3))})"
            for n in range(1, 4)
        ],
    )
    config = round_trip_config(engine, sql, mongo, database, case, tmp_path)
    warnings = check_routes(config, build_routes(config))
    assert len(warnings) == len(case.warnings), warnings
    for expected in case.warnings:
        assert any(re.search(expected, w) for w in warnings), (expected, warnings)
    if case.standin and not mongo.real:  # the tables, rows and start-up check above were checked all the same
        pytest.skip(f"needs a real mongod: {case.standin}")
    schema = "public" if engine == "postgresql" else sql.database
    with running(config) as supervisor:
        _wait_ready(supervisor)
        last = ", ".join(f"{c} = {v}" for c, v in zip(names.split(", "), _values(engine, case, 2), strict=True))
        nulls = ", ".join(f"{c.name} = NULL" for c in case.columns)
        _execute(
            sql,
            engine,
            [
                *(
                    f"INSERT INTO {table} (id, {names}) VALUES ({k(n)}, {', '.join(_values(engine, case, n % 3))})"
                    for n in range(4, 10)
                ),
                f"UPDATE {table} SET {last} WHERE id = {k(1)}",
                f"UPDATE {table} SET {nulls} WHERE id = {k(2)}",
                f"DELETE FROM {table} WHERE id = {k(3)}",
                f"UPDATE {table} SET id = {k(99)} WHERE id = {k(4)}",
                f"DELETE FROM {table} WHERE id = {k(5)}",
                f"INSERT INTO {table} (id, {names}) VALUES ({k(5)}, {', '.join(_values(engine, case, 2))})",
            ],
        )
        deadline = time.monotonic() + 45
        while problems := diff_tables(sql, f"{schema}.src", sql, f"{schema}.back"):
            status = supervisor.status()
            errors = [s.error for s in status.streams if s.error] if status else []
            assert not errors, f"a stream stopped: {errors}"
            assert time.monotonic() < deadline, f"{schema}.back != {schema}.src: {problems}"
            time.sleep(0.2)
    with mongo.client() as client:
        documents = {d["_id"] for d in client[database]["items"].find({}, {"_id": 1})}
        full = client[database]["items"].find_one({"_id": bson_key(case, 1)})
    assert len(documents) == 8, documents  # 9 inserted, one deleted, one re-keyed, one deleted and inserted again
    assert full is not None
    for column in case.columns:
        value = full[column.name]
        if column.python is not None:  # bool is an int in Python: the BSON type must be the declared one
            assert isinstance(value, column.python) and (type(value) is bool) == (column.python is bool), (
                column.name,
                value,
            )


def bson_key(case: Case, n: int) -> Any:
    """Key n as MongoDB holds it (the declared `_id` type)."""
    text = case.key_sql(n).strip("'")
    return {"long": int, "objectId": bson.ObjectId}.get(case.key[2], str)(text)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_postgresql_to_mongodb_and_back_leaves_an_equal_table(
    case: Case, fresh_pg_db: Endpoint, mongo_server: MongoEndpoint, fresh_mongo_db: str, tmp_path: Path
) -> None:
    run_round_trip("postgresql", fresh_pg_db, mongo_server, fresh_mongo_db, case, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mariadb_to_mongodb_and_back_leaves_an_equal_table(
    case: Case, fresh_mariadb_db: Endpoint, mongo_server: MongoEndpoint, fresh_mongo_db: str, tmp_path: Path
) -> None:
    run_round_trip("mariadb", fresh_mariadb_db, mongo_server, fresh_mongo_db, case, tmp_path)
