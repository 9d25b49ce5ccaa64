"""`worker-sync demo`: the sync pipeline on throwaway local servers, under a live write load.

It starts a PostgreSQL and a MariaDB in a temporary directory, links `public.orders`
(PostgreSQL -> MariaDB) and `inventory` (MariaDB -> PostgreSQL), writes a mixed load on both
sources while Worker-Sync runs on a local Ray, shows progress every second, and ends with a
summary that says whether each target table equals its source, row by row. Everything it
started is stopped at the end or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from actors.cli.exit_codes import Exit
from actors.harness import Endpoint, HarnessError, local_servers
from actors.harness.secret_files import write_secret_file
from actors.harness.workload import DDL, MixedWorkload

CATCH_UP_S = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of write load (default 20)")
    parser.add_argument("--rate", type=float, default=1000.0, help="changes/s written on each source (default 1000)")
    parser.add_argument("--shards", type=int, default=2, help="applier shards (default 2)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON document on stdout")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LinkSummary(msgspec.Struct, kw_only=True):
    link: str
    source: str
    target: str
    changes_written: int
    changes_applied: int
    end_to_end_lag_ms: dict[str, float]
    target_equals_source: bool
    differences: list[str]


class Summary(msgspec.Struct, kw_only=True):
    duration_s: float
    rate_per_source: float
    links: list[LinkSummary]
    target_equals_source: bool
    write_errors: list[str]


def run(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.rate <= 0 or args.shards < 1:
        say("worker-sync demo: --duration and --rate must be positive and --shards at least 1")
        return Exit.USAGE
    with tempfile.TemporaryDirectory(prefix="worker-sync-demo-") as tmp:
        say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
        try:
            with local_servers(Path(tmp) / "servers") as (pg, mariadb):
                return _demo(args, Path(tmp), pg, mariadb)
        except HarnessError as exc:
            say(f"worker-sync demo: cannot start the local servers: {exc}")
            return Exit.UNAVAILABLE


def _config(tmp: Path, pg: Endpoint, mariadb: Endpoint, shards: int):
    from config import load_config

    # Each node both captures and applies here, so the demo logs in with the servers' admin
    # accounts; a real deployment gives each node a role with just capture and apply rights.
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "demo.yaml")
    databases = config.databases
    pg_node = msgspec.structs.replace(
        databases.postgresql,
        host=pg.host,
        port=pg.port,
        database=pg.database,
        username=pg.admin.user,
        password_env=None,
        password_file=write_secret_file(tmp, "pg-password", pg.admin.password),
    )
    mysql_node = msgspec.structs.replace(
        databases.mysql,
        host=mariadb.host,
        port=mariadb.port,
        database=mariadb.database,
        username=mariadb.admin.user,
        password_env=None,
        password_file=write_secret_file(tmp, "mariadb-password", mariadb.admin.password),
    )
    links = []
    for link in config.links:
        tables = [
            msgspec.structs.replace(
                t,
                source=t.source.replace("worker_sync_demo", mariadb.database),
                target=(t.target or t.source).replace("worker_sync_demo", mariadb.database),
            )
            for t in link.tables
        ]
        links.append(msgspec.structs.replace(link, tables=tables))
    return msgspec.structs.replace(
        config,
        databases=msgspec.structs.replace(databases, postgresql=pg_node, mysql=mysql_node),
        links=links,
        supervisor=msgspec.structs.replace(config.supervisor, applier_shards=shards, state_dir=str(tmp / "state")),
    )


def _demo(args: argparse.Namespace, tmp: Path, pg: Endpoint, mariadb: Endpoint) -> int:
    import ray

    from actors.http import StatusServer
    from supervisor import Supervisor

    for endpoint, engine in ((pg, "postgresql"), (mariadb, "mariadb")):
        for table in ("orders", "inventory"):
            name = f"public.{table}" if engine == "postgresql" else f"`{endpoint.database}`.{table}"
            with endpoint.connect("admin") as conn:
                conn.cursor().execute(DDL[engine].format(table=name))
    config = _config(tmp, pg, mariadb, args.shards)
    say("starting Ray and the Worker-Sync actors ...")
    # address="local": always a Ray of its own, even when another cluster runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    supervisor = Supervisor(config)
    loads = {
        "demo-orders": MixedWorkload(
            "postgresql", "public.orders", lambda: pg.connect("admin", autocommit=False), rate=args.rate
        ),
        "demo-inventory": MixedWorkload(
            "mariadb",
            f"`{mariadb.database}`.inventory",
            lambda: mariadb.connect("admin", autocommit=False),
            rate=args.rate,
            seed=11,
        ),
    }
    loop = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
    server = None
    interrupted = False
    try:
        supervisor.start()
        server = StatusServer(
            "127.0.0.1", 0, status=supervisor.status, healthy=supervisor.healthy, ready=supervisor.ready, token=None
        )
        server.start()
        loop.start()
        say(f"status: http://127.0.0.1:{server.port}/status  metrics: http://127.0.0.1:{server.port}/metrics")
        _wait(lambda: supervisor.ready(), 120, "the initial snapshots")
        for load in loads.values():
            load.start()
        say(f"writing ~{args.rate:.0f} changes/s on each source for {args.duration:.0f} s (Ctrl-C stops early)")
        started = time.monotonic()
        try:
            _watch(supervisor, loads, until=started + args.duration)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted: stopping the load and letting Worker-Sync catch up ...")
        for load in loads.values():
            load.stop()
        elapsed = time.monotonic() - started
        say("load stopped; waiting for every change to be applied ...")
        _wait(lambda: _caught_up(supervisor, loads), CATCH_UP_S, "the targets to catch up", fail=False)
        summary = _summary(config, supervisor, loads, pg, mariadb, elapsed, args.rate)
    finally:
        supervisor.stop_requested.set()
        if loop.is_alive():
            loop.join(timeout=60)
        if server is not None:
            server.stop()
        ray.shutdown()
    _print(summary, as_json=args.json)
    if interrupted:
        return 130
    return Exit.OK if summary.target_equals_source and not summary.write_errors else Exit.FINDINGS


def _wait(check, timeout_s: float, what: str, *, fail: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            if fail:
                raise SystemExit(f"worker-sync demo: timed out after {timeout_s:.0f}s waiting for {what}")
            say(f"still not done after {timeout_s:.0f}s waiting for {what}")
            return
        time.sleep(0.1)


def _stream_of(link: str) -> str:
    return "postgresql" if link == "demo-orders" else "mysql"


def _caught_up(supervisor, loads: dict[str, MixedWorkload]) -> bool:
    status = supervisor.status()
    if status is None:
        return False
    applied = {s.stream: s.applied_events for s in status.streams}
    return all(applied.get(_stream_of(link), 0) >= load.changes for link, load in loads.items())


def _watch(supervisor, loads: dict[str, MixedWorkload], *, until: float) -> None:
    previous: dict[str, int] = {}
    while time.monotonic() < until:
        time.sleep(1)
        for link, load in loads.items():
            if load.error is not None:
                raise SystemExit(f"worker-sync demo: the write load of `{link}` failed: {load.error}")
        status = supervisor.status()
        if status is None:
            continue
        parts = []
        for stream in status.streams:
            rate = stream.applied_events - previous.get(stream.stream, 0)
            previous[stream.stream] = stream.applied_events
            lag = stream.end_to_end_lag_ms
            parts.append(
                f"{stream.stream}: applied {stream.applied_events:,} ({rate:,}/s), "
                f"lag p50 {lag['p50']:.0f} ms p99 {lag['p99']:.0f} ms"
            )
        say("  " + " | ".join(parts))


def _summary(config, supervisor, loads, pg: Endpoint, mariadb: Endpoint, elapsed: float, rate: float) -> Summary:
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


def _print(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(summary).decode())
        return
    print(f"\nWorker-Sync demo: {summary.duration_s} s at ~{summary.rate_per_source:.0f} changes/s per source")
    for link in summary.links:
        lag = link.end_to_end_lag_ms
        verdict = "target equals source" if link.target_equals_source else "TARGET DIFFERS FROM SOURCE"
        print(
            f"  {link.link}: {link.source} -> {link.target}: {link.changes_applied:,} of "
            f"{link.changes_written:,} changes applied; end-to-end lag p50 {lag['p50']} ms, "
            f"p99 {lag['p99']} ms; {verdict}"
        )
        for line in link.differences:
            print(f"    {line}")
    for error in summary.write_errors:
        print(f"  write load failed: {error}")
