"""The MongoDB endpoint fixture: WORKER_SYNC_MONGO_URI, else a local `mongod` replica set, else the `nx-27017`
stand-in (actors.harness.mongo). ``fresh_mongo_db`` names a new database per test and drops it afterwards;
``real_mongo`` skips a test that needs real MongoDB semantics when only the stand-in is there;
``standin_full_history`` is an nx-27017 that keeps its whole change history (see actors.harness.mongo)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from actors.harness.mongo import NEEDS_REAL, LocalMongo, MongoEndpoint


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoEndpoint]:
    with LocalMongo(tmp_path_factory.mktemp("mongodb")) as endpoint:
        yield endpoint


@pytest.fixture
def real_mongo(mongo_server: MongoEndpoint) -> MongoEndpoint:
    if not mongo_server.real:
        pytest.skip(NEEDS_REAL)
    return mongo_server


@pytest.fixture
def fresh_mongo_db(mongo_server: MongoEndpoint, request: pytest.FixtureRequest) -> Iterator[str]:
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:30].strip("_")
    name = f"t_{stem}_{secrets.token_hex(4)}"
    yield name
    with mongo_server.client() as client:
        client.drop_database(name)


@pytest.fixture(scope="module")
def standin_full_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoEndpoint]:
    with LocalMongo(tmp_path_factory.mktemp("nx-history"), prefer="nx-27017", history_rows=10**9) as endpoint:
        yield endpoint
