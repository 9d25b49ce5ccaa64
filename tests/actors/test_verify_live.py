"""`worker-sync verify` on a live link (the real pipeline on Ray, PostgreSQL -> MariaDB): no false alarm
while a write load is in flight, and a row changed behind Worker-Sync's back found, repaired, then equal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import ray

from actors.cli import main
from actors.harness import Endpoint
from config import parse_config
from tests.actors.test_pipeline import Load, create_orders, wait_equal, wait_ready
from tests.pipeline_helpers import pg_to_mariadb_config_text, running

pytestmark = pytest.mark.usefixtures("ray_session")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_busy_link_gives_no_false_alarm_then_repair_fixes_a_changed_row(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_orders(fresh_pg_db, fresh_mariadb_db)
    with fresh_pg_db.connect("admin") as conn:
        conn.execute(
            "INSERT INTO public.orders (id, customer, qty, price) SELECT g, 'snap', 1, g / 100.0 "
            "FROM generate_series(1000000, 1004999) g"
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
    verify = ("verify", "--config", str(path), "--link", "test-link", "--json", "--chunk-rows", "1000")
    with running(parse_config(text, source="test config")) as supervisor:
        wait_ready(supervisor)
        # A steady load the link keeps up with on a busy CI machine (stopped below, once the verifies are done):
        # unpaced, a loaded machine lets the link fall further behind than any settling can wait for.
        load = Load(fresh_pg_db, 10**9, txn=20, per_second=1_500).start()
        deadline = time.monotonic() + 30
        while load.done < 200 and time.monotonic() < deadline:  # the load is writing before the first verify
            time.sleep(0.02)
        runs = []
        # At least 5 runs, and on until one met a change in flight: the link applies a change within ~10-50 ms, so
        # only about one verify in 20 meets one. Bounded in time, so a verify that never rechecks still fails below.
        until = time.monotonic() + 45
        while len(runs) < 5 or (not any(rechecked for _, rechecked, _, _ in runs) and time.monotonic() < until):
            started = time.monotonic()
            code, out, err = cli(capsys, *verify)
            assert code == 0, f"false alarm on run {len(runs) + 1} while {load.done} changes were written: {out} {err}"
            (table,) = json.loads(out)["tables"]
            runs.append((round(time.monotonic() - started, 2), table["rechecked"], table["in_flight"], table["waits"]))
        assert load.thread.is_alive(), f"the load ended before 5 verifies finished: {runs}"
        # Changes were in flight during the runs: some keys were read again, and all of them had only been in flight.
        assert any(rechecked for _, rechecked, _, _ in runs), f"{len(runs)} verifies, none met a change in flight"
        assert all(rechecked == in_flight for _, rechecked, in_flight, _ in runs), runs
        written = load.done
        load.target = 0  # the load thread ends after its current transaction
        load.wait(60)
        wait_equal(fresh_pg_db, "public.orders", fresh_mariadb_db, orders, timeout_s=60, supervisor=supervisor)

        with fresh_mariadb_db.connect("admin") as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE {orders} SET qty = 777, note = 'edited behind its back' WHERE id = 1000042")
        code, out, _ = cli(capsys, *verify)
        assert code == 1
        (table,) = json.loads(out)["tables"]
        (diff,) = table["differences"]
        assert diff["key"] == {"id": "1000042"} and diff["columns"] == ["qty", "note"]
        assert diff["source"]["qty"] == "1" and diff["target"]["qty"] == "777"
        code, out, _ = cli(capsys, *verify, "--repair")
        assert code == 1 and json.loads(out)["tables"][0]["repaired"]["upserts"] == 1
        code, out, err = cli(capsys, *verify)
        assert code == 0, (out, err)
    rechecking = [run for run in runs if run[1]]
    print(f"{len(runs)} verifies under load, {written} changes written; those that rechecked:", rechecking)
