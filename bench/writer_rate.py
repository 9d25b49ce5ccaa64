"""The MariaDB writer alone: rows/s and CPU per row, pymysql's binding beside the planned literals, one run.

    python bench/writer_rate.py [--changes 100000] [--slice 2000] [--repeat 3] [--quick] [--results-dir DIR]

Starts a throwaway MariaDB (actors.harness) with the sync bench's 9-column orders table and applies
``--changes`` changes (90 % upserts of all columns, typed as the PostgreSQL capture types them: int, str,
Decimal, aware UTC datetimes; 10 % deletes) through one ``MariaDbWriter``, in slices of ``--slice`` (one
target transaction each, as an applier shard applies them). Two ways, alternating, ``--repeat`` times each,
on an emptied table every time:

- ``pymysql_binding``: the writer's converted parameters bound by pymysql (what the writer did before issue
  19, and still does for a session with NO_BACKSLASH_ESCAPES);
- ``planned_literals``: each row rendered by its table's per-column literal functions.

Reported per way (medians): rows/s of wall time and this process's CPU seconds (time.process_time: the
writer's Python work and pymysql's; MariaDB's own work is in its server process) per 10,000 changes. The
two tables must end equal. JSON on stdout and in bench/results/writer_rate.json, a plot beside it.
``--quick``: 4,000 changes, one repeat (the smoke test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.core.changes import RowChange
from actors.engines.mariadb.connection import ConnectParams
from actors.engines.mariadb.writer import MariaDbWriter
from actors.harness import Endpoint, HarnessError, LocalMariaDB
from bench import report
from bench.report import say
from bench.sync_workload import COLUMNS, ORDERS_DDL, STATUSES, WORDS, create_table, qualified
from config.model import Tls

NAME = "writer_rate"
WAYS = ("pymysql_binding", "planned_literals")


def workload(changes: int, seed: int = 3) -> list[RowChange]:
    rng = random.Random(seed)
    now = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
    out: list[RowChange] = []
    live: list[int] = []
    for n in range(changes):
        if live and rng.random() < 0.1:
            key = live.pop(rng.randrange(len(live)))
            out.append(RowChange("", "delete", {"id": key}, None))
            continue
        key = rng.choice(live) if live and rng.random() < 0.3 else n + 1
        if key == n + 1:
            live.append(key)
        at = now + dt.timedelta(microseconds=rng.randrange(10**12))
        row = {
            "id": key,
            "customer_id": rng.randrange(1, 50_000),
            "sku": f"SKU-{rng.randrange(100_000):06d}",
            "qty": rng.randrange(1, 20),
            "price": decimal.Decimal(rng.randrange(100, 10_000_000)) / 100,
            "status": rng.choice(STATUSES),
            "note": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 20)))[:200] + " it's",
            "created_at": at,
            "updated_at": at,
        }
        assert tuple(row) == COLUMNS
        out.append(RowChange("", "upsert", {"id": key}, row))
    return out


def apply_all(db: Endpoint, table: str, changes: list[RowChange], slice_size: int, literal: bool) -> dict[str, float]:
    namespace = f"{db.database}.{table}"
    changes = [RowChange(namespace, c.op, c.key, c.row) for c in changes]
    with db.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(f"TRUNCATE TABLE {qualified(db, table)}")
    params = ConnectParams(
        host=db.host,
        port=db.port,
        user=db.apply.user,
        password=db.apply.password,
        database=db.database,
        tls=Tls(mode="disable"),
    )
    writer = MariaDbWriter(params, node="bench", database=db.database)
    try:
        writer.apply(changes[:1])  # connect and read the table before timing
        writer._literal_rows = literal  # the switch the writer sets from the session's escaping mode
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(1, len(changes), slice_size):
            writer.apply(changes[start : start + slice_size])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        writer.close()
    applied = len(changes) - 1
    return {"rows_per_s": round(applied / wall), "cpu_s_per_10k": round(cpu / applied * 10_000, 4)}


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    median = result.get("median") or {}
    labels = [f"{way}\n{median[way]['cpu_s_per_10k']} CPU s / 10k" for way in WAYS if way in median]
    values = [median[way]["rows_per_s"] for way in WAYS if way in median]
    return (
        report.bar_plot(name, "MariaDB writer alone, rows/s (median)", labels, values, "changes/s") if values else None
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=100_000, help="changes per pass (default 100000)")
    parser.add_argument("--slice", type=int, default=2_000, help="changes per apply call (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per way; medians (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4,000 changes, one pass per way")
    parser.add_argument("--name", default=NAME)
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.changes, args.repeat = 4_000, 1
    if args.changes < 2 or args.slice < 1 or args.repeat < 1:
        parser.error("--changes must be at least 2, --slice and --repeat positive")
    report.begin(args)
    started = time.monotonic()
    result: dict[str, Any] = {
        "settings": {"changes": args.changes, "slice": args.slice, "repeat": args.repeat, "ways": list(WAYS)},
        "runs": [],
    }
    ok, interrupted = True, False
    changes = workload(args.changes)
    try:
        with tempfile.TemporaryDirectory(prefix="ws-writer-rate-") as tmp:
            server = LocalMariaDB(Path(tmp))
            server.start()
            try:
                db = server.endpoint
                for way in WAYS:
                    create_table(db, ORDERS_DDL, f"wr_{way}")
                for attempt in range(args.repeat):
                    run = {}
                    for way in WAYS if attempt % 2 == 0 else reversed(WAYS):
                        run[way] = apply_all(db, f"wr_{way}", changes, args.slice, way == "planned_literals")
                        figures = run[way]
                        rate, cpu = figures["rows_per_s"], figures["cpu_s_per_10k"]
                        say(f"pass {attempt + 1}: {way}: {rate:,}/s, {cpu} CPU s/10k")
                    result["runs"].append(run)
                with db.connect("admin") as conn, conn.cursor() as cursor:
                    sums = []
                    for way in WAYS:
                        cursor.execute(f"CHECKSUM TABLE {qualified(db, f'wr_{way}')}")
                        sums.append(cursor.fetchone()[1])
                result["tables_equal"] = len(set(sums)) == 1
                ok = result["tables_equal"]
            finally:
                server.stop()
    except KeyboardInterrupt:
        interrupted = True
    except HarnessError as exc:
        ok = False
        result["error"] = f"cannot start MariaDB: {exc}"
    runs = result["runs"]
    if runs:
        result["median"] = {
            way: {k: statistics.median(r[way][k] for r in runs) for k in ("rows_per_s", "cpu_s_per_10k")}
            for way in WAYS
        }
        m = result["median"]
        result["speedup_rows_per_s"] = round(
            m["planned_literals"]["rows_per_s"] / m["pymysql_binding"]["rows_per_s"], 3
        )
        result["cpu_ratio"] = round(m["planned_literals"]["cpu_s_per_10k"] / m["pymysql_binding"]["cpu_s_per_10k"], 3)
    answers = [
        f"MariaDB writer alone: planned literals {result.get('speedup_rows_per_s')}x the rows/s of pymysql's binding, "
        f"{result.get('cpu_ratio')}x its CPU per row; tables equal: {result.get('tables_equal')}"
    ]
    return report.finish(args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=answers)


if __name__ == "__main__":
    sys.exit(main())
