"""The ceiling: the simplest single-process copy loops for the sync bench (no Ray, no audit, no conflicts).

- PostgreSQL -> MariaDB: poll ``pg_logical_slot_get_changes`` on a wal2json slot (format-version 2),
  decode with msgspec, write each polled batch to MariaDB as one multi-row ``DELETE`` and one multi-row
  ``INSERT ... ON DUPLICATE KEY UPDATE`` and commit.
- MariaDB -> PostgreSQL: a bare ``pymysqlreplication.BinLogStreamReader`` loop from a binlog file:pos,
  writing every ``BATCH_ROWS`` rows as one ``DELETE ... = ANY`` and one multi-row ``INSERT ... ON CONFLICT``
  and committing.

Both keep, per batch, only each key's last change (a batch is one target transaction, so that is the
same end state as applying every change in order, and a multi-row upsert may not touch a row twice on
PostgreSQL). Same drivers as Worker-Sync (psycopg 3, PyMySQL, mysql-replication), same least-privilege
accounts (capture reads, apply writes). They know the bench table's shape; that is all they know.
"""

from __future__ import annotations

import decimal
import time
from typing import Any

import msgspec

from actors.harness import Endpoint
from bench.sync_workload import COLUMNS, TIME_COLUMNS, mariadb_connect, qualified

BATCH_ROWS = 5_000
STATEMENT_ROWS = 1_000


class _Column(msgspec.Struct):
    name: str
    value: Any = None


class _Change(msgspec.Struct):
    action: str
    columns: list[_Column] = []
    identity: list[_Column] = []


_decode = msgspec.json.Decoder(_Change, float_hook=decimal.Decimal).decode


def _chunks(items: list[Any], size: int = STATEMENT_ROWS):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _timings(changes: int, started: float, first: float, first_changes: int, last: float) -> dict[str, float]:
    """``elapsed_s``: start to the last commit; ``steady_*``: from the first batch's commit to the last."""
    return {
        "changes": changes,
        "elapsed_s": last - started,
        "steady_changes": changes - first_changes,
        "steady_s": last - first,
    }


def pg_to_mariadb(
    pg: Endpoint, slot: str, table: str, mariadb: Endpoint, target_table: str, expected: int, timeout_s: float = 600
) -> dict[str, float]:
    """Drain ``expected`` changes of public.TABLE from ``slot`` into MariaDB TARGET_TABLE; timings in s."""
    target = qualified(mariadb, target_table)
    columns = ", ".join(COLUMNS)
    row_sql = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    upsert_tail = " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in COLUMNS if c != "id")
    time_index = [COLUMNS.index(c) for c in TIME_COLUMNS]
    reader = pg.connect("capture", autocommit=True)
    writer = mariadb_connect(mariadb, "apply")
    started = time.perf_counter()
    first_write = last_write = 0.0
    seen = first_changes = 0
    try:
        reader.execute("SET TIME ZONE 'UTC'")  # wal2json prints timestamptz in the session's zone
        deadline = time.monotonic() + timeout_s
        while seen < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"plain loop pg->mariadb: {seen} of {expected} changes after {timeout_s}s")
            rows = reader.execute(
                "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, %s, 'format-version', '2', "
                "'include-types', '0', 'add-tables', %s)",
                (slot, BATCH_ROWS, f"public.{table}"),
            ).fetchall()
            latest: dict[Any, Any] = {}
            for (data,) in rows:
                change = _decode(data)
                if change.action in ("I", "U"):
                    values = [c.value for c in change.columns]
                    for i in time_index:  # '2026-11-27 10:00:00.123456+00' -> MariaDB DATETIME text
                        values[i] = values[i][:-3] if values[i].endswith("+00") else values[i]
                    latest[values[0]] = values
                    seen += 1
                elif change.action == "D":
                    latest[change.identity[0].value] = None
                    seen += 1
            if not latest:
                time.sleep(0.005)
                continue
            deletes = [key for key, values in latest.items() if values is None]
            upserts = [values for values in latest.values() if values is not None]
            with writer.cursor() as cursor:
                for keys in _chunks(deletes):
                    cursor.execute(f"DELETE FROM {target} WHERE id IN ({', '.join(['%s'] * len(keys))})", keys)
                for chunk in _chunks(upserts):
                    cursor.execute(
                        f"INSERT INTO {target} ({columns}) VALUES {', '.join([row_sql] * len(chunk))}{upsert_tail}",
                        [v for values in chunk for v in values],
                    )
            writer.commit()
            last_write = time.perf_counter()
            if not first_write:
                first_write, first_changes = last_write, seen
    finally:
        reader.close()
        writer.close()
    return _timings(seen, started, first_write, first_changes, last_write)


def mariadb_to_pg(
    mariadb: Endpoint,
    log_file: str,
    log_pos: int,
    table: str,
    pg: Endpoint,
    target_table: str,
    expected: int,
    timeout_s: float = 600,
    *,
    freeze_schema: bool = False,
) -> dict[str, float]:
    """Drain ``expected`` changes of TABLE from the binlog at file:pos into PostgreSQL; timings in s.

    ``freeze_schema=True`` makes mysql-replication parse each table map once instead of once per
    statement (Worker-Sync's reader sets it); the bare loop leaves the default."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    target = qualified(pg, target_table)
    columns = ", ".join(COLUMNS)
    row_sql = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    upsert_tail = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
    writer = pg.connect("apply", autocommit=False)
    writer.execute("SET TIME ZONE 'UTC'")  # MariaDB DATETIME values are UTC wall times
    writer.commit()
    creds = mariadb.capture
    settings = {"host": mariadb.host, "port": mariadb.port, "user": creds.user, "passwd": creds.password}
    started = time.perf_counter()
    first_write = last_write = 0.0
    seen = first_changes = 0
    latest: dict[Any, Any] = {}
    pending = 0

    def flush() -> None:
        nonlocal first_write, first_changes, last_write, pending
        deletes = [key for key, values in latest.items() if values is None]
        upserts = [values for values in latest.values() if values is not None]
        if deletes:
            writer.execute(f"DELETE FROM {target} WHERE id = ANY(%s)", (deletes,))
        for chunk in _chunks(upserts):
            writer.execute(
                f"INSERT INTO {target} ({columns}) VALUES {', '.join([row_sql] * len(chunk))}{upsert_tail}",
                [v for values in chunk for v in values],
            )
        writer.commit()
        last_write = time.perf_counter()
        if not first_write:
            first_write, first_changes = last_write, seen
        latest.clear()
        pending = 0

    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"plain loop mariadb->pg: {seen} of {expected} changes after {timeout_s}s")
            reader = BinLogStreamReader(
                connection_settings=settings,
                server_id=4399,
                blocking=False,
                resume_stream=True,
                log_file=log_file,
                log_pos=log_pos,
                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
                only_schemas=[mariadb.database],
                only_tables=[table],
                freeze_schema=freeze_schema,
            )
            try:
                for event in reader:
                    for row in event.rows:
                        if isinstance(event, DeleteRowsEvent):
                            latest[row["values"]["id"]] = None
                        else:
                            values = row["after_values"] if isinstance(event, UpdateRowsEvent) else row["values"]
                            latest[values["id"]] = [values[c] for c in COLUMNS]
                        seen += 1
                        pending += 1
                    if pending >= BATCH_ROWS:
                        flush()
                    if seen >= expected:
                        break
                log_file, log_pos = reader.log_file, reader.log_pos
            finally:
                reader.close()
            if latest:
                flush()
            if seen < expected:
                time.sleep(0.05)
    finally:
        writer.close()
    return _timings(seen, started, first_write, first_changes, last_write)


def mariadb_to_pg_bare(
    mariadb: Endpoint,
    log_file: str,
    log_pos: int,
    table: str,
    pg: Endpoint,
    target_table: str,
    expected: int,
    timeout_s: float = 600,
) -> dict[str, float]:
    """MariaDB -> PostgreSQL as a user would write it well with mysql-replication (issue 19's yardstick).

    One blocking ``BinLogStreamReader`` from file:pos with ``freeze_schema=True`` (each table map parsed
    once) and ``only_events`` = the write/update/delete rows events of the one table; every ``BATCH_ROWS``
    changes, each key's last change per table is applied with psycopg's ``executemany`` (one ``DELETE ...
    WHERE id = %s`` and one ``INSERT ... ON CONFLICT (id) DO UPDATE``, pipelined by psycopg) and committed.
    It stops once ``expected`` changes are read (a real loop would run on and flush on idle)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    target = qualified(pg, target_table)
    upsert = (
        f"INSERT INTO {target} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
        "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
    )
    delete = f"DELETE FROM {target} WHERE id = %s"
    writer = pg.connect("apply", autocommit=False)
    writer.execute("SET TIME ZONE 'UTC'")  # MariaDB DATETIME values are UTC wall times
    writer.commit()
    creds = mariadb.capture
    reader = BinLogStreamReader(
        connection_settings={"host": mariadb.host, "port": mariadb.port, "user": creds.user, "passwd": creds.password},
        server_id=4398,
        blocking=True,
        resume_stream=True,
        log_file=log_file,
        log_pos=log_pos,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[mariadb.database],
        only_tables=[table],
        freeze_schema=True,
    )
    started = time.perf_counter()
    first_write = last_write = 0.0
    seen = first_changes = pending = 0
    latest: dict[Any, Any] = {}
    deadline = time.monotonic() + timeout_s
    try:
        for event in reader:
            if isinstance(event, DeleteRowsEvent):
                for row in event.rows:
                    latest[row["values"]["id"]] = None
            else:
                image = "after_values" if isinstance(event, UpdateRowsEvent) else "values"
                for row in event.rows:
                    values = row[image]
                    latest[values["id"]] = tuple(values[c] for c in COLUMNS)
            seen += len(event.rows)
            pending += len(event.rows)
            if pending >= BATCH_ROWS or seen >= expected:
                with writer.cursor() as cursor:
                    deletes = [(key,) for key, values in latest.items() if values is None]
                    upserts = [values for values in latest.values() if values is not None]
                    if deletes:
                        cursor.executemany(delete, deletes)
                    if upserts:
                        cursor.executemany(upsert, upserts)
                writer.commit()
                latest.clear()
                pending = 0
                last_write = time.perf_counter()
                if not first_write:
                    first_write, first_changes = last_write, seen
            if seen >= expected:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare loop mariadb->pg: {seen} of {expected} changes after {timeout_s}s")
    finally:
        reader.close()
        writer.close()
    return _timings(seen, started, first_write, first_changes, last_write)


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM), KiB."""
    for line in open("/proc/self/status"):  # noqa: SIM115 (a tiny /proc file, read once)
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_child(pipe: Any, loop: str, kwargs: dict[str, Any]) -> None:
    """Entry of a spawned process running one loop (``loop`` names a function of this module); sends back
    its timings, the wall time (time.time()) of its last commit and its peak RSS."""
    try:
        timings = globals()[loop](**kwargs)
        pipe.send(("ok", {**timings, "last_commit_at": time.time(), "peak_rss_kib": peak_rss_kib()}))
    except BaseException as exc:  # reported by the parent, which fails the run
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()
