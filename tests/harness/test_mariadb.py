"""The local MariaDB writes a binlog capture can use, and its accounts are least-privilege."""

from __future__ import annotations

import pymysql
import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

from actors.harness import Endpoint

ER_ACCESS_DENIED = 1045
ER_TABLEACCESS_DENIED = 1142
ER_DBACCESS_DENIED = 1044


def _query(endpoint: Endpoint, sql: str, role: str = "admin") -> list[tuple[object, ...]]:
    with endpoint.connect(role) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_binlog_is_row_based_with_full_images_and_column_names(mariadb_server: Endpoint) -> None:
    variables = dict(
        _query(
            mariadb_server,
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ("
            "'log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', "
            "'gtid_strict_mode', 'server_id', 'performance_schema')",
        )
    )
    assert variables == {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "gtid_strict_mode": "ON",
        "server_id": "1",
        "performance_schema": "OFF",
    }


@pytest.mark.parametrize("role", ["admin", "capture", "apply"])
def test_each_account_logs_in_with_its_password(mariadb_server: Endpoint, role: str) -> None:
    [(user, database)] = _query(mariadb_server, "SELECT current_user(), database()", role)
    assert str(user).split("@")[0] == mariadb_server.credentials(role).user
    assert database == mariadb_server.database


@pytest.mark.parametrize("role", ["admin", "capture", "apply"])
def test_a_wrong_password_is_refused(mariadb_server: Endpoint, role: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(
            host=mariadb_server.host,
            port=mariadb_server.port,
            user=mariadb_server.credentials(role).user,
            password="wrong",
        )
    assert denied.value.args[0] == ER_ACCESS_DENIED


def test_capture_grants_are_exactly_what_binlog_streaming_needs(mariadb_server: Endpoint) -> None:
    grants = " ".join(str(row[0]) for row in _query(mariadb_server, "SHOW GRANTS", "capture"))
    assert "REPLICATION SLAVE" in grants
    assert "BINLOG MONITOR" in grants
    assert f"GRANT SELECT ON `{mariadb_server.database}`.*" in grants
    for too_much in ("ALL PRIVILEGES", "SUPER", "REPLICATION MASTER ADMIN", "BINLOG ADMIN", "INSERT"):
        assert too_much not in grants


def test_apply_writes_rows_but_cannot_change_the_schema(fresh_mariadb_db: Endpoint) -> None:
    with fresh_mariadb_db.connect("admin") as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    with fresh_mariadb_db.connect("apply") as apply, apply.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        cur.execute("UPDATE items SET name = 'uno' WHERE id = 1")
        cur.execute("DELETE FROM items WHERE id = 2")
        cur.execute("SELECT id, name FROM items")
        assert cur.fetchall() == ((1, "uno"),)
        for ddl in (
            "CREATE TABLE other (id INT)",
            "DROP TABLE items",
            "ALTER TABLE items ADD extra INT",
            "TRUNCATE items",
        ):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(ddl)
            assert denied.value.args[0] == ER_TABLEACCESS_DENIED, ddl
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute("SELECT * FROM mysql.user")
        assert denied.value.args[0] == ER_TABLEACCESS_DENIED


def test_capture_reads_but_does_not_write(fresh_mariadb_db: Endpoint) -> None:
    with fresh_mariadb_db.connect("admin") as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO items VALUES (7)")
    with fresh_mariadb_db.connect("capture") as capture, capture.cursor() as cur:
        cur.execute("SELECT id FROM items")
        assert cur.fetchall() == ((7,),)
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute("INSERT INTO items VALUES (8)")
        assert denied.value.args[0] == ER_TABLEACCESS_DENIED


def test_capture_reads_a_row_event_with_column_names(fresh_mariadb_db: Endpoint) -> None:
    with fresh_mariadb_db.connect("admin") as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
    [(log_file, log_pos, *_)] = _query(fresh_mariadb_db, "SHOW MASTER STATUS", "capture")
    with fresh_mariadb_db.connect("admin") as admin, admin.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (1, 'héllo')")
    capture = fresh_mariadb_db.capture
    stream = BinLogStreamReader(
        connection_settings={
            "host": fresh_mariadb_db.host,
            "port": fresh_mariadb_db.port,
            "user": capture.user,
            "password": capture.password,
        },
        server_id=4242,
        blocking=False,
        only_events=[WriteRowsEvent],
        only_schemas=[fresh_mariadb_db.database],
        resume_stream=True,
        log_file=log_file,
        log_pos=log_pos,
    )
    try:
        rows = [(event.table, row["values"]) for event in stream for row in event.rows]
    finally:
        stream.close()
    assert rows == [("items", {"id": 1, "name": "héllo"})]


def test_fresh_databases_are_separate_and_empty(mariadb_server: Endpoint, fresh_mariadb_db: Endpoint) -> None:
    assert fresh_mariadb_db.database != mariadb_server.database
    assert _query(fresh_mariadb_db, "SHOW TABLES", "apply") == []
    with pytest.raises(pymysql.err.OperationalError) as denied:
        fresh_mariadb_db.connect("apply", database="mysql")
    assert denied.value.args[0] == ER_DBACCESS_DENIED


def test_drop_database_removes_the_grants(mariadb_server: Endpoint) -> None:
    endpoint = mariadb_server.create_database("t_drop_grants")
    assert any("t_drop_grants" in str(row[0]) for row in _query(endpoint, "SHOW GRANTS", "apply"))
    mariadb_server.drop_database("t_drop_grants")
    assert not any("t_drop_grants" in str(row[0]) for row in _query(mariadb_server, "SHOW GRANTS", "apply"))
    assert _query(mariadb_server, "SHOW DATABASES LIKE 't_drop_grants'") == []


def test_drop_database_does_not_wait_for_sessions_using_it(mariadb_server: Endpoint) -> None:
    endpoint = mariadb_server.create_database("t_drop_busy")
    with endpoint.connect("apply", autocommit=False) as busy:
        with endpoint.connect("admin") as admin, admin.cursor() as cur:
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
        with busy.cursor() as cur:
            cur.execute("SELECT * FROM items")  # holds a metadata lock until its transaction ends
        mariadb_server.drop_database("t_drop_busy")
    assert _query(mariadb_server, "SHOW DATABASES LIKE 't_drop_busy'") == []
