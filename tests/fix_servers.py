"""Database server fixtures: one server per engine per test session, a fresh database per test.

By default the servers are throwaway local ones (actors.harness). Set WORKER_SYNC_TEST_PG_DSN (a libpq
DSN for a superuser) or WORKER_SYNC_TEST_MYSQL_DSN (mysql://root:password@host:port) to use existing
servers instead; the fixtures then create the least-privilege accounts and their own databases there.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest

from actors.harness import Endpoint, LocalMariaDB, LocalPostgres
from actors.harness.external import mariadb_from_url, postgres_from_dsn

PG_DSN_ENV = "WORKER_SYNC_TEST_PG_DSN"
MYSQL_DSN_ENV = "WORKER_SYNC_TEST_MYSQL_DSN"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """PostgreSQL 15 with wal_level=logical and wal2json, bound to its `worker_sync` database."""
    dsn = os.environ.get(PG_DSN_ENV)
    if dsn:
        endpoint = postgres_from_dsn(dsn)
        yield endpoint
        endpoint.drop_database(endpoint.database)
        return
    with LocalPostgres(tmp_path_factory.mktemp("postgresql")) as server:
        yield server.endpoint


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """MariaDB with a ROW binlog (full images, column names, GTID), bound to its `worker_sync` database."""
    url = os.environ.get(MYSQL_DSN_ENV)
    if url:
        endpoint = mariadb_from_url(url)
        yield endpoint
        endpoint.drop_database(endpoint.database)
        return
    with LocalMariaDB(tmp_path_factory.mktemp("mariadb")) as server:
        yield server.endpoint


def _database_name(request: pytest.FixtureRequest) -> str:
    """Readable in server logs (the test's name) and unique (random suffix); within both engines' limits."""
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:40].strip("_")
    return f"t_{stem}_{secrets.token_hex(4)}"


@pytest.fixture
def fresh_pg_db(pg_server: Endpoint, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """A new empty PostgreSQL database with the least-privilege grants; dropped (with its replication
    slots) afterwards."""
    name = _database_name(request)
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


@pytest.fixture
def fresh_mariadb_db(mariadb_server: Endpoint, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """A new empty MariaDB database with the least-privilege grants; dropped afterwards."""
    name = _database_name(request)
    yield mariadb_server.create_database(name)
    mariadb_server.drop_database(name)
