"""`worker-sync verify --report` on a live link (PostgreSQL -> MariaDB, the real pipeline on Ray): the
supervisor's /metrics reads 0 for a clean verify and the number of differing keys once rows were changed
behind Worker-Sync's back (and `status` says so); the result survives a supervisor restart (state directory)."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
import ray

from actors.cli import main
from actors.harness import Endpoint
from actors.metrics import REGISTRY, VERIFY_LAST_RUN, VERIFY_MISMATCHES
from config import parse_config
from tests.actors.test_pipeline import create_orders, wait_equal, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config_text, running, serving

pytestmark = pytest.mark.usefixtures("ray_session")

TOKEN = "verify-report-token-5b1c"


def gauge(url: str, metric: str, link: str) -> float | None:
    """The value /metrics serves for ``metric{link=...}``; None when the series is absent."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(rf'^{metric}{{link="{re.escape(link)}"}} (\S+)$', text, re.MULTILINE)
    return None if found is None else float(found.group(1))


def test_report_exports_the_last_result_per_link_and_keeps_it_across_a_restart(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(
            "INSERT INTO public.orders (id, customer, qty, price) SELECT g, 'snap', 1, g / 100.0 "
            "FROM generate_series(1, 2000) g"
        )
    orders = f"{fresh_mariadb_db.database}.orders"
    text = pg_to_mariadb_config_text(
        fresh_pg_db,
        fresh_mariadb_db,
        tmp_path,
        [("public.orders", orders)],
        ray_address=ray.get_runtime_context().gcs_address,
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = parse_config(text, source="test config")
    with running(config) as supervisor, serving(supervisor, TOKEN) as url:
        wait_ready(supervisor)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, orders, timeout_s=60, supervisor=supervisor)
        report = ("--report", "--report-url", url, "--token-file", str(token_file))
        assert gauge(url, "worker_sync_verify_mismatches", "test-link") is None  # never verified: no series
        before = time.time()
        assert main(["verify", "--config", str(path), "--link", "test-link", *report]) == 0, capsys.readouterr()
        assert gauge(url, "worker_sync_verify_mismatches", "test-link") == 0
        first_run = gauge(url, "worker_sync_verify_last_run_timestamp_seconds", "test-link")
        assert first_run is not None and first_run >= before

        # Behind Worker-Sync's back, at the target: two rows changed, one deleted, one added.
        with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE {orders} SET qty = 777 WHERE id IN (17, 1200)")
            cur.execute(f"DELETE FROM {orders} WHERE id = 42")
            cur.execute(
                f"INSERT INTO {orders} (id, customer, qty, price, placed_at) VALUES (999999, 'ghost', 1, 1, NOW())"
            )
        assert main(["verify", "--config", str(path), "--all-links", *report]) == 1
        out, err = capsys.readouterr()
        assert "4 keys differ" in out and "result reported" in err, (out, err)
        assert gauge(url, "worker_sync_verify_mismatches", "test-link") == 4
        assert gauge(url, "worker_sync_verify_last_run_timestamp_seconds", "test-link") > first_run
        # `status` names it too, and exits 1 for it.
        assert main(["status", "--url", url]) == 1
        assert "verify test-link: 4 keys DIFFER" in capsys.readouterr().out

        # A wrong token is refused (exit 2) and changes nothing.
        token_file.write_text("wrong")
        assert main(["verify", "--config", str(path), "--link", "test-link", *report]) == 2
        assert "401" in capsys.readouterr().err
        assert gauge(url, "worker_sync_verify_mismatches", "test-link") == 4

    # A restarted supervisor exports the last result again, from the state directory.
    VERIFY_MISMATCHES.remove("test-link")
    VERIFY_LAST_RUN.remove("test-link")
    restarted = type(supervisor)(config)
    assert [r["mismatches"] for r in restarted.verify_list()] == [4]
    assert REGISTRY.get_sample_value("worker_sync_verify_mismatches", {"link": "test-link"}) == 4
