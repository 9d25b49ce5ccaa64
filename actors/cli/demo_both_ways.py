"""`worker-sync demo --bidirectional`: `customers` kept equal on both nodes while both are written.

Each node's writer inserts rows of its own (disjoint key ranges), updates and deletes them, and also
updates 20 rows both nodes share, so the same row changes on both sides within milliseconds: those
conflicts are decided by last writer wins, live, and the summary counts them with the echoes of
Worker-Sync's own writes that were suppressed.
"""

from __future__ import annotations

import msgspec

from actors.cli.demo import LinkSummary, Summary
from actors.harness import Endpoint
from actors.harness.workload import DDL, MixedWorkload
from config.model import Link, TableMap

LINK = "demo-customers"
SHARED = range(1, 21)
_SEED_ROW = "INSERT INTO {table} (id, customer, qty, price, status, updated_at) VALUES (%s, %s, 1, 1.00, 'new', %s)"


def _table(endpoint: Endpoint) -> str:
    return "public.customers" if endpoint.engine == "postgresql" else f"{endpoint.database}.customers"


def prepare(config, pg: Endpoint, mariadb: Endpoint):
    """The table on both nodes with the same 20 shared rows, the version tables, and the config's one
    bidirectional link in place of the demo's one-way links."""
    from actors.engines.mariadb import versions as mariadb_versions
    from actors.engines.postgresql import versions as pg_versions

    for endpoint in (pg, mariadb):
        with endpoint.connect("admin") as conn:
            cursor = conn.cursor()
            cursor.execute(DDL[endpoint.engine].format(table=_table(endpoint)))
            for key in SHARED:
                cursor.execute(_SEED_ROW.format(table=_table(endpoint)), (key, f"shared-{key}", "2026-01-01 00:00:00"))
            if endpoint.engine == "postgresql":
                pg_versions.create(conn, pg.admin.user)
            else:
                mariadb_versions.create(conn, mariadb.database)
    link = Link(
        name=LINK,
        source="postgresql",
        target="mysql",
        bidirectional=True,
        tables=[TableMap(source=_table(pg), target=_table(mariadb))],
    )
    return msgspec.structs.replace(config, links=[link])


def loads(pg: Endpoint, mariadb: Endpoint, rate: float) -> dict[str, MixedWorkload]:
    return {
        f"{LINK}@postgresql": MixedWorkload(
            "postgresql",
            _table(pg),
            lambda: pg.connect("admin", autocommit=False),
            rate=rate,
            first_id=1_000,
            shared=SHARED,
        ),
        f"{LINK}@mysql": MixedWorkload(
            "mariadb",
            _table(mariadb),
            lambda: mariadb.connect("admin", autocommit=False),
            rate=rate,
            seed=11,
            first_id=1_000_000_000,
            shared=SHARED,
        ),
    }


def _counter(name: str) -> int:
    from actors.metrics import REGISTRY

    return int(sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == name))


def _own_changes_applied() -> int:
    """Changes the nodes' users made that were captured and offered everywhere: echoes left out, and the
    shared rows' initial snapshot on both nodes."""
    captured = _counter("worker_sync_events_captured_total") - 2 * len(SHARED)
    return captured - _counter("worker_sync_echoes_suppressed_total")


def caught_up(supervisor, loads: dict[str, MixedWorkload], pg: Endpoint, mariadb: Endpoint) -> bool:
    from actors.harness.compare import table_rows

    status = supervisor.status()
    if status is None or any(s.batches_in_flight for s in status.streams):
        return False
    if _own_changes_applied() < sum(load.changes for load in loads.values()):
        return False
    return table_rows(pg, _table(pg)) == table_rows(mariadb, _table(mariadb))


def summary(config, supervisor, loads, pg: Endpoint, mariadb: Endpoint, elapsed: float, rate: float) -> Summary:
    from actors.harness.compare import diff_tables

    differences = diff_tables(pg, _table(pg), mariadb, _table(mariadb))
    streams = supervisor.status().streams
    lag = {q: max(s.end_to_end_lag_ms[q] for s in streams) for q in streams[0].end_to_end_lag_ms}
    link = LinkSummary(
        link=LINK,
        source=f"postgresql:{_table(pg)}",
        target=f"mysql:{_table(mariadb)}",
        changes_written=sum(load.changes for load in loads.values()),
        changes_applied=_own_changes_applied(),
        end_to_end_lag_ms=lag,
        target_equals_source=not differences,
        differences=differences,
        both_ways=True,
        conflicts=_counter("worker_sync_conflicts_total"),
        echoes_suppressed=_counter("worker_sync_echoes_suppressed_total"),
    )
    return Summary(
        duration_s=round(elapsed, 1),
        rate_per_source=rate,
        links=[link],
        target_equals_source=link.target_equals_source,
        write_errors=[f"{name}: {load.error}" for name, load in loads.items() if load.error is not None],
    )
