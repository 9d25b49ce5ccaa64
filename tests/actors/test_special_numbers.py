"""NaN and ±Infinity are never turned into NULL: a target that cannot hold them refuses the row (a dead
letter naming the column and why), the same for a row read by the initial snapshot and for a streamed one."""

from __future__ import annotations

import pytest

from actors.harness import Endpoint
from actors.harness.compare import table_rows
from tests.pipeline_helpers import pg_to_mariadb_config, running
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.mark.parametrize(
    ("decoder", "nullable"),
    [
        ("wal2json", False),  # wal2json before 2.6 sends them as null: only a NOT NULL column tells them apart
        ("pgoutput", True),  # every value as its text: exact in any column
    ],
)
def test_nan_and_infinity_are_refused_by_mariadb_from_the_snapshot_and_from_the_stream(
    fresh_pg_db: Endpoint, fresh_mariadb_db: Endpoint, tmp_path, decoder: str, nullable: bool
):
    pg, maria = fresh_pg_db, fresh_mariadb_db
    constraint = "" if nullable else " NOT NULL"
    with pg.connect("admin") as conn:
        columns = f"n numeric(20,6){constraint}, f double precision{constraint}"
        conn.execute(f"CREATE TABLE public.nums (id int PRIMARY KEY, {columns})")
        if decoder == "pgoutput":
            conn.execute(f"CREATE PUBLICATION ws_{pg.database} FOR TABLE public.nums")
        conn.execute("INSERT INTO public.nums VALUES (1, 'NaN', 1.5), (2, 2.5, 'Infinity'), (3, 1, 1)")
    with maria.connect("admin") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE nums (id int PRIMARY KEY, n decimal(20,6), f double)")
    config = pg_to_mariadb_config(pg, maria, tmp_path, [("public.nums", f"{maria.database}.nums")], decoder=decoder)
    with running(config) as supervisor:
        wait_until(lambda: supervisor.ready(), timeout_s=120, what=lambda: f"ready: {supervisor.status()}")
        with pg.connect("admin") as conn:  # streamed now, after the snapshot
            conn.execute("INSERT INTO public.nums VALUES (4, 'NaN', 2), (5, 3, '-Infinity'), (6, 4, 4)")
        wait_until(
            lambda: len(supervisor.dead_letter_list()) == 4 and len(table_rows(maria, f"{maria.database}.nums")) == 2,
            timeout_s=120,
            what=lambda: f"4 dead letters and 2 rows: {supervisor.dead_letter_list()}, {supervisor.status()}",
        )
        letters = {int(item["key"]["id"]): item["reason"] for item in supervisor.dead_letter_list()}
    assert sorted(table_rows(maria, f"{maria.database}.nums")) == [(3,), (6,)]
    assert sorted(letters) == [1, 2, 4, 5]
    for key, column in ((1, "n"), (2, "f"), (4, "n"), (5, "f")):
        reason = letters[key]
        assert f"column `{column}`" in reason, reason
        assert any(word in reason for word in ("not a finite number", "cannot be stored", "NaN or ±Infinity")), reason
