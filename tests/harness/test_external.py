"""Servers named by WORKER_SYNC_TEST_*_DSN get the same accounts and grants as the local ones.

Checked against a private local server, whose admin DSN stands in for a CI service container's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.harness import LocalMariaDB, LocalPostgres
from actors.harness.external import mariadb_from_url, postgres_from_dsn

pytestmark = pytest.mark.slow


@pytest.mark.postgresql
def test_postgres_dsn_gets_accounts_and_its_own_database(tmp_path: Path) -> None:
    with LocalPostgres(tmp_path) as server:
        admin = server.endpoint.admin
        endpoint = postgres_from_dsn(
            f"host=127.0.0.1 port={server.port} user={admin.user} password={admin.password} dbname=postgres"
        )
        assert endpoint.database.startswith("worker_sync_")
        assert endpoint.capture.password != server.endpoint.capture.password  # reset: we cannot read it back
        with endpoint.connect("admin") as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        with endpoint.connect("apply") as conn:
            conn.execute("INSERT INTO items VALUES (1)")
        with endpoint.connect("capture") as conn:
            assert conn.execute("SELECT id FROM items").fetchall() == [(1,)]
        endpoint.drop_database(endpoint.database)
        with server.endpoint.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (endpoint.database,)
            ).fetchone() == (0,)


@pytest.mark.mariadb
def test_mariadb_url_gets_accounts_and_its_own_database(tmp_path: Path) -> None:
    with LocalMariaDB(tmp_path) as server:
        admin = server.endpoint.admin
        endpoint = mariadb_from_url(f"mysql://{admin.user}:{admin.password}@127.0.0.1:{server.port}")
        assert endpoint.database.startswith("worker_sync_")
        with endpoint.connect("admin") as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
        with endpoint.connect("apply") as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1)")
        with endpoint.connect("capture") as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM items")
            assert cur.fetchall() == ((1,),)
        endpoint.drop_database(endpoint.database)
