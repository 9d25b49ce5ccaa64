"""PostgresWriter and MariaDbWriter against the real servers, both directions.

Each test makes a source table and a target table with every mapped type, writes rows into the source,
reads them back the way capture's snapshot does (so the RowChanges hold the Python values capture
produces), applies them through the target's writer, and compares the tables with tests.sync_compare.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from actors.core.changes import RowChange
from actors.core.errors import RowRefused, SinkError, SourceUnavailable
from actors.core.events import UNCHANGED
from actors.core.mapping import check_mapping
from actors.engines.mariadb.connection import ConnectParams
from actors.engines.mariadb.schema import load_tables
from actors.engines.mariadb.table_schema import table_schema as mariadb_schema
from actors.engines.mariadb.values import snapshot_query
from actors.engines.mariadb.writer import MariaDbWriter
from actors.engines.postgresql.catalog import load_table, row_from_text
from actors.engines.postgresql.schema import table_schema as pg_schema
from actors.engines.postgresql.writer import PostgresWriter
from actors.engines.sink import BatchWriter
from actors.harness import Endpoint
from actors.harness.compare import assert_tables_equal, checksum, table_rows
from config.model import Tls

D = decimal.Decimal
UTC = dt.UTC

PG_TABLE = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'it''s complicated');
CREATE TABLE public.items (
    id bigint PRIMARY KEY, small smallint, whole integer, big bigint, amount numeric(30,10),
    ratio double precision, approx real, flag boolean, name text, code varchar(64), label char(8),
    payload bytea, day date, at time(6), ts timestamp(6), tstz timestamptz, doc jsonb, doc_text json,
    uid uuid, tags text[], nums integer[], feeling mood, bits bit(8)
)
"""
MARIADB_FROM_PG = """
CREATE TABLE items (
    id BIGINT PRIMARY KEY, small SMALLINT, whole INT, big BIGINT, amount DECIMAL(30,10), ratio DOUBLE,
    approx FLOAT, flag TINYINT(1), name LONGTEXT, code VARCHAR(64), label CHAR(8), payload LONGBLOB, day DATE,
    at TIME(6), ts DATETIME(6), tstz DATETIME(6), doc JSON, doc_text JSON, uid CHAR(36), tags JSON, nums JSON,
    feeling ENUM('happy', 'sad', 'it''s complicated'), bits BIT(8)
) CHARACTER SET utf8mb4
"""
MARIADB_TABLE = """
CREATE TABLE items (
    id INT UNSIGNED PRIMARY KEY, tiny TINYINT, medium MEDIUMINT, ubig BIGINT UNSIGNED, amount DECIMAL(30,10),
    ratio DOUBLE, approx FLOAT, flag TINYINT(1), name TEXT, code VARCHAR(64), label CHAR(8), payload BLOB,
    day DATE, span TIME(6), ts DATETIME(6), tstz TIMESTAMP(6) NULL, doc JSON, uid UUID,
    feeling ENUM('happy', 'sad', 'it''s complicated'), perms SET('read', 'write', 'admin'), bits BIT(12), yr YEAR
) CHARACTER SET utf8mb4
"""
PG_FROM_MARIADB = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'it''s complicated');
CREATE TABLE public.items (
    id bigint PRIMARY KEY, tiny smallint, medium integer, ubig numeric(20,0), amount numeric(30,10),
    ratio double precision, approx real, flag boolean, name text, code varchar(64), label char(8), payload bytea,
    day date, span interval, ts timestamp(6), tstz timestamptz, doc jsonb, uid uuid, feeling mood,
    perms text[], bits bit(12), yr smallint
)
"""

BIG_TEXT = "toast " * 2_000  # PostgreSQL stores this out of line: an update that keeps it sends UNCHANGED


def pg_rows() -> list[str]:
    """Rows for the PostgreSQL source, as SQL VALUES (edge values of every type, and NULLs)."""
    return [
        "(1, -32768, -2147483648, -9223372036854775808, -12345678901234567890.0123456789, -1.5e308, -3.4e38, "
        "true, 'héllo ✓ 😀', 'code-1', 'ab', '\\x00ff10', '0001-01-01', '00:00:00', '2024-02-29 23:59:59.999999', "
        '\'2024-06-30 22:00:00.000001+02\', \'{"n": 0.1000000000000000000001, "a": [1, "x", null], "o": {}}\', '
        "'[1, 2.5, \"s\"]', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a,b\",\"c\\\"d\",NULL}', '{1,NULL,-3}', "
        "'it''s complicated', B'10100101')",
        "(2, 32767, 2147483647, 9223372036854775807, 99999999999999999999.9999999999, 2.2250738585072014e-308, "
        "1.1, false, '" + BIG_TEXT + "', '', 'abcdefgh', '\\x', '9999-12-31', '23:59:59.999999', "
        "'1970-01-01 00:00:00', '1969-12-31 23:59:59.5+00', '\"just a string\"', 'null', "
        "'00000000-0000-0000-0000-000000000000', '{}', '{}', 'happy', B'00000000')",
        "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL, NULL)",
    ]


def mariadb_rows() -> list[str]:
    return [
        "(1, -128, -8388608, 18446744073709551615, -12345678901234567890.0123456789, -1.5e308, -3.4e38, 1, "
        "'héllo ✓ 😀', 'code-1', 'ab', X'00ff10', '1000-01-01', '-838:59:59.000000', '2024-02-29 23:59:59.999999', "
        '\'2038-01-19 03:14:07.999999\', \'{"n": 0.5, "a": [1, "x", null], "deep": {"k": true}}\', '
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'it''s complicated', 'write,read', b'101010101010', 2155)",
        "(4294967295, 127, 8388607, 0, 99999999999999999999.9999999999, 2.2250738585072014e-308, 1.1, 0, '', "
        "'', 'abcdefgh', X'', '9999-12-31', '838:59:59.999999', '1970-01-01 00:00:00', '1970-01-01 00:00:01', "
        "'[]', '00000000-0000-0000-0000-000000000000', 'happy', '', b'0', 1901)",
        "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL)",
    ]


# --- the two engines as source and target ---------------------------------------------------------------------


def run_sql(endpoint: Endpoint, *statements: str) -> None:
    with endpoint.connect("admin") as conn:
        if endpoint.engine == "postgresql":
            for statement in statements:
                conn.execute(statement)
        else:
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                for statement in statements:
                    cur.execute(statement)


def captured_rows(endpoint: Endpoint, namespace: str, where: str = "") -> dict[Any, dict[str, Any]]:
    """Source rows as capture's snapshot reads them (the same converters as the change stream)."""
    if endpoint.engine == "postgresql":
        with endpoint.connect("admin") as conn:
            info = load_table(conn, namespace, stream="test")
            select = ", ".join(f'"{c}"::text' for c in info.columns)
            raw = conn.execute(f"SELECT {select} FROM {namespace} {where}").fetchall()
            rows = [row_from_text(info, values) for values in raw]
            key = info.key
    else:
        conn = endpoint.connect("admin")
        try:
            info = load_tables(conn, [namespace], flavor="mariadb")[namespace]
            query = snapshot_query(info)
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                cur.execute(f"SELECT {query.select_list} FROM {namespace} {where}")
                rows = [query.plan.apply(dict(zip(query.column_names, raw, strict=True))) for raw in cur.fetchall()]
            key = info.primary_key
        finally:
            conn.close()
    return {tuple(row[k] for k in key): row for row in rows}


def upserts(target_ns: str, rows: dict[Any, dict[str, Any]]) -> list[RowChange]:
    return [RowChange(target_ns, "upsert", {"id": row["id"]}, row) for row in rows.values()]


def pg_writer(db: Endpoint) -> PostgresWriter:
    conninfo = make_conninfo(
        host=db.host,
        port=db.port,
        user=db.apply.user,
        password=db.apply.password,
        dbname=db.database,
        sslmode="disable",
    )
    return PostgresWriter(conninfo, node="pg")


def mariadb_writer(db: Endpoint, password: str | None = None) -> MariaDbWriter:
    params = ConnectParams(
        host=db.host,
        port=db.port,
        user=db.apply.user,
        password=db.apply.password if password is None else password,
        database=db.database,
        tls=Tls(mode="disable"),
    )
    return MariaDbWriter(params, node="maria")


@dataclass
class Direction:
    source: Endpoint
    source_ns: str
    target: Endpoint
    target_ns: str
    writer: BatchWriter[Any, Any]
    source_rows: Callable[[], list[str]]

    def captured(self, where: str = "") -> dict[Any, dict[str, Any]]:
        return captured_rows(self.source, self.source_ns, where)

    def apply(self, changes: list[RowChange]) -> None:
        self.writer.apply(changes)

    def assert_equal(self) -> None:
        assert_tables_equal(self.source, self.source_ns, self.target, self.target_ns)


@pytest.fixture(params=["pg_to_mariadb", "mariadb_to_pg"])
def direction(request: pytest.FixtureRequest, fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint) -> Iterator[Direction]:
    pg_ns, maria_ns = "public.items", f"{fresh_mariadb_db.database}.items"
    if request.param == "pg_to_mariadb":
        run_sql(fresh_pg_db, PG_TABLE)
        run_sql(fresh_mariadb_db, MARIADB_FROM_PG)
        d = Direction(fresh_pg_db, pg_ns, fresh_mariadb_db, maria_ns, mariadb_writer(fresh_mariadb_db), pg_rows)
    else:
        run_sql(fresh_mariadb_db, MARIADB_TABLE)
        run_sql(fresh_pg_db, PG_FROM_MARIADB)
        d = Direction(fresh_mariadb_db, maria_ns, fresh_pg_db, pg_ns, pg_writer(fresh_pg_db), mariadb_rows)
    yield d
    d.writer.close()


def schema_of(endpoint: Endpoint, namespace: str) -> Any:
    conn = endpoint.connect("apply")
    try:
        return (pg_schema if endpoint.engine == "postgresql" else mariadb_schema)(conn, namespace)
    finally:
        conn.close()


# --- tests ------------------------------------------------------------------------------------------------------


def test_every_mapped_type_arrives_and_replays_are_harmless(direction: Direction) -> None:
    d = direction
    # The start-up check sees no loss in this mapping (the writer reads the target's schema the same way).
    assert check_mapping(schema_of(d.source, d.source_ns), d.writer.schema(d.target_ns), {}, "refuse") == []
    run_sql(d.source, f"INSERT INTO {d.source_ns} VALUES " + ", ".join(d.source_rows()))
    history = [upserts(d.target_ns, d.captured())]
    d.apply(history[0])
    d.assert_equal()

    # Updates (one keeping its big text column UNCHANGED, as PostgreSQL sends unchanged TOASTed values),
    # a delete, and a key change (delete of the old key + upsert of the new one).
    first, second = (1,), max(k for k in d.captured() if k != (3,))
    run_sql(
        d.source,
        f"UPDATE {d.source_ns} SET code = 'changed', name = NULL WHERE id = {first[0]}",
        f"UPDATE {d.source_ns} SET code = 'kept name' WHERE id = {second[0]}",
        f"DELETE FROM {d.source_ns} WHERE id = 3",
        f"UPDATE {d.source_ns} SET id = 77 WHERE id = {first[0]}",
    )
    now = d.captured()
    kept = dict(now[second], name=UNCHANGED)
    slice_ = [
        RowChange(d.target_ns, "upsert", {"id": first[0]}, dict(now[(77,)], id=first[0], name=None)),
        RowChange(d.target_ns, "upsert", {"id": second[0]}, kept),
        RowChange(d.target_ns, "delete", {"id": 3}, None),
        RowChange(d.target_ns, "delete", {"id": first[0]}, None),
        RowChange(d.target_ns, "upsert", {"id": 77}, now[(77,)]),
    ]
    history.append(slice_)
    d.apply(slice_)
    d.assert_equal()
    assert (
        table_rows(d.target, d.target_ns)[(second[0],)]["name"]
        == table_rows(d.source, d.source_ns)[(second[0],)]["name"]
    )

    # Idempotence: the whole history again, then every overlapping suffix, then each slice twice in one.
    expected = checksum(table_rows(d.target, d.target_ns))
    everything = [change for changes in history for change in changes]
    for start in range(len(everything)):
        d.apply(everything[start:])
        assert checksum(table_rows(d.target, d.target_ns)) == expected, f"replay from change {start}"
    d.apply(everything + everything)
    d.assert_equal()


def test_insert_update_delete_of_one_key_in_one_slice(direction: Direction) -> None:
    d = direction
    run_sql(d.source, f"INSERT INTO {d.source_ns} VALUES " + ", ".join(d.source_rows()))
    rows = d.captured()
    one = rows[min(rows)]
    slice_ = [
        RowChange(d.target_ns, "upsert", {"id": 500}, dict(one, id=500)),
        RowChange(d.target_ns, "upsert", {"id": 500}, dict(one, id=500, code="second", name=UNCHANGED)),
        RowChange(d.target_ns, "delete", {"id": 500}, None),
        *upserts(d.target_ns, rows),
        RowChange(d.target_ns, "upsert", {"id": 600}, dict(one, id=600, code="x")),
        RowChange(d.target_ns, "delete", {"id": 600}, None),
        RowChange(d.target_ns, "upsert", {"id": 600}, {"id": 600, "code": "back", "name": UNCHANGED}),
    ]
    d.apply(slice_)
    target = table_rows(d.target, d.target_ns)
    assert (500,) not in target
    # Re-inserted after its delete: only the columns the last upsert wrote; the rest take their defaults.
    assert target[(600,)]["code"] == "back" and target[(600,)]["name"] is None
    run_sql(d.target, f"DELETE FROM {d.target_ns} WHERE id = 600")
    d.assert_equal()


def test_a_refused_row_names_table_and_key_and_rolls_the_slice_back(direction: Direction) -> None:
    d = direction
    run_sql(d.source, f"INSERT INTO {d.source_ns} VALUES " + ", ".join(d.source_rows()))
    rows = d.captured()
    good = upserts(d.target_ns, rows)
    too_long = RowChange(d.target_ns, "upsert", {"id": 41}, {"id": 41, "code": "x" * 65})
    with pytest.raises(RowRefused) as caught:
        d.apply([*good, RowChange(d.target_ns, "upsert", {"id": 40}, {"id": 40, "code": "fits"}), too_long])
    message = str(caught.value)
    assert f"table `{d.target_ns}`, key (id=41)" in message, message
    assert "too long" in message.lower(), message
    # Which row, exactly (the applier sets that row aside and applies the rest), and nothing applied.
    assert (caught.value.namespace, caught.value.key) == (d.target_ns, {"id": 41})
    assert table_rows(d.target, d.target_ns) == {}

    # A NOT NULL violation is named the same way; a value the column type cannot take (converted before
    # anything is sent) too.
    run_sql(
        d.target,
        f"ALTER TABLE {d.target_ns} "
        + ("MODIFY code VARCHAR(64) NOT NULL" if d.target.engine == "mariadb" else "ALTER COLUMN code SET NOT NULL"),
    )
    d.writer.forget()
    with pytest.raises(SinkError, match=r"key \(id=42\)"):
        d.apply([RowChange(d.target_ns, "upsert", {"id": 42}, {"id": 42, "code": None})])
    if d.target.engine == "mariadb":
        bad = RowChange(d.target_ns, "upsert", {"id": 43}, {"id": 43, "code": "c", "ratio": float("nan")})
        reason = "cannot be stored"
    else:
        bad = RowChange(d.target_ns, "upsert", {"id": 43}, {"id": 43, "code": "c", "flag": 2})
        reason = "2 is not a boolean"
    with pytest.raises(SinkError, match=rf"key \(id=43\).*{reason}"):
        d.apply([RowChange(d.target_ns, "upsert", {"id": 44}, {"id": 44, "code": "ok"}), bad])
    assert table_rows(d.target, d.target_ns) == {}
    # The writer is still usable afterwards.
    d.apply([RowChange(d.target_ns, "upsert", {"id": 45}, {"id": 45, "code": "ok"})])
    assert list(table_rows(d.target, d.target_ns)) == [(45,)]


def test_a_table_dropped_after_the_writer_read_it_blames_no_row(direction: Direction) -> None:
    """The writer read the table (an earlier apply, or the shard's prepare() at start-up), then a DBA drops it:
    the write fails for every row alike, so no row is the culprit. It is a SinkError for the slice (the shard
    retries it, /readyz goes red), never a RowRefused that would set the first row aside as a dead letter."""
    d = direction
    run_sql(d.source, f"INSERT INTO {d.source_ns} VALUES " + ", ".join(d.source_rows()))
    rows = upserts(d.target_ns, d.captured())
    d.apply(rows[:1])  # the schema is read and kept (as prepare() at start-up keeps it)
    table = d.target_ns if d.target.engine == "mariadb" else d.target_ns.split(".", 1)[1]
    # (PostgreSQL's: without its leading CREATE TYPE, which the drop leaves behind.)
    definition = MARIADB_FROM_PG if d.target.engine == "mariadb" else PG_FROM_MARIADB.split(";\n", 1)[1]
    run_sql(d.target, f"DROP TABLE {table}")
    with pytest.raises(SinkError) as caught:
        d.apply(rows)
    assert not isinstance(caught.value, RowRefused), caught.value
    assert "one of the keys" in str(caught.value), caught.value
    run_sql(d.target, definition)  # the DBA puts it back: the same slice applies
    d.apply(rows)
    d.assert_equal()


def _kill_sessions(endpoint: Endpoint) -> None:
    """End every session of the apply user from the admin side (a server restart, as the writer sees it)."""
    if endpoint.engine == "postgresql":
        run_sql(
            endpoint,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
            f"'{endpoint.apply.user}' AND datname = '{endpoint.database}'",
        )
        return
    with endpoint.connect("admin") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND DB = %s",
            (endpoint.apply.user, endpoint.database),
        )
        for (session,) in cur.fetchall():
            cur.execute(f"KILL {int(session)}")


def test_lost_connection_is_retryable_and_the_next_apply_reconnects(direction: Direction) -> None:
    d = direction
    change = RowChange(d.target_ns, "upsert", {"id": 1}, {"id": 1, "code": "a"})
    d.apply([change])
    _kill_sessions(d.target)
    with pytest.raises(SourceUnavailable) as caught:
        d.apply([change])
    assert caught.value.retryable
    d.apply([RowChange(d.target_ns, "upsert", {"id": 1}, {"id": 1, "code": "b"})])
    assert table_rows(d.target, d.target_ns)[(1,)]["code"] == "b"


def test_missing_table_and_missing_key_are_sink_errors(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint) -> None:
    run_sql(fresh_pg_db, "CREATE TABLE public.nokey (a int)")
    run_sql(fresh_mariadb_db, "CREATE TABLE nokey (a INT)")
    maria_db = fresh_mariadb_db.database
    for writer, ns in ((pg_writer(fresh_pg_db), "public"), (mariadb_writer(fresh_mariadb_db), maria_db)):
        with writer:
            with pytest.raises(SinkError, match=rf"`{ns}.absent` does not exist"):
                writer.apply([RowChange(f"{ns}.absent", "delete", {"id": 1}, None)])
            with pytest.raises(SinkError, match=rf"`{ns}.nokey` has no primary key"):
                writer.apply([RowChange(f"{ns}.nokey", "delete", {"a": 1}, None)])


def test_bad_password_never_shows_in_errors(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    db = fresh_pg_db
    pg = PostgresWriter(
        make_conninfo(
            host=db.host, port=db.port, user=db.apply.user, password=secret, dbname=db.database, sslmode="disable"
        ),
        node="pg",
    )
    for writer in (pg, mariadb_writer(fresh_mariadb_db, password=secret)):
        with pytest.raises(SinkError) as caught:  # a refused login is not retryable (not SourceUnavailable)
            writer.apply([RowChange("x.y", "delete", {"id": 1}, None)])
        assert secret not in str(caught.value) and secret not in repr(caught.value.args)
        assert f"node `{writer.node}`" in str(caught.value)
        assert "authentication failed" in str(caught.value)


def test_timestamps_are_stored_in_utc(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint) -> None:
    """Aware datetimes become UTC; naive ones are taken as UTC, on both engines and both column kinds."""
    run_sql(fresh_pg_db, "CREATE TABLE public.t (id int PRIMARY KEY, ts timestamp, tstz timestamptz)")
    run_sql(fresh_mariadb_db, "CREATE TABLE t (id INT PRIMARY KEY, ts DATETIME(6), tstz TIMESTAMP(6) NULL)")
    paris = dt.timezone(dt.timedelta(hours=2))
    values = {"ts": dt.datetime(2024, 6, 1, 12, tzinfo=paris), "tstz": dt.datetime(2024, 6, 1, 12)}
    expected = {"ts": dt.datetime(2024, 6, 1, 10), "tstz": dt.datetime(2024, 6, 1, 12)}
    maria_ns = f"{fresh_mariadb_db.database}.t"
    for writer, endpoint, ns in (
        (pg_writer(fresh_pg_db), fresh_pg_db, "public.t"),
        (mariadb_writer(fresh_mariadb_db), fresh_mariadb_db, maria_ns),
    ):
        with writer:
            writer.apply([RowChange(ns, "upsert", {"id": 1}, {"id": 1, **values})])
        row = table_rows(endpoint, ns)[(1,)]
        assert {k: row[k] for k in expected} == expected, endpoint.engine


def test_schemas_read_types_keys_and_column_flags(fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint) -> None:
    run_sql(
        fresh_pg_db,
        "CREATE TYPE mood AS ENUM ('happy', 'it''s')",
        "CREATE DOMAIN short_code AS varchar(10) NOT NULL",
        "CREATE TABLE public.s (a int GENERATED ALWAYS AS IDENTITY, b text, n numeric(30,10), u numeric, "
        "c char(8), t timestamptz(3), i interval, bits bit(8), vb varbit, m mood, ms mood[], code short_code, "
        "g int GENERATED ALWAYS AS (a * 2) STORED, PRIMARY KEY (b, a))",
    )
    run_sql(
        fresh_mariadb_db,
        "CREATE TABLE s (a INT UNSIGNED, b VARCHAR(64) CHARACTER SET latin1, f TINYINT(1) NOT NULL DEFAULT 0, "
        "d DECIMAL(12,2), fl FLOAT(7,4), tx TEXT, j JSON, e ENUM('x', 'it''s'), st SET('r', 'w'), bits BIT(3), "
        "tm TIME(3), ts TIMESTAMP(6) NULL, y YEAR, u UUID, v INT AS (a + 1) VIRTUAL, PRIMARY KEY (b, a))",
    )
    pg = schema_of(fresh_pg_db, "public.s")
    assert pg.primary_key == ("b", "a")
    types = {c.name: c.type for c in pg.columns}
    assert (types["n"].precision, types["n"].scale, types["u"].precision) == (30, 10, None)
    assert (types["c"].length, types["c"].fixed, types["t"].precision, types["t"].family) == (8, True, 3, "timestamptz")
    assert (types["bits"].length, types["bits"].fixed, types["vb"].length) == (8, True, None)
    assert types["m"].labels == ("happy", "it's") and types["ms"].element == types["m"].__class__(
        family="enum", name="mood", labels=("happy", "it's")
    )
    assert (types["code"].family, types["code"].length) == ("text", 10)
    flags = {c.name: (c.nullable, c.has_default, c.generated) for c in pg.columns}
    assert flags["a"] == (False, True, False) and flags["g"] == (True, False, True) and flags["code"][0] is False

    maria = schema_of(fresh_mariadb_db, f"{fresh_mariadb_db.database}.s")
    assert maria.primary_key == ("b", "a")
    types = {c.name: c.type for c in maria.columns}
    assert (types["a"].family, types["a"].bits, types["a"].unsigned) == ("integer", 32, True)
    assert (types["b"].charset, types["b"].length) == ("latin1", 64)
    assert (types["f"].family, types["fl"].scale, types["tx"].length) == ("boolean", 4, 16383)
    assert types["j"].family == "json" and types["e"].labels == ("x", "it's") and types["st"].labels == ("r", "w")
    assert (types["bits"].length, types["tm"].family, types["tm"].precision, types["tm"].max_hours) == (
        3,
        "interval",
        3,
        838,
    )
    assert (types["ts"].family, types["ts"].bits, types["y"].name, types["u"].family) == (
        "timestamptz",
        32,
        "year",
        "uuid",
    )
    flags = {c.name: (c.nullable, c.has_default, c.generated) for c in maria.columns}
    assert flags["f"] == (False, True, False) and flags["v"][2] is True and flags["a"][0] is False


def test_identity_columns_are_written_with_their_source_values(fresh_pg_db: Endpoint) -> None:
    run_sql(fresh_pg_db, "CREATE TABLE public.t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)")
    with pg_writer(fresh_pg_db) as writer:
        writer.apply([RowChange("public.t", "upsert", {"id": 41}, {"id": 41, "v": "a"})])
        writer.apply([RowChange("public.t", "upsert", {"id": 41}, {"id": 41, "v": "b"})])
    assert table_rows(fresh_pg_db, "public.t") == {(41,): {"id": 41, "v": "b"}}


def test_writers_from_node_config_carry_tls_and_password() -> None:
    from config.model import MySqlNode, PostgresNode

    tls = Tls(mode="require")
    pg = PostgresWriter.for_node("pg", PostgresNode(host="db", database="app", username="u", tls=tls), "s3cret")
    assert "sslmode=require" in pg._conninfo and pg.subject == "postgresql node `pg`"
    maria = MariaDbWriter.for_node("maria", MySqlNode(host="db", database="app", username="u", tls=tls), "s3cret")
    assert maria._params.tls.mode == "require" and maria._params.password == "s3cret"
    assert "s3cret" not in repr(maria._params)
