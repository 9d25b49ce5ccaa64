"""`worker-sync demo`: the sync pipeline on throwaway local servers, under a live write load.

It starts a PostgreSQL and a MariaDB in a temporary directory, links `public.orders`
(PostgreSQL -> MariaDB) and `inventory` (MariaDB -> PostgreSQL), writes a mixed load on both
sources while Worker-Sync runs on a local Ray, shows progress every second, and ends with a
summary that says whether each target table equals its source, row by row. With
``--bidirectional`` it syncs one table, `customers`, both ways instead, with writers on both
nodes that also update the same rows, and the summary adds the conflicts decided and the echoes
suppressed. Everything it started is stopped at the end or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from actors.harness import Endpoint, HarnessError, local_servers
from actors.harness.secret_files import write_secret_file
from actors.harness.workload import MixedWorkload
from config.exit_codes import Exit

if TYPE_CHECKING:
    from config.model import Config
    from supervisor import Supervisor

CATCH_UP_S = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of write load (default 20)")
    parser.add_argument("--rate", type=float, default=1000.0, help="changes/s written on each source (default 1000)")
    parser.add_argument("--shards", type=int, default=2, help="applier shards (default 2)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON document on stdout")
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="sync `customers` both ways, written on both nodes at once (conflicts resolved live)",
    )


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
    #: Bidirectional links: conflict decisions and echoes suppressed during the run.
    both_ways: bool = False
    conflicts: int = 0
    echoes_suppressed: int = 0


class Summary(msgspec.Struct, kw_only=True):
    duration_s: float
    rate_per_source: float
    links: list[LinkSummary]
    target_equals_source: bool
    write_errors: list[str]


class _Scenario(Protocol):
    """What each scenario module (demo_one_way, demo_both_ways) provides."""

    def prepare(self, config: Config, pg: Endpoint, mariadb: Endpoint, /) -> Config: ...

    def loads(self, pg: Endpoint, mariadb: Endpoint, rate: float, /) -> dict[str, MixedWorkload]: ...

    def caught_up(
        self, supervisor: Supervisor, loads: dict[str, MixedWorkload], pg: Endpoint, mariadb: Endpoint, /
    ) -> bool: ...

    def summary(
        self,
        config: Config,
        supervisor: Supervisor,
        loads: dict[str, MixedWorkload],
        pg: Endpoint,
        mariadb: Endpoint,
        elapsed: float,
        rate: float,
        /,
    ) -> Summary: ...


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
    # demo.yaml configures both nodes.
    assert databases.postgresql is not None and databases.mysql is not None
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

    config = _config(tmp, pg, mariadb, args.shards)
    scenario: _Scenario
    if args.bidirectional:
        from actors.cli import demo_both_ways

        scenario = demo_both_ways
    else:
        from actors.cli import demo_one_way

        scenario = demo_one_way
    config = scenario.prepare(config, pg, mariadb)
    loads = scenario.loads(pg, mariadb, args.rate)
    say("starting Ray and the Worker-Sync actors ...")
    # address="local": always a Ray of its own, even when another cluster runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    supervisor = Supervisor(config)
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
        caught_up = partial(scenario.caught_up, supervisor, loads, pg, mariadb)
        _wait(caught_up, CATCH_UP_S, "the targets to catch up", fail=False)
        summary = scenario.summary(config, supervisor, loads, pg, mariadb, elapsed, args.rate)
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


def _print(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(summary).decode())
        return
    print(f"\nWorker-Sync demo: {summary.duration_s} s at ~{summary.rate_per_source:.0f} changes/s per source")
    for link in summary.links:
        lag = link.end_to_end_lag_ms
        verdict = "target equals source" if link.target_equals_source else "TARGET DIFFERS FROM SOURCE"
        arrow = "<->" if link.both_ways else "->"
        print(
            f"  {link.link}: {link.source} {arrow} {link.target}: {link.changes_applied:,} of "
            f"{link.changes_written:,} changes applied; end-to-end lag p50 {lag['p50']} ms, "
            f"p99 {lag['p99']} ms; {verdict}"
        )
        if link.both_ways:
            print(
                f"    {link.conflicts:,} conflict decisions (last writer wins), "
                f"{link.echoes_suppressed:,} echoes of our own writes suppressed"
            )
        for line in link.differences:
            print(f"    {line}")
    for error in summary.write_errors:
        print(f"  write load failed: {error}")
