"""The engine object of each database (actors/engines/*/engine.py): what engine-neutral code asks of a node.
No server needed."""

from __future__ import annotations

from pathlib import Path

import msgspec
import psycopg
import pymongo.errors
import pymysql
import pytest

from actors.core.errors import (
    DatabaseError,
    DatabaseUnreachable,
    NodeUnreachable,
    ObjectMissing,
    PrivilegeMissing,
)
from actors.engines.registry import driver_errors, engine_for, translate
from config import nodes_by_name, parse_config

CONFIG = """
databases:
  postgresql: {host: pg, database: shop, username: ws, password_env: WS_TEST_PW}
  mysql: {host: my, database: store, username: ws, password_env: WS_TEST_PW, tls: {mode: disable}}
  mongodb: {host: mo, database: app, username: ws}
"""


@pytest.fixture
def nodes():
    return nodes_by_name(parse_config(CONFIG))


def test_each_node_type_has_its_engine_named_as_the_config_does(nodes) -> None:
    assert {name: engine_for(node).name for name, node in nodes.items()} == {
        "postgresql": "postgresql",
        "mysql": "mysql",
        "mongodb": "mongodb",
    }
    assert engine_for(nodes["mysql"]) is engine_for(nodes["mysql"])  # one object per database


def test_echo_markers_are_needed_where_the_log_cannot_tell_the_writer(nodes) -> None:
    # PostgreSQL marks Worker-Sync's sessions with a replication origin; the others need a marker row/document.
    assert {name: engine_for(node).needs_echo_marker for name, node in nodes.items()} == {
        "postgresql": False,
        "mysql": True,
        "mongodb": True,
    }


def test_probe_table_namespaces_and_statements(nodes) -> None:
    pg, my, mongo = (engine_for(nodes[n]) for n in ("postgresql", "mysql", "mongodb"))
    assert pg.probe_namespace(nodes["postgresql"]) == "public.worker_sync_probe"
    assert my.probe_namespace(nodes["mysql"]) == "store.worker_sync_probe"
    assert mongo.probe_namespace(nodes["mongodb"]) is None  # not covered yet
    assert pg.quote_namespace("public.worker_sync_probe") == '"public"."worker_sync_probe"'
    assert my.quote_namespace("store.worker_sync_probe") == "`store`.`worker_sync_probe`"
    assert pg.probe_statements(nodes["postgresql"], ["ws"])[1] == (
        'GRANT SELECT, INSERT, UPDATE, DELETE ON public.worker_sync_probe TO "ws"'
    )
    assert my.probe_statements(nodes["mysql"], ["'ws'@'%'"])[1] == (
        "GRANT SELECT, INSERT, UPDATE, DELETE ON `store`.`worker_sync_probe` TO 'ws'@'%'"
    )


def test_dump_commands_keep_the_password_off_the_command_line(nodes, tmp_path: Path) -> None:
    out = tmp_path / "dump.sql"
    pg = engine_for(nodes["postgresql"]).dump_command(nodes["postgresql"], out)
    my = engine_for(nodes["mysql"]).dump_command(nodes["mysql"], out)
    assert pg is not None and my is not None
    assert (pg.programs, pg.password_env) == (("pg_dump",), "PGPASSWORD")
    assert (my.programs, my.password_env) == (("mariadb-dump", "mysqldump"), "MYSQL_PWD")
    assert "--skip-ssl" in my.args and f"--result-file={out}" in my.args
    assert engine_for(nodes["mongodb"]).dump_command(nodes["mongodb"], out) is None


def test_a_mongodb_node_has_no_plain_connection(nodes) -> None:
    with pytest.raises(NodeUnreachable, match="not supported by this command yet"):
        engine_for(nodes["mongodb"]).connect("mongodb", nodes["mongodb"], None, app="test")


def test_a_refused_connection_names_the_node_and_no_secret(nodes) -> None:
    node = msgspec.structs.replace(nodes["mysql"], host="127.0.0.1", port=1)
    with pytest.raises(NodeUnreachable) as info:
        engine_for(node).connect("mysql", node, "s3cret", app="test")
    assert str(info.value).startswith("node `mysql` (127.0.0.1:1/store): cannot connect: ")
    assert "s3cret" not in str(info.value) and info.value.reason and info.value.exit_code == 3


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (psycopg.OperationalError("connection refused"), DatabaseUnreachable, 3),
        (psycopg.errors.UndefinedTable('relation "x" does not exist'), ObjectMissing, 2),
        (psycopg.errors.InvalidSchemaName('schema "x" does not exist'), ObjectMissing, 2),
        (psycopg.errors.InsufficientPrivilege("permission denied"), PrivilegeMissing, 1),
        (psycopg.errors.UniqueViolation("duplicate key"), DatabaseError, 1),
        (pymysql.err.OperationalError(2003, "Can't connect"), DatabaseUnreachable, 3),
        (pymysql.err.OperationalError(1142, "CREATE command denied"), PrivilegeMissing, 1),
        (pymysql.err.ProgrammingError(1146, "Table 'x' doesn't exist"), ObjectMissing, 2),
        (pymysql.err.IntegrityError(1062, "Duplicate entry"), DatabaseError, 1),
        (pymongo.errors.ServerSelectionTimeoutError("no servers"), DatabaseUnreachable, 3),
        (pymongo.errors.OperationFailure("not authorized", code=13), PrivilegeMissing, 1),
    ],
)
def test_driver_errors_become_worker_sync_errors(error: Exception, kind: type, code: int) -> None:
    translated = translate(error)
    assert type(translated) is kind and translated.exit_code == code
    with pytest.raises(kind) as info, driver_errors():
        raise error
    assert info.value.__cause__ is error


def test_anything_else_passes_through_untouched() -> None:
    assert translate(ValueError("x")) is None
    with pytest.raises(ValueError), driver_errors():
        raise ValueError("not a driver's")
