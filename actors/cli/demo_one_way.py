"""The default `worker-sync demo` scenario: `orders` PostgreSQL -> MariaDB, `inventory` MariaDB -> PostgreSQL."""

from __future__ import annotations

from actors.cli.demo import LinkSummary, Summary
from actors.harness import Endpoint
from actors.harness.workload import DDL, MixedWorkload


def prepare(config, pg: Endpoint, mariadb: Endpoint):
    """Create the two tables on both servers; the config is used as it is."""
    for endpoint, engine in ((pg, "postgresql"), (mariadb, "mariadb")):
        for table in ("orders", "inventory"):
            name = f"public.{table}" if engine == "postgresql" else f"`{endpoint.database}`.{table}"
            with endpoint.connect("admin") as conn:
                conn.cursor().execute(DDL[engine].format(table=name))
    return config


def loads(pg: Endpoint, mariadb: Endpoint, rate: float) -> dict[str, MixedWorkload]:
    return {
        "demo-orders": MixedWorkload(
            "postgresql", "public.orders", lambda: pg.connect("admin", autocommit=False), rate=rate
        ),
        "demo-inventory": MixedWorkload(
            "mariadb",
            f"`{mariadb.database}`.inventory",
            lambda: mariadb.connect("admin", autocommit=False),
            rate=rate,
            seed=11,
        ),
    }


def caught_up(supervisor, loads: dict[str, MixedWorkload], _pg: Endpoint, _mariadb: Endpoint) -> bool:
    status = supervisor.status()
    if status is None:
        return False
    applied = {s.stream: s.applied_events for s in status.streams}
    return all(applied.get(_stream_of(link), 0) >= load.changes for link, load in loads.items())


def _stream_of(link: str) -> str:
    return "postgresql" if link == "demo-orders" else "mysql"


def summary(config, supervisor, loads, pg: Endpoint, mariadb: Endpoint, elapsed: float, rate: float) -> Summary:
    from actors.harness.compare import diff_tables

    endpoints = {"postgresql": pg, "mysql": mariadb}
    status = supervisor.status()
    by_stream = {s.stream: s for s in status.streams}
    links = []
    for link in config.links:
        table = link.tables[0]
        differences = diff_tables(
            endpoints[link.source], table.source, endpoints[link.target], table.target or table.source
        )
        stream = by_stream[link.source]
        links.append(
            LinkSummary(
                link=link.name,
                source=f"{link.source}:{table.source}",
                target=f"{link.target}:{table.target or table.source}",
                changes_written=loads[link.name].changes,
                changes_applied=stream.applied_events,
                end_to_end_lag_ms=stream.end_to_end_lag_ms,
                target_equals_source=not differences,
                differences=differences,
            )
        )
    return Summary(
        duration_s=round(elapsed, 1),
        rate_per_source=rate,
        links=links,
        target_equals_source=all(link.target_equals_source for link in links),
        write_errors=[f"{name}: {load.error}" for name, load in loads.items() if load.error is not None],
    )
