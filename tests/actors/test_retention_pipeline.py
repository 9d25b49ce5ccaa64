"""Issue 21, log-retention early warning, on the real pipeline: the figures move as the stream does.

While the pipeline runs and keeps up, its PostgreSQL slot retains little WAL, and /status and the gauge say
so. Stopped while writes go on, the slot retains ever more. Started again, the stream catches up, confirms,
and the slot lets the WAL go: the retained figure falls back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.engines.registry import engine_for
from actors.harness import Endpoint
from actors.metrics import REGISTRY
from config.loader import nodes_by_name
from tests.pipeline_helpers import pg_to_mariadb_config, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")


def create_tables(pg: Endpoint, mariadb: Endpoint) -> None:
    with pg.connect("admin") as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, body text)")
    with mariadb.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, body longtext)")


def write(pg: Endpoint, first: int, rows: int) -> None:
    with pg.connect("admin") as conn:
        conn.execute(
            "INSERT INTO public.items SELECT g, repeat('w', 400) FROM generate_series(%s::bigint, %s::bigint) g",
            (first, first + rows - 1),
        )


def target_rows(mariadb: Endpoint) -> int:
    with mariadb.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items")
        return int(cur.fetchone()[0])


@pytest.mark.slow
def test_retained_wal_grows_while_stopped_and_falls_once_caught_up(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path
) -> None:
    create_tables(fresh_pg_db, fresh_mariadb_db)
    config = pg_to_mariadb_config(
        fresh_pg_db, fresh_mariadb_db, tmp_path, [("public.items", f"{fresh_mariadb_db.database}.items")]
    )
    node = nodes_by_name(config)["postgresql"]
    with running(config) as supervisor:
        wait_until(supervisor.ready, timeout_s=60, what="the pipeline ready")
        write(fresh_pg_db, 1, 1_000)
        wait_until(lambda: target_rows(fresh_mariadb_db) == 1_000, timeout_s=60, what="1,000 rows applied")
        (state,) = supervisor.streams.values()
        running_figure = supervisor.retention.check(state)
        assert running_figure is not None and running_figure.state == "ok", running_figure
        sample = REGISTRY.get_sample_value("worker_sync_source_retained_bytes", {"stream": state.spec.stream})
        assert sample == running_figure.retained_bytes
        wait_until(
            lambda: supervisor.status().streams[0].source_log is not None, timeout_s=5, what="/status source_log"
        )
        assert "wal_status" in supervisor.status().streams[0].source_log.detail

    # Stopped, while writes go on: nothing confirms, the slot holds every byte of WAL.
    engine = engine_for(node)
    committed = state.progress.committed
    stopped_first = engine.retention("postgresql", node, committed)
    write(fresh_pg_db, 10_000, 20_000)
    stopped_later = engine.retention("postgresql", node, committed)
    grown = stopped_later.retained_bytes - stopped_first.retained_bytes
    assert grown > 8_000_000, (stopped_first, stopped_later)
    assert stopped_first.retained_bytes >= running_figure.retained_bytes

    with running(config) as supervisor:
        wait_until(lambda: target_rows(fresh_mariadb_db) == 21_000, timeout_s=120, what="the backlog applied")
        (state,) = supervisor.streams.values()

        def released() -> bool:
            figure = supervisor.retention.check(state)
            return figure is not None and figure.retained_bytes < stopped_later.retained_bytes - grown // 2

        wait_until(released, timeout_s=60, what="the slot to release the WAL the stream applied")
