"""Shared test set-up: fixture modules, and markers derived from the fixtures a test uses."""

from __future__ import annotations

import pytest

pytest_plugins = ("tests.fix_servers", "tests.fix_ray", "tests.fix_mongo")

# Using one of these fixtures (directly or through another fixture) marks the test, so that
# `-m "not mariadb"` deselects it at collection time, before any server starts.
FIXTURE_MARKERS: dict[str, str] = {
    "pg_server": "postgresql",
    "mariadb_server": "mariadb",
    "ray_session": "ray",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in used:
                item.add_marker(marker)
