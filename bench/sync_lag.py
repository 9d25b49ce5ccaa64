"""End-to-end lag and throughput per link, stepping the offered write rate up; and the ceiling beside it.

    python bench/sync_lag.py [--rates 500,1000,2000,...] [--step-s 20] [--links pg-to-mariadb,mariadb-to-pg]
                             [--shards 2] [--backlog 100000] [--repeat 1] [--quick] [--results-dir DIR]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness, in a temp dir) and a local Ray, then
for each link direction:

1. Lag steps. Worker-Sync runs (a Supervisor looping in a thread of this process, config built in code,
   least-privilege accounts, audit off, ``--shards`` applier shards) while a load generator (its own
   process) commits a 60/30/10 insert/update/delete mix on a 9-column orders table in transactions of
   1, 10 and 100 changes at a fixed offered rate, for ``--step-s`` seconds per rate. The rate steps up
   until p99 lag reaches 500 ms, a marker goes missing, or the writer cannot hold the rate (< 95 %);
   below ``--must-reach`` (2,000/s) it steps on after a failed step. Each step starts caught up.
   Lag is measured independently of Worker-Sync: a probe thread inserts a marker row into its own small
   table on the same link every 50-100 ms (client time when the autocommit returned) and polls the
   target every 5 ms; lag = first seen at the target - source commit, same machine, same clock. Per
   step: offered, achieved write and applied rates, marker lag p50/p95/p99/max, and Worker-Sync's own
   ``end_to_end_lag_ms`` from ``status()`` for comparison.
2. The ceiling, from a backlog. Worker-Sync is stopped (it commits what it applied), ``--backlog``
   changes of the same mix are written, then (a) the simplest single-process copy loop drains them
   (bench/sync_plain.py: wal2json SQL polling -> batched upserts/deletes into MariaDB, or a bare
   BinLogStreamReader loop -> batched upserts/deletes into PostgreSQL; for MariaDB also the same loop
   with mysql-replication's freeze_schema=True, which Worker-Sync's reader sets), each into its own
   copy of the target table; then (b) Worker-Sync is started again and drains the same backlog from
   its committed position. Worker-Sync's rate is reported as a fraction of the loop's.

Ray is always a fresh local instance (``ray.init(address="local", num_cpus=2, ...)``): plain
``ray.init()`` joins a cluster already running on the machine (found via /tmp/ray), and this bench
must not measure, or disturb, someone else's.

At the end of each link every target table (Worker-Sync's and the loop's) is compared with its source,
row by row (actors.harness.compare.diff_tables); the bench exits 1 if one differs or a marker never
arrived, 130 on Ctrl-C. JSON on stdout and in bench/results/sync_lag.json (with the machine and the
exact command), a plot in bench/results/sync_lag.png, progress on stderr. ``--quick``: one 3 s step at
300/s and a 2,000-change backlog per link (the smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import Endpoint, HarnessError, local_servers
from actors.harness.secret_files import write_secret_file
from bench import report
from bench.report import say
from bench.sync_workload import (
    MIX,
    ORDERS_DDL,
    PROBE_DDL,
    TXN_SIZES,
    TXN_WEIGHTS,
    LoadProcess,
    PacedRun,
    Probe,
    create_table,
    namespace,
    qualified,
)

NAME = "sync_lag"
LAG_BAR_MS = 500.0
HOLD_FRACTION = 0.95
#: Steps below this rate run even after one failed (the lag at a steady 2,000/s is a figure of its own).
MUST_REACH = 2000
DEFAULT_RATES = "500,1000,2000,3000,4000,5000,6000,8000,10000,12000"
#: Source and target node names (the config's `databases:` keys) and the table prefix of each link.
LINKS = {"pg-to-mariadb": ("postgresql", "mysql", "p2m"), "mariadb-to-pg": ("mysql", "postgresql", "m2p")}
NOTES = [
    "lag_ms is the marker probe's: first seen at the target (start of the 5 ms poll that returned the marker) "
    "minus the client time the source's autocommit INSERT returned; both on this machine's clock.",
    "supervisor_lag_ms is Worker-Sync's own end_to_end_lag_ms from Supervisor.status() at the end of the step: "
    "a sample of the last <= 4,096 applied events, from source commit time to the end of the apply call. "
    "MariaDB binlog commit times have 1 s resolution, so for the MariaDB source the supervisor measures from "
    "the time the capture read the event when that is less than 1 s after the truncated commit time (it misses "
    "the commit-to-read delay); supervisor_histogram is the same measure from the Prometheus histogram over "
    "the step (bucket-interpolated).",
    "slowest_markers_s_ms: the step's 10 slowest markers as [seconds into the step, lag ms].",
    "applied_per_s counts Worker-Sync's applied events in the step window minus the probe's markers.",
    "The load generator runs in its own process; Worker-Sync's supervisor loop and the probe share this one; "
    "PostgreSQL, MariaDB, Ray and all of it share the machine's cores.",
    "Backlog rates, the same way for both readers: steady = changes applied after the first applied batch / "
    "(last applied - first applied), i.e. without start-up; wall = all changes / (reader start -> last "
    "applied); Worker-Sync's wall time includes creating its Ray actors. Worker-Sync's applied count is "
    "polled from status() every 10 ms. When one batch covers the whole backlog (--quick) steady falls back to wall.",
    "machine_cpu_busy is the share of all cores busy during the step (/proc/stat), whoever used them: "
    "other processes on the machine count too (see load_average_1m).",
]


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def lag_summary(lags: list[float], missing: int = 0) -> dict[str, Any]:
    return {
        "markers": len(lags) + missing,
        "missing": missing,
        "p50": round(percentile(lags, 0.5), 1),
        "p95": round(percentile(lags, 0.95), 1),
        # A marker that never arrived has no finite lag: no p99/max then (and the step fails).
        "p99": round(percentile(lags, 0.99), 1) if lags and not missing else None,
        "max": round(max(lags), 1) if lags and not missing else None,
    }


class WarningLog(logging.Handler):
    """Keeps Worker-Sync's warnings and errors (supervisor, engines) for the result."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname} "
            f"{record.name}: {record.getMessage()}"[:600]
        )


# -- Worker-Sync ------------------------------------------------------------------------------------


def build_config(link: str, pg: Endpoint, mariadb: Endpoint, tables: list[str], shards: int, tmp: Path):
    """One link, least privilege: the source node logs in as `capture`, the target as `apply`."""
    from config import parse_config
    from config.model import Audit, Config, Databases, Http, Link, MySqlNode, PostgresNode, TableMap, Tls
    from config.model import Supervisor as SupervisorSettings

    source, target, prefix = LINKS[link]
    pg_user = pg.capture if source == "postgresql" else pg.apply
    mariadb_user = mariadb.capture if source == "mysql" else mariadb.apply
    endpoints = {"postgresql": pg, "mysql": mariadb}
    config = Config(
        databases=Databases(
            postgresql=PostgresNode(
                host=pg.host,
                port=pg.port,
                database=pg.database,
                username=pg_user.user,
                password_file=write_secret_file(tmp, f"{prefix}-pg-password", pg_user.password),
                tls=Tls(mode="disable"),
                slot_name=f"ws_{prefix}",
            ),
            mysql=MySqlNode(
                host=mariadb.host,
                port=mariadb.port,
                database=mariadb.database,
                username=mariadb_user.user,
                password_file=write_secret_file(tmp, f"{prefix}-mariadb-password", mariadb_user.password),
                tls=Tls(mode="disable"),
            ),
        ),
        links=[
            Link(
                name=f"bench-{prefix}",
                source=source,
                target=target,
                tables=[
                    TableMap(source=namespace(endpoints[source], t), target=namespace(endpoints[target], t))
                    for t in tables
                ],
            )
        ],
        audit=Audit(enabled=False),
        supervisor=SupervisorSettings(applier_shards=shards, state_dir=str(tmp / f"state-{prefix}")),
        http=Http(token_env=None),
    )
    import msgspec

    return parse_config(msgspec.yaml.encode(config), source=f"bench config {link}")  # the loader's checks too


class RunningSync:
    """A Supervisor looping in a thread of this process; stop() drains it (committing) and kills its actors."""

    def __init__(self, config: Any) -> None:
        from actors.preflight import check_routes
        from supervisor import Supervisor

        self.supervisor = Supervisor(config)
        for warning in check_routes(config, self.supervisor.routes):
            say(f"preflight warning: {warning}")
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self.supervisor.start()
        self.thread.start()

    def _loop(self) -> None:
        try:
            self.supervisor.run()
        except BaseException as exc:
            self.failure = exc
            say(f"the supervisor loop stopped: {type(exc).__name__}: {exc}")

    def stream(self) -> Any:
        status = self.supervisor.status()
        return None if status is None or not status.streams else status.streams[0]

    def applied(self) -> int:
        stream = self.stream()
        return 0 if stream is None else stream.applied_events

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.supervisor.ready():
            self._check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"Worker-Sync not ready after {timeout_s:.0f}s: {self.supervisor.status()}")
            time.sleep(0.05)

    def wait_applied(self, expected: int, timeout_s: float, poll_s: float = 0.01) -> dict[str, float]:
        """Wait until ``expected`` events are applied; when (time.time()) the first were seen applied, how
        many they were, and when all were."""
        first, first_count = 0.0, 0
        deadline = time.monotonic() + timeout_s
        while True:
            applied = self.applied()
            if applied and not first:
                first, first_count = time.time(), applied
            if applied >= expected:
                return {"first": first or time.time(), "first_count": first_count, "last": time.time()}
            self._check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"Worker-Sync applied {applied} of {expected} events in {timeout_s:.0f}s")
            time.sleep(poll_s)

    def _check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"the supervisor loop failed: {self.failure}")
        stream = self.stream()
        if stream is not None and stream.error:
            raise RuntimeError(f"the capture stream stopped: {stream.error}")

    def stop(self) -> None:
        import ray

        self.supervisor.stop_requested.set()
        self.thread.join(timeout=60)
        for actor in [s.actor for s in self.supervisor.streams.values()] + [s.actor for s in self.supervisor.shards]:
            with contextlib.suppress(Exception):
                ray.kill(actor)


def histogram_counts(stream: str) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of the supervisor's end-to-end lag histogram for ``stream``."""
    from actors.metrics import REGISTRY

    counts: dict[float, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "worker_sync_end_to_end_lag_seconds":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("stream") == stream:
                counts[float(sample.labels["le"])] = sample.value
    return counts


def histogram_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p99 (ms, linear within the bucket) and the share under 500 ms of the events observed in between."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0.0
    if total <= 0:
        return {"events": 0}

    def quantile(q: float) -> float | None:
        rank = q * total
        lower, below = 0.0, 0.0
        for bound, count in zip(bounds, delta, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return None
                share = (rank - below) / (count - below) if count > below else 1.0
                return round((lower + (bound - lower) * share) * 1000, 1)
            lower, below = bound, count
        return None

    under = next((c for b, c in zip(bounds, delta, strict=True) if b == 0.5), 0.0)
    return {
        "events": int(total),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "share_under_500ms": round(under / total, 4),
    }


# -- one link ---------------------------------------------------------------------------------------


class LinkBench:
    def __init__(self, link: str, pg: Endpoint, mariadb: Endpoint, args: argparse.Namespace, tmp: Path) -> None:
        self.link, self.args, self.tmp = link, args, tmp
        source, target, self.prefix = LINKS[link]
        endpoints = {"postgresql": pg, "mysql": mariadb}
        self.source, self.target = endpoints[source], endpoints[target]
        self.stream = source  # one capture stream per source node, named after it
        self.orders, self.probe_table = f"{self.prefix}_orders", f"{self.prefix}_probe"
        self.plain_table = f"{self.prefix}_orders_plain"
        self.result: dict[str, Any] = {
            "source": f"{self.source.engine}:{namespace(self.source, self.orders)}",
            "target": f"{self.target.engine}:{namespace(self.target, self.orders)}",
        }
        self.sync: RunningSync | None = None
        self.load: LoadProcess | None = None
        self.probe: Probe | None = None
        self.ok = True

    # The whole link; every exit path stops what it started.
    def run(self) -> dict[str, Any]:
        for table, ddl in ((self.orders, ORDERS_DDL), (self.probe_table, PROBE_DDL)):
            create_table(self.source, ddl, table)
            create_table(self.target, ddl, table)
        pg, mariadb = (self.source, self.target) if self.source.engine == "postgresql" else (self.target, self.source)
        self.config = build_config(self.link, pg, mariadb, [self.orders, self.probe_table], self.args.shards, self.tmp)
        self.load = LoadProcess(self.source, self.orders, seed=7)
        self.probe = Probe(self.source, self.target, self.probe_table)
        try:
            self._lag_steps()
            for attempt in range(self.args.repeat):
                self._backlog(attempt)
            self._compare()
        finally:
            self.probe.stop()
            if self.sync is not None:
                self.sync.stop()
                self.sync = None
            self.load.close()
            self._drop_slots()
        return self.result

    def _start_sync(self) -> RunningSync:
        say(f"{self.link}: starting Worker-Sync ({self.args.shards} applier shards) ...")
        self.sync = RunningSync(self.config)
        self.sync.wait_ready(180)
        return self.sync

    def _lag_steps(self) -> None:
        args, probe = self.args, self.probe
        sync = self._start_sync()
        probe.start()
        probe.resume_markers()
        idle_s = 2.0 if args.quick else 5.0
        idle_from = time.time()
        time.sleep(idle_s)
        self._wait_markers(idle_from, time.time(), 10)
        lags, missing = probe.lags_ms(idle_from, time.time())
        self.result["idle_lag_ms"] = lag_summary(lags, missing)
        say(
            f"{self.link}: idle (markers only): lag p50 {self.result['idle_lag_ms']['p50']} ms, "
            f"p99 {self.result['idle_lag_ms']['p99']} ms"
        )
        steps: list[dict[str, Any]] = []
        self.result["steps"] = steps
        stopped = "every listed rate passed"
        for rate in args.rates:
            step = self._step(sync, rate)
            steps.append(step)
            lag = step["lag_ms"]
            say(
                f"{self.link}: offered {rate:,}/s: wrote {step['achieved_write_per_s']:,.0f}/s, applied "
                f"{step['applied_per_s']:,.0f}/s; lag p50 {lag['p50']} p95 {lag['p95']} p99 {lag['p99']} "
                f"max {lag['max']} ms ({lag['markers']} markers, {lag['missing']} missing); Worker-Sync's own p50 "
                f"{step['supervisor_lag_ms'].get('p50')} p99 {step['supervisor_lag_ms'].get('p99')} ms"
            )
            reasons = []
            if not step["held"]:
                reasons.append(f"the writer could not hold {rate:,}/s (achieved {step['achieved_write_per_s']:,.0f}/s)")
            if lag["missing"]:
                reasons.append(f"{lag['missing']} markers had not arrived {step['marker_wait_s']} s after the step")
            elif lag["p99"] is None or not lag["p99"] < LAG_BAR_MS:
                reasons.append(f"p99 lag {lag['p99']} ms >= {LAG_BAR_MS:.0f} ms at {rate:,}/s")
            step["failed_because"] = reasons
            failure = "; ".join(reasons) or None
            # Each step starts from a caught-up pipeline, so that a slow step does not spill into the next.
            step["catch_up_s"] = self._catch_up(sync)
            if failure is not None and rate >= args.must_reach:
                stopped = failure
                break
            if failure is not None:
                say(f"{self.link}: step failed ({failure}); stepping on up to {args.must_reach:,}/s regardless")
        self.result["stopped_because"] = stopped
        # The answer: the highest rate at which, and below which, every step passed.
        held = None
        for step in steps:
            if not step["passed"]:
                break
            held = step["offered_per_s"]
        self.result["highest_rate_held_p99_under_500ms"] = held
        self.result["highest_passing_step"] = max((s["offered_per_s"] for s in steps if s["passed"]), default=None)
        self.result["failed_steps"] = [s["offered_per_s"] for s in steps if not s["passed"]]
        say(f"{self.link}: stepping stopped: {stopped}")
        probe.pause_markers()
        self.result["catch_up_after_steps_s"] = self._catch_up(sync)
        self._wait_markers(0, time.time(), 30)
        probe.pause_polling()
        unseen = probe.unseen()
        self.result["markers"] = {
            "written": probe.markers,
            "arrived": probe.markers - len(unseen),
            "all_arrived": not unseen,
            "probe_errors": probe.errors,
            "commit_round_trip_ms_median": round(statistics.median(probe.commit_round_trips_ms() or [0]), 2),
            "target_polls": probe.polls,
        }
        if unseen:
            self.ok = False
            say(f"{self.link}: {len(unseen)} markers never arrived, e.g. {unseen[:5]}")

    def _catch_up(self, sync: RunningSync, timeout_s: float = 600) -> float:
        """Wait until Worker-Sync has applied every change written so far (load and markers)."""
        started = time.monotonic()
        sync.wait_applied(self.load.total_changes + self.probe.markers, timeout_s=timeout_s)
        return round(time.monotonic() - started, 2)

    def _wait_markers(self, since: float, until: float, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.probe.lags_ms(since, until)[1]:
                break
            time.sleep(0.05)
        return round(time.monotonic() - started, 2)

    def _step(self, sync: RunningSync, rate: int) -> dict[str, Any]:
        stream = sync.stream()
        applied_before = stream.applied_events
        markers_before = self.probe.markers
        histogram_before = histogram_counts(self.stream)
        cpu_before = cpu_times()
        started = time.time()
        run: PacedRun = self.load.run_paced(rate, self.args.step_s)
        ended = time.time()
        cpu_busy = busy_share(cpu_before, cpu_times())
        stream = sync.stream()
        applied_after = stream.applied_events
        markers_in_step = self.probe.markers - markers_before
        histogram = histogram_summary(histogram_before, histogram_counts(self.stream))
        waited = self._wait_markers(started, ended, max(10.0, self.args.step_s))
        lags, missing = self.probe.lags_ms(started, ended)
        duration = ended - started
        achieved = run.changes / run.elapsed_s
        lag = lag_summary(lags, missing)
        held = achieved >= HOLD_FRACTION * rate
        return {
            "offered_per_s": rate,
            "achieved_write_per_s": round(achieved, 1),
            "applied_per_s": round((applied_after - applied_before - markers_in_step) / duration, 1),
            "lag_ms": lag,
            # Clustered offsets mean one stall; scattered ones, many small delays.
            "slowest_markers_s_ms": self.probe.slowest(started, ended),
            "held": held,
            "passed": held and lag["p99"] is not None and lag["p99"] < LAG_BAR_MS,
            "supervisor_lag_ms": dict(stream.end_to_end_lag_ms),
            "supervisor_histogram": histogram,
            "supervisor_queue_batches_at_end": stream.batches_in_flight,
            "write": {
                "changes": run.changes,
                "transactions": run.transactions,
                "by_op": run.by_op,
                "seconds": round(run.elapsed_s, 2),
                "max_behind_schedule_s": round(run.max_behind_s, 3),
            },
            "marker_wait_s": waited,
            "machine_cpu_busy": cpu_busy,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }

    # -- the ceiling ----------------------------------------------------------------------------

    def _variants(self) -> dict[str, dict[str, Any]]:
        """The plain loops drained per backlog: the bare one (the ceiling named in issue 8), and for MariaDB
        also one with mysql-replication's ``freeze_schema=True`` (as Worker-Sync's reader uses it)."""
        if self.source.engine == "postgresql":
            return {"plain_loop": {}}
        return {"plain_loop": {}, "plain_loop_freeze_schema": {"freeze_schema": True}}

    def _plain_table_of(self, variant: str) -> str:
        return {"plain_loop": self.plain_table, "plain_loop_freeze_schema": f"{self.plain_table}_frozen"}[variant]

    def _backlog(self, attempt: int) -> None:
        from bench import sync_plain

        args = self.args
        backlog = self.result.setdefault("backlog", {"changes": args.backlog, "runs": []})
        say(f"{self.link}: backlog #{attempt + 1}: stopping Worker-Sync (it commits what it applied) ...")
        self.sync.stop()
        self.sync = None
        variants = self._variants()
        for variant in variants:
            self._copy_target_for_plain_loop(self._plain_table_of(variant))
        slots = [f"{self._plain_slot}_{i}" for i in range(len(variants))]
        if self.source.engine == "postgresql":
            with self.source.connect("admin") as conn:
                for slot in slots:
                    conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        else:
            with self.source.connect("admin") as conn, conn.cursor() as cursor:
                cursor.execute("SHOW MASTER STATUS")
                log_file, log_pos = cursor.fetchone()[:2]
        say(f"{self.link}: writing {args.backlog:,} changes while nothing reads ...")
        written = self.load.write_backlog(args.backlog)
        say(f"{self.link}: written in {written.elapsed_s:.1f} s ({written.changes / written.elapsed_s:,.0f}/s)")
        run: dict[str, Any] = {"written_per_s": round(written.changes / written.elapsed_s)}
        for (variant, options), slot in zip(variants.items(), slots, strict=True):
            table = self._plain_table_of(variant)
            if self.source.engine == "postgresql":
                try:
                    plain = sync_plain.pg_to_mariadb(
                        self.source, slot, self.orders, self.target, table, written.changes, **options
                    )
                finally:
                    self._drop_slot(slot)
            else:
                plain = sync_plain.mariadb_to_pg(
                    self.source, log_file, int(log_pos), self.orders, self.target, table, written.changes, **options
                )
            wall = written.changes / plain["elapsed_s"]
            # One batch took it all (a small backlog): there is no steady part; the wall rate stands in.
            steady = plain["steady_changes"] / plain["steady_s"] if plain["steady_changes"] else wall
            say(f"{self.link}: {variant.replace('_', ' ')}: {steady:,.0f}/s steady, {wall:,.0f}/s wall")
            run[variant] = {
                "steady_per_s": round(steady),
                "wall_per_s": round(wall),
                "seconds": round(plain["elapsed_s"], 2),
                "first_batch_changes": written.changes - plain["steady_changes"],
            }
        started = time.time()
        sync = self._start_sync()
        done = sync.wait_applied(written.changes, timeout_s=900)
        ws_wall = written.changes / (done["last"] - started)
        ws_rest = written.changes - done["first_count"]
        ws_steady = ws_rest / (done["last"] - done["first"]) if ws_rest and done["last"] > done["first"] else ws_wall
        say(
            f"{self.link}: Worker-Sync: {ws_steady:,.0f}/s steady, {ws_wall:,.0f}/s wall "
            f"(start-up to the first apply {done['first'] - started:.1f} s)"
        )
        run["worker_sync"] = {
            "steady_per_s": round(ws_steady),
            "wall_per_s": round(ws_wall),
            "seconds": round(done["last"] - started, 2),
            "startup_to_first_apply_s": round(done["first"] - started, 2),
            "first_batch_changes": done["first_count"],
        }
        run["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        backlog["runs"].append(run)
        runs = backlog["runs"]
        for reader in (*variants, "worker_sync"):
            for kind in ("steady_per_s", "wall_per_s"):
                backlog[f"{reader}_{kind}_median"] = round(report.median([r[reader][kind] for r in runs]))
        for variant in variants:
            suffix = "" if variant == "plain_loop" else variant.removeprefix("plain_loop")
            for kind in ("steady", "wall"):
                ratio = backlog[f"worker_sync_{kind}_per_s_median"] / backlog[f"{variant}_{kind}_per_s_median"]
                backlog[f"ratio_{kind}{suffix}"] = round(ratio, 3)

    @property
    def _plain_slot(self) -> str:
        return f"plain_{self.prefix}"

    def _copy_target_for_plain_loop(self, table: str) -> None:
        """A loop writes into a copy of Worker-Sync's target as it stands (equal to the source then)."""
        target = self.target
        plain, orders = qualified(target, table), qualified(target, self.orders)
        with target.connect("admin") as conn:
            if target.engine == "postgresql":
                conn.execute(f"DROP TABLE IF EXISTS {plain}")
                conn.execute(f"CREATE TABLE {plain} (LIKE {orders} INCLUDING ALL)")
                conn.execute(f"INSERT INTO {plain} SELECT * FROM {orders}")
            else:
                with conn.cursor() as cursor:
                    cursor.execute(f"DROP TABLE IF EXISTS {plain}")
                    cursor.execute(f"CREATE TABLE {plain} LIKE {orders}")
                    cursor.execute(f"INSERT INTO {plain} SELECT * FROM {orders}")

    def _drop_slot(self, slot: str) -> None:
        if self.source.engine != "postgresql":
            return
        with contextlib.suppress(Exception), self.source.connect("admin") as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )

    def _drop_slots(self) -> None:
        """Slots left behind would hold WAL (and the other link writes to PostgreSQL)."""
        for slot in [f"{self._plain_slot}_{i}" for i in range(len(self._variants()))] + [f"ws_{self.prefix}"]:
            self._drop_slot(slot)

    # -- the end --------------------------------------------------------------------------------

    def _compare(self) -> None:
        from actors.harness.compare import diff_tables

        say(f"{self.link}: comparing targets with the source, row by row ...")
        source_ns = namespace(self.source, self.orders)
        differences = []
        for table in (self.orders, self.probe_table):
            found = diff_tables(self.source, namespace(self.source, table), self.target, namespace(self.target, table))
            differences += [f"{table}: {d}" for d in found]
        self.result["target_equals_source"] = not differences
        self.result["differences"] = differences
        if "backlog" in self.result:
            for variant in self._variants():
                table = namespace(self.target, self._plain_table_of(variant))
                plain_diff = diff_tables(self.source, source_ns, self.target, table)
                self.result[f"{variant}_target_equals_source"] = not plain_diff
                self.result[f"{variant}_differences"] = plain_diff
                if plain_diff:
                    self.ok = False
        if differences:
            self.ok = False
        verdict = f"{self.link}: Worker-Sync target {'equals' if not differences else 'DIFFERS FROM'} the source"
        if "backlog" in self.result:
            for variant in self._variants():
                plain_ok = self.result[f"{variant}_target_equals_source"]
                verdict += f"; {variant.replace('_', ' ')} target {'equals' if plain_ok else 'DIFFERS FROM'} it"
        say(verdict)


# -- output -----------------------------------------------------------------------------------------


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    plt = report.pyplot()
    if plt is None:
        return None
    links = result["links"]
    fig, (lag_ax, bar_ax) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2.4]})
    colors = {"pg-to-mariadb": "#4c72b0", "mariadb-to-pg": "#dd8452"}
    for link, data in links.items():
        steps = data.get("steps", [])
        rates = [s["offered_per_s"] for s in steps]
        for key, style in (("p50", "--"), ("p99", "-")):
            values = [s["lag_ms"][key] for s in steps]
            lag_ax.plot(rates, values, style, marker="o", color=colors.get(link), label=f"{link} {key}")
    lag_ax.axhline(LAG_BAR_MS, color="red", linewidth=0.8, linestyle=":", label="500 ms")
    lag_ax.set_xlabel("offered changes/s")
    lag_ax.set_ylabel("end-to-end lag, ms (marker probe)")
    lag_ax.set_yscale("log")
    lag_ax.set_title("Worker-Sync lag vs offered rate")
    lag_ax.legend(fontsize=8)
    labels, values, bar_colors = [], [], []
    for link, data in links.items():
        backlog = data.get("backlog")
        if not backlog or "plain_loop_steady_per_s_median" not in backlog:
            continue
        readers = [("plain_loop", "#999999"), ("plain_loop_freeze_schema", "#cccccc"), ("worker_sync", colors[link])]
        for reader, shade in readers:
            if f"{reader}_steady_per_s_median" not in backlog:
                continue
            names = {"plain_loop": "plain loop", "plain_loop_freeze_schema": "plain loop\n+freeze_schema"}
            labels.append(f"{link}\n{names.get(reader, 'Worker-Sync')}")
            values.append(backlog[f"{reader}_steady_per_s_median"])
            bar_colors.append(shade)
    if values:
        bars = bar_ax.bar(range(len(values)), values, color=bar_colors)
        bar_ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
        bar_ax.set_xticks(range(len(values)), labels, fontsize=7)
        changes = next(iter(links.values())).get("backlog", {}).get("changes", 0)
        bar_ax.set_title(f"Backlog drain ({changes:,} changes), steady changes/s")
    return report.save_plot(plt, fig, name)


def answer_line(link: str, data: dict[str, Any]) -> str:
    best = data.get("highest_rate_held_p99_under_500ms")
    text = f"{link}: highest offered rate held with p99 lag < 500 ms: " + (
        f"{best:,}/s" if best else "none of the steps"
    )
    failed = data.get("failed_steps") or []
    if data.get("highest_passing_step") and data["highest_passing_step"] != best:
        text += f" (a higher step, {data['highest_passing_step']:,}/s, passed too; failed steps: {failed})"
    text += f" (stepping stopped: {data.get('stopped_because', 'n/a')})"
    backlog = data.get("backlog")
    if backlog and "ratio_steady" in backlog:
        text += (
            f"; backlog drain: Worker-Sync {backlog['worker_sync_steady_per_s_median']:,}/s vs plain loop "
            f"{backlog['plain_loop_steady_per_s_median']:,}/s = {backlog['ratio_steady']:.2f}x"
        )
        if "ratio_steady_freeze_schema" in backlog:
            tuned = backlog["plain_loop_freeze_schema_steady_per_s_median"]
            text += f" (vs the loop with freeze_schema=True, {tuned:,}/s: {backlog['ratio_steady_freeze_schema']:.2f}x)"
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=DEFAULT_RATES, help=f"offered changes/s per step (default {DEFAULT_RATES})")
    parser.add_argument("--step-s", type=float, default=20.0, help="seconds per step (default 20)")
    parser.add_argument(
        "--must-reach",
        type=int,
        default=MUST_REACH,
        help=f"after a failed step, keep stepping until this rate is measured (default {MUST_REACH}: issue 4)",
    )
    parser.add_argument("--links", default=",".join(LINKS), help=f"comma list of {', '.join(LINKS)}")
    parser.add_argument("--shards", type=int, default=2, help="applier shards (default 2)")
    parser.add_argument("--backlog", type=int, default=100_000, help="changes in the backlog drain (default 100000)")
    parser.add_argument("--repeat", type=int, default=1, help="backlog drains per link; medians reported (default 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one 3 s step at 300/s, a 2,000-change backlog")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.step_s, args.backlog, args.repeat = "300", 3.0, 2_000, 1
    try:
        args.rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    except ValueError:
        parser.error("--rates takes a comma list of integers")
    args.links = [link.strip() for link in args.links.split(",") if link.strip()]
    unknown = set(args.links) - set(LINKS)
    if unknown:
        parser.error(f"unknown link(s): {', '.join(sorted(unknown))}; choose from {', '.join(LINKS)}")
    if not args.rates or min(args.rates) <= 0 or args.step_s <= 0 or args.shards < 1 or args.backlog < 1:
        parser.error("--rates, --step-s, --shards and --backlog must be positive")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    warnings = WarningLog()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("  [%(name)s] %(levelname)s %(message)s"))
    for name in ("worker_sync", "actors"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(warnings)
        logger.addHandler(stderr)
    result: dict[str, Any] = {"settings": settings(args), "notes": NOTES, "links": {}}
    ok, interrupted = True, False
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ws-sync-lag-") as tmp_name:
            tmp = Path(tmp_name)
            say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
            with local_servers(tmp / "servers") as (pg, mariadb):
                import ray

                say("starting a local Ray ...")
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                report.stop_on_signals()  # ray.init installed its own SIGTERM handler
                try:
                    for link in args.links:
                        bench = LinkBench(link, pg, mariadb, args, tmp)
                        result["links"][link] = bench.result
                        seen = len(warnings.records)
                        try:
                            bench.run()
                        except Exception as exc:
                            bench.ok = False
                            bench.result["error"] = f"{type(exc).__name__}: {exc}"
                            say(f"{link}: FAILED: {type(exc).__name__}: {exc}")
                        finally:
                            bench.result["worker_sync_warnings"] = warnings.records[seen:]
                        ok = ok and bench.ok
                    result["ray_worker_log_errors"] = ray_log_errors()
                finally:
                    ray.shutdown()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything this bench started has been stopped")
    except HarnessError as exc:
        ok = False
        result["error"] = f"cannot start the local servers: {exc}"
        say(result["error"])
    result["answer"] = {link: answer_line(link, data) for link, data in result["links"].items()}
    answers = list(result["answer"].values())
    return report.finish(args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=answers)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    from config.model import Supervisor as SupervisorSettings

    defaults = SupervisorSettings()
    return {
        "rates": args.rates,
        "step_s": args.step_s,
        "must_reach": args.must_reach,
        "links": args.links,
        "applier_shards": args.shards,
        "backlog_changes": args.backlog,
        "backlog_repeat": args.repeat,
        "quick": args.quick,
        "lag_bar_ms": LAG_BAR_MS,
        "held_if_achieved_at_least": HOLD_FRACTION,
        "workload": {
            "mix": MIX,
            "transaction_sizes": list(TXN_SIZES),
            "transaction_size_weights": list(TXN_WEIGHTS),
            "table": "9 columns: id bigint PK, customer_id int, sku varchar(32), qty int, price numeric(12,2), "
            "status varchar(16), note varchar(200), created_at/updated_at timestamptz (PostgreSQL) or "
            "datetime(6) (MariaDB)",
        },
        "probe": {"marker_every_s": [0.05, 0.1], "target_poll_s": 0.005},
        "worker_sync": {
            "batch_max_events": defaults.batch_max_events,
            "batch_max_wait_ms": defaults.batch_max_wait_ms,
            "queue_max_batches": defaults.queue_max_batches,
            "audit": False,
        },
    }


def ray_log_errors(limit: int = 20) -> dict[str, Any]:
    """Tracebacks and ERROR lines in this Ray session's worker logs (the actors log there, not to us)."""
    try:
        import ray._private.worker as ray_worker

        logs = Path(ray_worker._global_node.get_logs_dir_path())
    except Exception as exc:
        return {"unavailable": str(exc)}
    lines: list[str] = []
    count = 0
    for path in sorted(logs.glob("worker-*")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "Traceback" in line or " ERROR " in line or "Error:" in line:
                count += 1
                if len(lines) < limit:
                    lines.append(f"{path.name}: {line.strip()[:300]}")
    return {"directory": str(logs), "lines": count, "first": lines}


if __name__ == "__main__":
    sys.exit(main())
