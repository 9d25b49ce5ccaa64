"""`worker-sync sync --manual`: a stream re-reads its tables from a fresh snapshot and repairs its targets."""

from __future__ import annotations

import pytest

from actors.cli import main as cli
from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from actors.http import StatusServer
from tests.actors.test_pipeline import create_orders, wait_equal, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config, running

pytestmark = pytest.mark.usefixtures("ray_session")


def test_manual_resync_repairs_a_target_changed_behind_its_back(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, capsys
) -> None:
    pg, mariadb = fresh_pg_db, fresh_mariadb_db
    create_orders(pg, mariadb)
    orders = f"{mariadb.database}.orders"
    config = pg_to_mariadb_config(pg, mariadb, tmp_path, [("public.orders", orders)])
    token = write_secret_file(tmp_path, "token", "resync-token")
    with pg.connect("admin") as conn:
        for i in range(1, 201):
            conn.execute(
                "INSERT INTO public.orders (id, customer, qty, price) VALUES (%s, %s, %s, 1.50)", (i, f"c{i}", i)
            )
    with running(config) as supervisor:
        wait_ready(supervisor)
        wait_equal(pg, "public.orders", mariadb, orders, timeout_s=60, supervisor=supervisor)
        # Someone edits the target directly: the stream alone would never repair these rows.
        with mariadb.connect("admin") as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE {orders} SET qty = -1 WHERE id <= 50")
            cur.execute(f"DELETE FROM {orders} WHERE id > 180")
        server = StatusServer(
            "127.0.0.1",
            0,
            status=supervisor.status,
            healthy=supervisor.healthy,
            ready=supervisor.ready,
            token="resync-token",
            control=supervisor,
        )
        server.start()
        url = f"http://127.0.0.1:{server.port}"
        try:
            assert cli(["sync", "--manual", "--stream", "nowhere", "--url", url, "--token-file", str(token)]) == 1
            assert "no stream `nowhere`" in capsys.readouterr().err
            assert cli(["sync", "--manual", "--stream", "postgresql", "--url", url, "--token-file", str(token)]) == 0
            assert "re-sync requested (public.orders)" in capsys.readouterr().out
            # Changes made meanwhile are not lost: they follow the snapshot in order.
            with pg.connect("admin") as conn:
                conn.execute("UPDATE public.orders SET qty = qty + 1000 WHERE id % 7 = 0")
                conn.execute("DELETE FROM public.orders WHERE id BETWEEN 100 AND 110")
            wait_equal(pg, "public.orders", mariadb, orders, timeout_s=90, supervisor=supervisor)
            # The stream goes on after the re-sync.
            with pg.connect("admin") as conn:
                conn.execute("INSERT INTO public.orders (id, customer, qty, price) VALUES (999, 'late', 1, 2.00)")
            wait_equal(pg, "public.orders", mariadb, orders, timeout_s=60, supervisor=supervisor)
            assert supervisor.status().streams[0].committed is not None
        finally:
            server.stop()
