"""The writers' table-wide operations on the real servers, both directions: every column of the writer tests'
source tables (every mapped type) added to a bare target table, its type chosen to hold every source value
(the start-up type check's rule, under `lossy_types: refuse`), idempotently; TRUNCATE, idempotently."""

from __future__ import annotations

from typing import Any

import pytest

from actors.core.errors import SinkError
from actors.core.table_events import TableOp
from actors.engines.mariadb.ddl import describe_columns as mariadb_columns
from actors.engines.postgresql.ddl import describe_columns as pg_columns
from actors.harness import Endpoint
from actors.harness.compare import assert_tables_equal
from tests.actors.test_table_changes_pipeline import let_apply_alter
from tests.engines.test_writers import (
    MARIADB_TABLE,
    PG_TABLE,
    captured_rows,
    mariadb_rows,
    mariadb_writer,
    pg_rows,
    pg_writer,
    run_sql,
    schema_of,
    upserts,
)

#: Source columns no target type holds exactly: refused with a message, never added as something lossy.
UNMAPPED = {"postgresql": {"tags", "nums"}, "mariadb": set()}


def source_columns(endpoint: Endpoint, namespace: str) -> dict[str, Any]:
    conn = endpoint.connect("admin")
    try:
        return (pg_columns if endpoint.engine == "postgresql" else mariadb_columns)(conn, namespace)
    finally:
        conn.close()


@pytest.mark.parametrize("from_postgresql", [True, False], ids=["pg_to_mariadb", "mariadb_to_pg"])
def test_every_source_column_is_added_without_loss_and_only_once(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, from_postgresql: bool
) -> None:
    maria_ns = f"{fresh_mariadb_db.database}.items"
    if from_postgresql:
        run_sql(fresh_pg_db, PG_TABLE)
        run_sql(fresh_mariadb_db, "CREATE TABLE items (id BIGINT PRIMARY KEY)")
        source, source_ns, target, target_ns = fresh_pg_db, "public.items", fresh_mariadb_db, maria_ns
        writer: Any = mariadb_writer(fresh_mariadb_db)
    else:
        run_sql(fresh_mariadb_db, MARIADB_TABLE)
        run_sql(fresh_pg_db, "CREATE TABLE public.items (id bigint PRIMARY KEY)")
        source, source_ns, target, target_ns = fresh_mariadb_db, maria_ns, fresh_pg_db, "public.items"
        writer = pg_writer(fresh_pg_db)
    let_apply_alter(target, target_ns)
    engine = source.engine
    columns = {name: added for name, added in source_columns(source, source_ns).items() if name != "id"}
    refused: dict[str, str] = {}
    with writer:
        for _ in range(2):  # the second pass finds every column there: nothing is added twice
            for name, added in columns.items():
                try:
                    writer.apply_table_op(TableOp(target_ns, name, added, "refuse", "l", engine))
                except SinkError as exc:
                    refused[name] = str(exc)
        writer.apply_table_op(TableOp(target_ns, "", None, "refuse", "l", engine))
        writer.apply_table_op(TableOp(target_ns, "", None, "refuse", "l", engine))
    assert set(refused) == UNMAPPED[engine], refused
    assert all("add the column at the target yourself" in text for text in refused.values())
    added = [c.name for c in schema_of(target, target_ns).columns]
    assert added == ["id", *[name for name in columns if name not in refused]]
    # Values of every type arrive in the added columns as they do in the writer tests' hand-made tables.
    if refused:  # arrays: added by hand as JSON, as the writer tests' MariaDB table has them
        run_sql(target, *[f"ALTER TABLE {target_ns} ADD COLUMN {name} JSON" for name in refused])
    rows = pg_rows() if from_postgresql else mariadb_rows()
    run_sql(source, f"INSERT INTO {source_ns} VALUES " + ", ".join(rows))
    with writer:
        writer.forget()
        writer.apply(upserts(target_ns, captured_rows(source, source_ns)))
    assert_tables_equal(source, source_ns, target, target_ns)
