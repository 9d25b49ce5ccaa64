"""`worker-sync sync --manual`: a stream re-reads its tables from a fresh snapshot and repairs its targets,
losing no change made meanwhile (deletes included), from a PostgreSQL and from a MariaDB source."""

from __future__ import annotations

import pytest

from actors.cli import main as cli
from actors.harness import Endpoint
from actors.harness.compare import table_rows
from actors.harness.secret_files import write_secret_file
from tests.actors.test_pipeline import create_orders, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config, running, serving
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")

DAY = "'2026-01-01 00:00:00'"


@pytest.mark.parametrize("source_engine", ["postgresql", "mariadb"])
def test_manual_resync_repairs_a_target_and_loses_no_change_made_meanwhile(
    source_engine: str, fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, capsys
) -> None:
    pg, mariadb = fresh_pg_db, fresh_mariadb_db
    create_orders(pg, mariadb)
    pg_orders, maria_orders = "public.orders", f"{mariadb.database}.orders"
    reverse = source_engine == "mariadb"
    (source, source_ns), (target, target_ns) = ((pg, pg_orders), (mariadb, maria_orders))[:: -1 if reverse else 1]
    tables = [(maria_orders, pg_orders)] if reverse else [(pg_orders, maria_orders)]
    config = pg_to_mariadb_config(pg, mariadb, tmp_path, tables, reverse=reverse)
    stream = "mysql" if reverse else "postgresql"
    token = write_secret_file(tmp_path, "token", "resync-token")

    def execute(endpoint: Endpoint, statement: str) -> None:
        with endpoint.connect("admin") as conn:
            conn.cursor().execute(statement)

    def equal() -> bool:
        return table_rows(source, source_ns) == table_rows(target, target_ns)

    for i in range(1, 201):
        execute(
            source,
            f"INSERT INTO {source_ns} (id, customer, qty, price, placed_at) VALUES ({i}, 'c{i}', {i}, 1.50, {DAY})",
        )
    with running(config) as supervisor:
        wait_ready(supervisor)
        wait_until(equal, timeout_s=60, what="the first copy")
        # Someone edits the target directly: the stream alone would never repair these rows.
        execute(target, f"UPDATE {target_ns} SET qty = -1 WHERE id <= 50")
        execute(target, f"DELETE FROM {target_ns} WHERE id > 180")
        with serving(supervisor, "resync-token") as url:
            assert cli(["sync", "--manual", "--stream", "nowhere", "--url", url, "--token-file", str(token)]) == 1
            assert "no stream `nowhere`" in capsys.readouterr().err
            # Changes made just before and just after asking: committed after the last applied position and
            # maybe before the re-sync's snapshot, they must follow it, not vanish into it.
            execute(source, f"DELETE FROM {source_ns} WHERE id BETWEEN 100 AND 110")
            assert cli(["sync", "--manual", "--stream", stream, "--url", url, "--token-file", str(token)]) == 0
            assert "re-sync requested" in capsys.readouterr().out
            execute(source, f"UPDATE {source_ns} SET qty = qty + 1000 WHERE id % 7 = 0")
            execute(source, f"DELETE FROM {source_ns} WHERE id BETWEEN 120 AND 125")
            wait_until(equal, timeout_s=90, what="the re-synced target to equal its source")
            wait_until(lambda: supervisor.streams[stream].resync_after is None, timeout_s=30, what="the re-sync")
            # The stream goes on after the re-sync.
            execute(
                source,
                f"INSERT INTO {source_ns} (id, customer, qty, price, placed_at) VALUES (999, 'late', 1, 2.00, {DAY})",
            )
            wait_until(equal, timeout_s=60, what="a change after the re-sync")
    assert len(table_rows(target, target_ns)) == 200 - 11 - 6 + 1
