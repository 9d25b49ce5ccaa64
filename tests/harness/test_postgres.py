"""The local PostgreSQL is set up for capture (logical WAL, wal2json) and its accounts are least-privilege."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import errors

from actors.harness import Endpoint, HarnessError


def _scalar(endpoint: Endpoint, query: str, role: str = "admin") -> object:
    with endpoint.connect(role) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_server_is_configured_for_logical_decoding(pg_server: Endpoint) -> None:
    assert _scalar(pg_server, "SHOW wal_level") == "logical"
    assert int(str(_scalar(pg_server, "SHOW max_replication_slots"))) >= 20
    assert int(str(_scalar(pg_server, "SHOW max_wal_senders"))) >= 20
    assert int(str(_scalar(pg_server, "SHOW server_version_num"))) // 10000 == 15


@pytest.mark.parametrize("role", ["admin", "capture", "apply"])
def test_each_account_logs_in_with_its_password(pg_server: Endpoint, role: str) -> None:
    assert _scalar(pg_server, "SELECT current_user", role) == pg_server.credentials(role).user
    assert _scalar(pg_server, "SELECT current_database()", role) == pg_server.database


@pytest.mark.parametrize("role", ["admin", "capture", "apply"])
def test_a_wrong_password_is_refused(pg_server: Endpoint, role: str) -> None:
    user = pg_server.credentials(role).user
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=pg_server.host, port=pg_server.port, user=user, password="wrong", dbname=pg_server.database
        )


def test_role_attributes_are_least_privilege(pg_server: Endpoint) -> None:
    with pg_server.connect() as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolreplication, rolcreatedb, rolcreaterole FROM pg_roles "
            "WHERE rolname = ANY(%s) ORDER BY rolname",
            ([pg_server.admin.user, pg_server.capture.user, pg_server.apply.user],),
        ).fetchall()
    assert rows == [
        (pg_server.admin.user, True, True, True, True),
        (pg_server.apply.user, False, False, False, False),
        (pg_server.capture.user, False, True, False, False),
    ]


def test_apply_writes_rows_but_cannot_change_the_schema(fresh_pg_db: Endpoint) -> None:
    with fresh_pg_db.connect("admin") as admin:
        admin.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    with fresh_pg_db.connect("apply") as apply:
        apply.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        apply.execute("UPDATE items SET name = 'uno' WHERE id = 1")
        apply.execute("DELETE FROM items WHERE id = 2")
        assert apply.execute("SELECT id, name FROM items").fetchall() == [(1, "uno")]
        for ddl in (
            "CREATE TABLE other (id int)",
            "DROP TABLE items",
            "ALTER TABLE items ADD COLUMN extra int",
            "TRUNCATE items",
            "CREATE SCHEMA sneaky",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                apply.execute(ddl)
    with fresh_pg_db.connect("admin") as admin:
        assert admin.execute("SELECT count(*) FROM items").fetchone() == (1,)


def test_capture_reads_but_does_not_write(fresh_pg_db: Endpoint) -> None:
    with fresh_pg_db.connect("admin") as admin:
        admin.execute("CREATE TABLE items (id int PRIMARY KEY)")
        admin.execute("INSERT INTO items VALUES (7)")
    with fresh_pg_db.connect("capture") as capture:
        assert capture.execute("SELECT id FROM items").fetchall() == [(7,)]
        with pytest.raises(errors.InsufficientPrivilege):
            capture.execute("INSERT INTO items VALUES (8)")


def test_capture_reads_a_change_through_a_wal2json_slot(fresh_pg_db: Endpoint) -> None:
    slot = f"{fresh_pg_db.database}_slot"
    with fresh_pg_db.connect("admin") as admin:
        admin.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    with fresh_pg_db.connect("capture") as capture:
        capture.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        try:
            with fresh_pg_db.connect("admin") as admin:
                admin.execute("INSERT INTO items VALUES (1, 'héllo')")
            rows = capture.execute(
                "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL, 'format-version', '2')", (slot,)
            ).fetchall()
        finally:
            capture.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    changes = [json.loads(data) for (data,) in rows]
    inserts = [c for c in changes if c["action"] == "I"]
    assert len(inserts) == 1
    insert = inserts[0]
    assert (insert["schema"], insert["table"]) == ("public", "items")
    assert {c["name"]: c["value"] for c in insert["columns"]} == {"id": 1, "name": "héllo"}
    assert [c["action"] for c in changes] == ["B", "I", "C"]


def test_fresh_databases_are_separate_and_empty(pg_server: Endpoint, fresh_pg_db: Endpoint) -> None:
    assert fresh_pg_db.database != pg_server.database
    assert (fresh_pg_db.host, fresh_pg_db.port) == (pg_server.host, pg_server.port)
    with fresh_pg_db.connect("apply") as apply:
        assert apply.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_drop_database_also_drops_its_slots(pg_server: Endpoint) -> None:
    endpoint = pg_server.create_database("t_drop_with_slot")
    with endpoint.connect("capture") as capture:
        capture.execute("SELECT pg_create_logical_replication_slot('t_drop_with_slot_s', 'wal2json')")
    pg_server.drop_database("t_drop_with_slot")
    with pg_server.connect() as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = 't_drop_with_slot'").fetchone() == (0,)
        assert admin.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 't_drop_with_slot_s'"
        ).fetchone() == (0,)


def test_passwords_stay_out_of_repr(pg_server: Endpoint) -> None:
    text = repr(pg_server)
    for creds in (pg_server.admin, pg_server.capture, pg_server.apply):
        assert creds.user in text
        assert creds.password not in text


def test_endpoint_refuses_unknown_roles_and_unsafe_database_names(pg_server: Endpoint) -> None:
    with pytest.raises(HarnessError, match="unknown role"):
        pg_server.connect("root")
    with pytest.raises(HarnessError, match="invalid name"):
        pg_server.create_database("Robert'); DROP TABLE students;--")
    assert pg_server.with_database("postgres").database == "postgres"
