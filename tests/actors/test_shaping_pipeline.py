"""Shaping what flows, end to end on real servers, both ways: a row filter moving rows in and out, masks
(a keyed hash equal on both sides for equal inputs, never in clear at the target or in the audit log),
excluded columns, and the start-up refusals."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from actors.core.audit.entries import EntryKind, decode_entry
from actors.core.errors import ConfigError
from actors.core.routing import build_routes
from actors.engines.postgresql.audit_store import AuditStore
from actors.harness import Endpoint
from actors.preflight import check_routes
from config import parse_config
from tests.actors.test_audit_pipeline import SCHEMA, audit_config
from tests.actors.test_pipeline import wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config_text, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

KEY = bytes(range(32))
SHAPE = "columns_exclude: [note], mask: {email: hash, ssn: redact, phone: null}, where: {region: [eu, ch]}"

PG_CUSTOMERS = """
CREATE TABLE public.customers (
    id bigint PRIMARY KEY, email text, ssn varchar(11), phone varchar(20), region varchar(8), name varchar(40),
    note text
)
"""
MARIADB_CUSTOMERS = """
CREATE TABLE customers (
    id bigint PRIMARY KEY, email char(64), ssn varchar(11), phone varchar(20), region varchar(8), name varchar(40),
    note longtext
)
"""
COLUMNS = ("id", "email", "ssn", "phone", "region", "name", "note")


def hashed(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def shaped_config(text: str, source: str, target: str, tmp_path: Path, shape: str = SHAPE) -> Any:
    """The harness config with the table shaped and the masking key in a file."""
    key = tmp_path / "mask.key"
    key.write_text(KEY.hex())
    plain = f"{{source: {source}, target: {target}}}"
    assert plain in text
    text = text.replace(plain, f"{{source: {source}, target: {target}, {shape}}}")
    return parse_config(text + f"masking: {{key_file: {key}}}\n", source="test config")


def rows(endpoint: Endpoint, table: str) -> dict[int, tuple[Any, ...]]:
    query = f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY id"
    if endpoint.engine == "postgresql":
        with endpoint.connect("admin") as conn:
            found = conn.execute(query).fetchall()
    else:
        with endpoint.connect("admin") as conn, conn.cursor() as cursor:
            cursor.execute(query)
            found = cursor.fetchall()
    return {row[0]: tuple(row) for row in found}


def expected(source: dict[int, tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:
    """What the target must hold: rows in eu/ch, email hashed, ssn redacted, phone null, note not sent."""
    return {
        i: (i, None if email is None else hashed(email), None if ssn is None else "REDACTED", None, region, name, None)
        for i, (_, email, ssn, _, region, name, _) in source.items()
        if region in ("eu", "ch")
    }


def write(endpoint: Endpoint, statements: list[str]) -> None:
    if endpoint.engine == "postgresql":
        with endpoint.connect("admin") as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        with endpoint.connect("admin") as conn, conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def insert(i: int, region: str | None, email: str = "") -> str:
    email = email or f"person{i}@example.org"
    region_sql = "NULL" if region is None else f"'{region}'"
    return (
        f"INSERT INTO {{t}} (id, email, ssn, phone, region, name, note) VALUES "
        f"({i}, '{email}', '{i:03d}-45-6789', '+41 79 {i:07d}', {region_sql}, 'name {i}', 'secret note {i}')"
    )


#: Before the start (the snapshot), then while streaming: inserts in and out of the filter, updates moving
#: rows in, out, staying in, staying out, a key change out of the filter, deletes of rows in and out.
SNAPSHOT = [insert(1, "eu"), insert(2, "us"), insert(3, "ch"), insert(4, None)]
STREAMED = [
    insert(10, "eu", "same@example.org"),
    insert(11, "us"),
    insert(12, "ch"),
    insert(13, "eu"),
    "UPDATE {t} SET region = 'eu', name = 'moved in' WHERE id = 2",
    "UPDATE {t} SET region = 'us' WHERE id = 3",
    "UPDATE {t} SET name = 'still in', email = 'changed@example.org' WHERE id = 1",
    "UPDATE {t} SET name = 'still out' WHERE id = 11",
    "UPDATE {t} SET region = 'us', id = 14 WHERE id = 12",
    "UPDATE {t} SET region = 'ch' WHERE id = 4",
    "DELETE FROM {t} WHERE id = 13",
    "DELETE FROM {t} WHERE id = 11",
]


def run_both_ways_case(source: Endpoint, source_ns: str, target: Endpoint, target_ns: str, config: Any) -> None:
    write(source, [s.format(t=source_ns) for s in SNAPSHOT])
    with running(config) as supervisor:
        wait_ready(supervisor)
        write(source, [s.format(t=source_ns) for s in STREAMED])
        want = expected(rows(source, source_ns))
        assert sorted(want) == [1, 2, 4, 10]
        wait_until(
            lambda: rows(target, target_ns) == want,
            timeout_s=60,
            what=f"the target to hold the shaped rows {want} (it holds {rows(target, target_ns)})",
        )
        (stream,) = supervisor.status().streams
        assert stream.error is None, stream.error
    got = rows(target, target_ns)
    assert got[10][1] == hashed("same@example.org")  # the same on both sides: both tests expect this value
    assert got[2][5] == "moved in" and got[1][5] == "still in"


def test_postgresql_to_mariadb_filtered_masked_and_never_in_clear_in_the_audit(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    write(fresh_pg_db, [PG_CUSTOMERS, "ALTER TABLE public.customers REPLICA IDENTITY FULL"])
    write(fresh_mariadb_db, [MARIADB_CUSTOMERS])
    target = f"{fresh_mariadb_db.database}.customers"
    text = audit_config(fresh_pg_db, fresh_mariadb_db, tmp_path).read_text()
    text = text.replace(
        f"{{source: public.orders, target: {fresh_mariadb_db.database}.orders}}",
        f"{{source: public.customers, target: {target}}}",
    )
    config = shaped_config(text, "public.customers", target, tmp_path)
    run_both_ways_case(fresh_pg_db, "public.customers", fresh_mariadb_db, target, config)

    with fresh_pg_db.connect("admin") as conn:
        entries = [decode_entry(bytes(entry.data)) for entry in AuditStore(conn, SCHEMA).read()]
    changes = [e for e in entries if e.kind == EntryKind.CHANGE]
    assert changes, "nothing was audited"
    everything = b"".join(e.payload + e.key.encode() for e in changes)
    for i in (1, 2, 3, 4, 10, 11, 12, 13):
        assert f"person{i}@example.org".encode() not in everything
        assert f"{i:03d}-45-6789".encode() not in everything
        assert f"+41 79 {i:07d}".encode() not in everything
        assert f"secret note {i}".encode() not in everything
    assert b"same@example.org" not in everything and b"changed@example.org" not in everything
    assert hashed("same@example.org").encode() in everything
    # Rows outside the filter before and after (11's update and delete) are neither sent nor audited.
    assert [e.op for e in changes if e.key == '{"id":11}'] == []


def test_mariadb_to_postgresql_filtered_and_masked_alike(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    write(fresh_mariadb_db, [MARIADB_CUSTOMERS.replace("email char(64)", "email varchar(255)")])
    write(fresh_pg_db, [PG_CUSTOMERS.replace("email text", "email char(64)")])
    source = f"{fresh_mariadb_db.database}.customers"
    text = pg_to_mariadb_config_text(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [(source, "public.customers")], reverse=True
    )
    config = shaped_config(text, source, "public.customers", tmp_path)
    run_both_ways_case(fresh_mariadb_db, source, fresh_pg_db, "public.customers", config)


def test_start_up_refuses_a_filter_without_whole_before_images_and_a_hash_into_an_integer(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    write(fresh_pg_db, [PG_CUSTOMERS])  # REPLICA IDENTITY DEFAULT: updates log only the key
    write(fresh_mariadb_db, [MARIADB_CUSTOMERS.replace("ssn varchar(11)", "ssn int")])
    target = f"{fresh_mariadb_db.database}.customers"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.customers", target)])
    shape = "mask: {ssn: hash, id: redact}, where: {region: [eu]}"
    config = shaped_config(text, "public.customers", target, tmp_path, shape)
    with pytest.raises(ConfigError) as caught:
        check_routes(config, build_routes(config))
    message = str(caught.value)
    assert "REPLICA IDENTITY FULL" in message
    assert "column `ssn` has `mask: hash` but target column `ssn` int" in message
    assert "key column `id` has `mask: redact`" in message


def test_a_hashed_key_keeps_rows_addressable_through_updates_key_changes_and_deletes(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    write(
        fresh_pg_db,
        ["CREATE TABLE public.accounts (id bigint PRIMARY KEY, v text)", "INSERT INTO public.accounts VALUES (1, 'a')"],
    )
    write(fresh_mariadb_db, ["CREATE TABLE accounts (id char(64) PRIMARY KEY, v longtext)"])
    target = f"{fresh_mariadb_db.database}.accounts"
    text = pg_to_mariadb_config_text(fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.accounts", target)])
    config = shaped_config(text, "public.accounts", target, tmp_path, "mask: {id: hash}")

    def accounts() -> dict[str, str]:
        with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT id, v FROM {target}")
            return dict(cursor.fetchall())

    with running(config) as supervisor:
        wait_ready(supervisor)
        write(
            fresh_pg_db,
            [
                "INSERT INTO public.accounts VALUES (2, 'b'), (3, 'c')",
                "UPDATE public.accounts SET v = 'b2' WHERE id = 2",
                "UPDATE public.accounts SET id = 4 WHERE id = 3",
                "DELETE FROM public.accounts WHERE id = 1",
            ],
        )
        want = {hashed("2"): "b2", hashed("4"): "c"}
        wait_until(lambda: accounts() == want, timeout_s=60, what=f"the hashed keys {want} (now {accounts()})")
