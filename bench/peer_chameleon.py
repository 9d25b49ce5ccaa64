"""MariaDB -> PostgreSQL: Worker-Sync beside pg_chameleon, the same changes, the same servers, the same run.

    python bench/peer_chameleon.py [--changes 100000] [--repeat 3] [--rate 2000] [--rate-s 20] [--shards 2]
                                   [--quick] [--results-dir DIR]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness, in a temp dir) and a local Ray, installs
pg_chameleon (PyPI pg-chameleon, bench/chameleon_tool.py) into a venv of its own in the same temp dir, and
points both tools at one MariaDB table (the sync bench's 9-column orders table): Worker-Sync into
``public.peer_orders``, pg_chameleon into its own schema ``chameleon_dst.peer_orders`` of the same
PostgreSQL. Both start caught up on an empty table (pg_chameleon's init_replica, Worker-Sync started once
and stopped, so it has a committed position). Then:

1. Backlog, ``--repeat`` times: with both tools stopped, the load generator (its own process) commits
   ``--changes`` changes (60/30/10 insert/update/delete, transactions of 1, 10 and 100 changes); then each
   tool alone is started and timed until its target equals the source (the order alternates per repeat).
   "Equal" is polled the same way for both, every 0.25 s: count, sum(id), sum(qty), sum(price) and
   sum(length(note)) of the target against the source's. Per tool: wall = changes / (start command ->
   equal), steady = changes / (first change visible at the target -> equal). Medians and ratios.
2. Fixed offered rate (skipped with ``--rate 0``): both tools run at once while the load commits
   ``--rate`` changes/s for ``--rate-s`` seconds; per tool, the time from the last source commit until
   its target equals the source, and the applied rate = changes / (first commit -> equal).

At the end both targets are compared with the source row by row (actors.harness.compare.diff_tables).
pg_chameleon runs with the defaults of its config-example.yml (batch 10,000 rows, sleep_loop 1 s); as
root it runs as the ``nobody`` account (it refuses root). If it cannot be installed or run, the result
records the command and its error under ``chameleon.error`` and the bench exits 1 after measuring
Worker-Sync alone. Exit codes: 0 ok, 1 a target differs or pg_chameleon could not run, 2 bad usage,
3 the servers cannot start, 130 Ctrl-C. JSON on stdout and in bench/results/peer_chameleon.json, a plot
in bench/results/peer_chameleon.png, progress on stderr. ``--quick``: 2,000 changes, one repeat, 3 s at
300/s (the smoke test).
"""

from __future__ import annotations

import argparse
import decimal
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import Endpoint, HarnessError, local_servers
from bench import report
from bench.chameleon_tool import SETTINGS as CHAMELEON_SETTINGS
from bench.chameleon_tool import Chameleon, ChameleonError
from bench.report import say
from bench.sync_workload import MIX, ORDERS_DDL, TXN_SIZES, TXN_WEIGHTS, LoadProcess, create_table, qualified

NAME = "peer_chameleon"
TABLE = "peer_orders"
CHAMELEON_SCHEMA = "chameleon_dst"
POLL_S = 0.25
FINGERPRINT = (
    "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(qty), 0), coalesce(sum(price), 0), "
    "coalesce(sum(length(note)), 0) FROM {table}"
)


def fingerprint(endpoint: Endpoint, table: str) -> tuple[int, ...]:
    """Cheap whole-table summary; equal summaries are confirmed row by row at the end."""
    sql = FINGERPRINT.format(table=table)
    with endpoint.connect("admin") as conn:
        if endpoint.engine == "postgresql":
            row = conn.execute(sql).fetchone()
        else:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                row = cursor.fetchone()
    return tuple(int(decimal.Decimal(v) * 100) for v in row)


class Target:
    """One tool's copy of the table: how to start and stop the tool, and where its rows land."""

    def __init__(self, name: str, pg: Endpoint, table: str, start: Any, stop: Any, check: Any) -> None:
        self.name, self.pg, self.table = name, pg, table
        self.start, self.stop, self.check = start, stop, check

    def wait_equal(self, want: tuple[int, ...], since: float, timeout_s: float) -> dict[str, float]:
        """Poll until the fingerprint equals ``want``: when (time.time()) the first change showed and when equal."""
        initial = fingerprint(self.pg, self.table)
        first = 0.0
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.time()
            current = fingerprint(self.pg, self.table)
            if current != initial and not first:
                first = now
            if current == want:
                return {"first": first or now, "equal": now, "since": since}
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: target not equal to the source {timeout_s:.0f}s after the start")
            time.sleep(POLL_S)


class PeerBench:
    def __init__(self, pg: Endpoint, mariadb: Endpoint, args: argparse.Namespace, tmp: Path) -> None:
        self.pg, self.mariadb, self.args, self.tmp = pg, mariadb, args, tmp
        self.source_table = qualified(mariadb, TABLE)
        self.result: dict[str, Any] = {
            "source": f"mariadb:{mariadb.database}.{TABLE}",
            "targets": {
                "worker_sync": f"postgresql:public.{TABLE}",
                "chameleon": f"postgresql:{CHAMELEON_SCHEMA}.{TABLE}",
            },
        }
        self.chameleon = Chameleon(tmp / "chameleon")
        self.chameleon_ok = False
        self.sync: Any = None
        self.ok = True

    # -- the tools -------------------------------------------------------------------------------

    def _start_sync(self) -> None:
        from bench.sync_lag import RunningSync

        self.sync = RunningSync(self.config)
        self.sync.wait_ready(180)

    def _stop_sync(self) -> None:
        if self.sync is not None:
            self.sync.stop()
            self.sync = None

    def _check_sync(self) -> None:
        if self.sync is not None:
            self.sync._check()

    def targets(self) -> dict[str, Target]:
        chosen = {
            "worker_sync": Target(
                "worker_sync", self.pg, f"public.{TABLE}", self._start_sync, self._stop_sync, self._check_sync
            )
        }
        if self.chameleon_ok:
            chosen["chameleon"] = Target(
                "chameleon",
                self.pg,
                f"{CHAMELEON_SCHEMA}.{TABLE}",
                self.chameleon.start,
                self.chameleon.stop,
                self.chameleon.check_running,
            )
        return chosen

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        from bench.sync_lag import build_config

        create_table(self.mariadb, ORDERS_DDL, TABLE)
        create_table(self.pg, ORDERS_DDL, TABLE)
        self.config = build_config("mariadb-to-pg", self.pg, self.mariadb, [TABLE], self.args.shards, self.tmp)
        self._prepare_chameleon()
        say("starting Worker-Sync once, so that it has a committed position ...")
        self._start_sync()
        self._stop_sync()
        self.load = LoadProcess(self.mariadb, TABLE, seed=11)
        try:
            for attempt in range(self.args.repeat):
                self._backlog(attempt)
            if self.args.rate > 0:
                self._paced()
        finally:
            for target in self.targets().values():
                target.stop()
            self.load.close()
        self._compare()

    def _prepare_chameleon(self) -> None:
        chameleon = self.chameleon
        info: dict[str, Any] = {"package": "pg-chameleon", "settings": CHAMELEON_SETTINGS}
        self.result["chameleon"] = info
        try:
            say("installing pg_chameleon into its own venv ...")
            info["version"] = chameleon.install()
            info["dependencies"] = chameleon.dependency_versions()
            chameleon.configure(self.mariadb, self.pg, target_schema=CHAMELEON_SCHEMA, tables=[TABLE])
            say(f"pg_chameleon {info['version']}: create_replica_schema, add_source, init_replica ...")
            chameleon.prepare()
            self.chameleon_ok = True
        except ChameleonError as exc:
            info["error"] = {"why": str(exc)[:1500], **exc.step}
            self.ok = False
            say(f"pg_chameleon cannot run here: {exc}")
        finally:
            info["commands"] = chameleon.log

    def _backlog(self, attempt: int) -> None:
        args = self.args
        backlog = self.result.setdefault("backlog", {"changes": args.changes, "runs": []})
        say(f"backlog #{attempt + 1}: writing {args.changes:,} changes while no tool runs ...")
        written = self.load.write_backlog(args.changes)
        want = fingerprint(self.mariadb, self.source_table)
        run: dict[str, Any] = {"written_per_s": round(written.changes / written.elapsed_s), "by_op": written.by_op}
        order = list(self.targets().items())
        if attempt % 2:
            order.reverse()
        for name, target in order:
            started = time.time()
            target.start()
            times = target.wait_equal(want, started, timeout_s=900)
            target.stop()
            wall = written.changes / (times["equal"] - started)
            steady_s = times["equal"] - times["first"]
            steady = written.changes / steady_s if steady_s > 0 else wall
            run[name] = {
                "wall_per_s": round(wall),
                "steady_per_s": round(steady),
                "seconds_to_equal": round(times["equal"] - started, 2),
                "start_to_first_change_s": round(times["first"] - started, 2),
            }
            say(
                f"backlog #{attempt + 1}: {name}: equal after {times['equal'] - started:.1f} s ({wall:,.0f}/s wall, "
                f"{steady:,.0f}/s from its first change)"
            )
        run["order"] = [name for name, _ in order]
        backlog["runs"].append(run)
        names = [name for name, _ in order]
        for name in names:
            for kind in ("wall_per_s", "steady_per_s", "seconds_to_equal"):
                backlog[f"{name}_{kind}_median"] = report.median([r[name][kind] for r in backlog["runs"]])
        if "chameleon" in names:
            for kind in ("wall", "steady"):
                ratio = backlog[f"worker_sync_{kind}_per_s_median"] / backlog[f"chameleon_{kind}_per_s_median"]
                backlog[f"ratio_{kind}"] = round(ratio, 3)

    def _paced(self) -> None:
        args = self.args
        say(f"fixed rate: starting both tools, then {args.rate:,}/s for {args.rate_s:.0f} s ...")
        targets = self.targets()
        for target in targets.values():
            target.start()
        want = fingerprint(self.mariadb, self.source_table)
        for target in targets.values():  # both caught up before the clock starts
            target.wait_equal(want, time.time(), timeout_s=300)
        run = self.load.run_paced(args.rate, args.rate_s)
        ended = time.time()
        want = fingerprint(self.mariadb, self.source_table)
        paced: dict[str, Any] = {
            "offered_per_s": args.rate,
            "seconds": args.rate_s,
            "achieved_write_per_s": round(run.changes / run.elapsed_s, 1),
            "changes": run.changes,
        }
        for name, target in targets.items():
            times = target.wait_equal(want, ended, timeout_s=600)
            paced[name] = {
                "seconds_to_equal_after_last_commit": round(times["equal"] - ended, 2),
                "applied_per_s": round(run.changes / (times["equal"] - run.started_at), 1),
            }
            say(f"fixed rate: {name}: equal {times['equal'] - ended:.2f} s after the last commit")
        self.result["fixed_rate"] = paced

    def _compare(self) -> None:
        from actors.harness.compare import diff_tables

        say("comparing both targets with the source, row by row ...")
        source_ns = f"{self.mariadb.database}.{TABLE}"
        for name, target in self.targets().items():
            found = diff_tables(self.mariadb, source_ns, self.pg, target.table)
            self.result[f"{name}_target_equals_source"] = not found
            self.result[f"{name}_differences"] = found
            if found:
                self.ok = False
            say(f"{name}: target {'equals' if not found else 'DIFFERS FROM'} the source")


def answer(result: dict[str, Any]) -> str:
    """The headline: start to equal (wall), which is what a user waits for; steady in brackets."""
    backlog = result.get("backlog", {})
    ws = backlog.get("worker_sync_wall_per_s_median", 0)
    text = f"backlog of {backlog.get('changes', 0):,} changes, start to target equal (median): Worker-Sync {ws:,.0f}/s"
    if "ratio_wall" in backlog:
        text += (
            f" vs pg_chameleon {backlog['chameleon_wall_per_s_median']:,.0f}/s = {backlog['ratio_wall']:.2f}x "
            f"({backlog['worker_sync_seconds_to_equal_median']:.1f} s vs "
            f"{backlog['chameleon_seconds_to_equal_median']:.1f} s; from each one's first visible change: "
            f"{backlog['worker_sync_steady_per_s_median']:,.0f}/s vs {backlog['chameleon_steady_per_s_median']:,.0f}/s)"
        )
    else:
        text += f"; pg_chameleon did not run: {result.get('chameleon', {}).get('error', {}).get('why', 'n/a')}"
    paced = result.get("fixed_rate")
    if paced and "chameleon" in paced:
        text += (
            f"; at {paced['offered_per_s']:,}/s equal {paced['worker_sync']['seconds_to_equal_after_last_commit']} s "
            f"(Worker-Sync) vs {paced['chameleon']['seconds_to_equal_after_last_commit']} s (pg_chameleon) after the "
            "last commit"
        )
    return text


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    plt = report.pyplot()
    if plt is None:
        return None
    backlog = result.get("backlog", {})
    tools = [t for t in ("worker_sync", "chameleon") if f"{t}_steady_per_s_median" in backlog]
    labels = {"worker_sync": "Worker-Sync", "chameleon": "pg_chameleon"}
    colors = {"worker_sync": "#4c72b0", "chameleon": "#dd8452"}
    fig, (rate_ax, time_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, kind in enumerate(("wall", "steady")):
        values = [backlog[f"{t}_{kind}_per_s_median"] for t in tools]
        bars = rate_ax.bar(
            [x * 3 + i for x in range(len(tools))],
            values,
            color=[colors[t] for t in tools],
            alpha=1.0 if kind == "wall" else 0.45,
        )
        caption = {"wall": "start to equal", "steady": "first change to equal"}[kind]
        rate_ax.bar_label(bars, labels=[f"{caption}\n{v:,.0f}" for v in values], fontsize=8)
    rate_ax.set_xticks([x * 3 + 0.5 for x in range(len(tools))], [labels[t] for t in tools])
    rate_ax.set_ylabel("changes/s (median)")
    rate_ax.set_title(f"MariaDB -> PostgreSQL backlog of {backlog.get('changes', 0):,} changes")
    rows = [("backlog: start to equal", [backlog.get(f"{t}_seconds_to_equal_median", 0) for t in tools])]
    paced = result.get("fixed_rate")
    if paced:
        rows.append(
            (
                f"{paced['offered_per_s']:,}/s: last commit to equal",
                [paced.get(t, {}).get("seconds_to_equal_after_last_commit", 0) for t in tools],
            )
        )
    for r, (_label, values) in enumerate(rows):
        for i, (tool, value) in enumerate(zip(tools, values, strict=True)):
            bar = time_ax.barh(r * 3 + i, value, color=colors[tool], label=labels[tool] if r == 0 else None)
            time_ax.bar_label(bar, labels=[f"{value:.1f} s"], padding=3, fontsize=8)
    time_ax.set_yticks([r * 3 + 0.5 for r in range(len(rows))], [label for label, _ in rows])
    time_ax.invert_yaxis()
    time_ax.set_xlabel("seconds (median)")
    time_ax.set_title("Time until the target equals the source")
    time_ax.legend(fontsize=8)
    return report.save_plot(plt, fig, name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=100_000, help="changes per backlog (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="backlogs; medians reported (default 3)")
    parser.add_argument("--rate", type=int, default=2000, help="fixed offered changes/s, 0 to skip (default 2000)")
    parser.add_argument("--rate-s", type=float, default=20.0, help="seconds at the fixed rate (default 20)")
    parser.add_argument("--shards", type=int, default=2, help="Worker-Sync applier shards (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 changes, one repeat, 3 s at 300/s")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.changes, args.repeat, args.rate, args.rate_s = 2_000, 1, 300, 3.0
    if args.changes < 1 or args.repeat < 1 or args.rate < 0 or args.rate_s <= 0 or args.shards < 1:
        parser.error("--changes, --repeat, --rate-s and --shards must be positive (--rate may be 0)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    result: dict[str, Any] = {
        "settings": {
            "changes": args.changes,
            "repeat": args.repeat,
            "fixed_rate_per_s": args.rate,
            "fixed_rate_s": args.rate_s,
            "worker_sync_applier_shards": args.shards,
            "worker_sync_audit": False,
            "equal_poll_s": POLL_S,
            "workload": {
                "mix": MIX,
                "transaction_sizes": list(TXN_SIZES),
                "transaction_size_weights": list(TXN_WEIGHTS),
            },
        },
        "notes": [
            "steady = changes / (first change visible at the target -> target equals source); wall = changes / "
            "(tool start command -> equal), so wall includes Worker-Sync's Ray actor start-up and pg_chameleon's "
            "process start; both are detected by the same 0.25 s fingerprint poll.",
            "pg_chameleon stores the binlog rows in its own log tables in PostgreSQL and replays them with a "
            "PL/pgSQL function, reading and replaying up to 10,000 rows per loop and sleeping sleep_loop (1 s) "
            "between loops (its defaults).",
            "Figures from a shared 2-core machine: noisy; compare the ratios of the same run.",
        ],
    }
    ok, interrupted = False, False
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ws-peer-") as tmp_name:
            tmp = Path(tmp_name)
            os.chmod(tmp, 0o711)  # pg_chameleon runs as another account when we are root: it must reach its dir
            say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
            with local_servers(tmp / "servers") as (pg, mariadb):
                import ray

                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                report.stop_on_signals()  # ray.init installed its own SIGTERM handler
                try:
                    bench = PeerBench(pg, mariadb, args, tmp)
                    result.update(bench.result)
                    bench.result = result
                    try:
                        bench.run()
                        ok = bench.ok
                    except ChameleonError as exc:
                        result.setdefault("chameleon", {})["error"] = {"why": str(exc)[:1500], **exc.step}
                        say(f"pg_chameleon failed: {exc}")
                    except Exception as exc:
                        result["error"] = f"{type(exc).__name__}: {exc}"
                        say(f"FAILED: {result['error']}")
                    if "chameleon" in result:
                        result["chameleon"]["replica_log_tail"] = bench.chameleon.replica_log_tail(1500)
                finally:
                    ray.shutdown()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything this bench started has been stopped")
    except HarnessError as exc:
        result["error"] = f"cannot start the local servers: {exc}"
        say(result["error"])
        print(json.dumps(result, indent=2, default=str))
        return 3
    result["answer"] = answer(result)
    return report.finish(
        args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=[result["answer"]]
    )


if __name__ == "__main__":
    sys.exit(main())
