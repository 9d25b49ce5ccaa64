"""How much of Worker-Sync's CPU its control plane (the supervisor process) takes while a backlog drains.

    python bench/control_plane.py [--backlog 100000] [--runs 3] [--shards 2] [--ray-cpus 2] [--poll-ms 50]
                                  [--quick] [--results-dir DIR] [--name control_plane]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness, in a temp dir) and a Ray cluster of one node
of its own (`ray start --head` in a temp dir, stopped by PID: actors.harness.ray_cluster), then:

1. Creates the sync bench's 9-column orders table on both servers (bench/sync_workload.py) and a config for
   one PostgreSQL -> MariaDB link built as bench/sync_lag.py builds it (least-privilege accounts, ``--shards``
   applier shards, audit off unless ``--audit``), with ``supervisor.ray_address`` pointing at the cluster.
2. Warm-up: `worker-sync run` starts once on the empty tables (it creates its replication slot) and is
   stopped with SIGTERM (it commits what it applied).
3. Per run (``--runs``): ``--backlog`` changes of sync_lag's 60/30/10 insert/update/delete mix (transactions
   of 1, 10 and 100 changes) are written while nothing reads; then `worker-sync run` starts as a process
   of its own (exactly as deployed: the Ray driver is that process) and drains them. Its /status is read
   every ``--poll-ms`` ms for the stream's applied-event count. At the first applied events and when all
   are applied, the CPU time (utime + stime from /proc/PID/stat, all threads) of every process involved is
   read:
   - the supervisor: the `worker-sync run` process (and any child of it);
   - Worker-Sync's actors: every actor the Ray state API lists on the cluster (`ray list actors --detail`:
     pid, class), grouped by class (CaptureActor, ApplierShard, AuditChain, or whatever actors the code
     under test creates): the cluster runs nothing else;
   - Ray's own processes, separately: gcs_server, raylet, dashboard (and its module processes), the
     dashboard and runtime-env agents, log monitor, autoscaler monitor, client server, idle workers;
   - for context, the PostgreSQL and MariaDB server processes.
   Then `worker-sync run` is stopped with SIGTERM.

Figures per run, for the drain window (first applied events -> last; the first poll's events excluded from
the rows, as in sync_lag.py's "steady" rate): drain rows/s; CPU seconds per group; the supervisor share =
supervisor CPU / CPU of all Worker-Sync processes (supervisor + its actors; Ray's processes not counted);
the same over the whole run (process start -> last applied, start-up included); the machine's busy share
(/proc/stat) and load average. Medians over the runs. At the end the target table is compared with the
source row by row (actors.harness.compare); the bench exits 1 if it differs or a run failed, 130 on Ctrl-C.

It uses only public pieces (the config file, `worker-sync run`, its /status, the Ray state API), so it runs
unchanged against any supervisor that keeps them. JSON on stdout and in bench/results/NAME.json, a plot in
bench/results/NAME.png, progress on stderr. ``--quick``: a 10,000-change backlog, one run (the smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import Endpoint, HarnessError
from actors.harness.ports import free_port
from actors.harness.ray_cluster import VENV_BIN, LocalRayCluster, children_of, cluster_processes
from bench import report
from bench.report import say
from bench.stage import servers_and_ray
from bench.sync_lag import LINKS, build_config, busy_share, cpu_times
from bench.sync_workload import MIX, ORDERS_DDL, TXN_SIZES, TXN_WEIGHTS, LoadProcess, create_table, namespace

NAME = "control_plane"
ROOT = Path(__file__).resolve().parents[1]
LINK = "pg-to-mariadb"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
#: Worker-Sync's groups in the result besides the actor classes found.
SUPERVISOR = "supervisor"
NOTES = [
    "CPU = utime + stime of /proc/PID/stat (every thread of the process), in seconds, read at the first applied "
    "events and when all were applied (drain window), and at the start of `worker-sync run` (whole-run window: "
    "processes that did not exist then count from 0). Resolution: 1/SC_CLK_TCK s per process.",
    "supervisor_share = supervisor CPU / (supervisor + every Worker-Sync actor process) CPU; Ray's own processes "
    "(ray_system) and the databases are reported beside it, not in it.",
    "Worker-Sync's actors are every actor the state API lists on this bench's own cluster (nothing else runs "
    "there), grouped by class name; an actor's process is its Ray worker process.",
    "drain rows/s = changes applied after the first poll that saw any applied / (last applied - first seen); "
    "the supervisor's /status is polled every poll_ms (a small cost in the supervisor process, the same for "
    "any code under test).",
    "The load generator is idle during the drain. PostgreSQL, MariaDB, Ray and Worker-Sync share the machine's "
    "cores; machine_cpu_busy counts every process on the machine (other people's too, see load_average_1m).",
]


# -- /proc --------------------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads) in clock ticks; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after "pid (comm)"


def cmdline(pid: int) -> list[str]:
    """The arguments (at least one, maybe empty: a process gone has none)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return [""]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def ray_process_kind(pid: int) -> str:
    """What a process of the Ray cluster is, by its name or command line."""
    args = cmdline(pid)
    text = " ".join(args)
    name = comm(pid)
    if name == "gcs_server" or args[0].endswith("/gcs_server"):
        return "gcs_server"
    if name == "raylet" or args[0].endswith("/raylet"):
        return "raylet"
    if "dashboard/dashboard.py" in text or name.startswith("ray-dashboard") or "multiprocessing." in text:
        return "dashboard"
    if text.startswith("ray::DashboardAgent") or name.startswith("ray::DashboardA"):
        return "dashboard_agent"
    if text.startswith("ray::RuntimeEnvAgent") or name.startswith("ray::RuntimeEnv"):
        return "runtime_env_agent"
    if "log_monitor.py" in text:
        return "log_monitor"
    if "autoscaler/_private/monitor.py" in text:
        return "autoscaler_monitor"
    if "ray.util.client.server" in text:
        return "client_server"
    if text.startswith("ray::"):
        return "idle_workers"  # a worker process hosting none of the actors listed
    return f"other:{name}"


class Snapshot:
    """CPU ticks of every process of interest at one moment (the processes are found first, then their
    ticks read in one quick pass, and ``at`` taken right before it)."""

    def __init__(self, supervisor_pid: int, cluster: LocalRayCluster) -> None:
        supervisor = {supervisor_pid} | children_of({supervisor_pid})
        databases = {p for p in children_of({os.getpid()}) if comm(p) in ("postgres", "mariadbd")}
        pids = supervisor | cluster_processes(cluster.temp_dir) | databases
        self.supervisor = supervisor
        self.databases = databases
        self.at = time.time()
        self.machine = cpu_times()
        self.ticks = {pid: t for pid in pids if (t := cpu_ticks(pid)) is not None}


def cpu_by_group(start: Snapshot, end: Snapshot, actors: dict[int, str]) -> dict[str, Any]:
    """CPU seconds per group between two snapshots (a process absent from ``start`` counts from 0)."""

    def delta(pid: int) -> float:
        return max(0, end.ticks[pid] - start.ticks.get(pid, 0)) / TICKS_PER_S

    supervisor = sum(delta(pid) for pid in end.supervisor if pid in end.ticks)
    by_class: dict[str, float] = {}
    ray_system: dict[str, float] = {}
    databases = 0.0
    for pid in end.ticks:
        if pid in end.supervisor:
            continue
        if pid in actors:
            by_class[actors[pid]] = by_class.get(actors[pid], 0.0) + delta(pid)
        elif pid in end.databases:
            databases += delta(pid)
        else:
            kind = ray_process_kind(pid)
            ray_system[kind] = ray_system.get(kind, 0.0) + delta(pid)
    worker_sync = supervisor + sum(by_class.values())
    return {
        "supervisor_cpu_s": round(supervisor, 2),
        "actors_cpu_s": {k: round(v, 2) for k, v in sorted(by_class.items())},
        "worker_sync_cpu_s": round(worker_sync, 2),
        "supervisor_share": round(supervisor / worker_sync, 4) if worker_sync > 0 else None,
        "ray_system_cpu_s": round(sum(ray_system.values()), 2),
        "ray_system_by_process_cpu_s": {k: round(v, 2) for k, v in sorted(ray_system.items())},
        "databases_cpu_s": round(databases, 2),
    }


# -- worker-sync run ----------------------------------------------------------------------------------


def worker_sync_command() -> list[str]:
    """`worker-sync run` from the virtualenv of this interpreter (else the repository's supervisor.py)."""
    script = VENV_BIN / "worker-sync"
    return [str(script), "run"] if script.exists() else [sys.executable, str(ROOT / "supervisor.py")]


def warm_up_run(config: Path, env: dict[str, str], log: Path) -> None:
    """`worker-sync run` until it is ready, then stopped: on empty tables it creates its slot or records its
    binlog position, so that what a bench writes next is a backlog it reads."""
    run = Run(config, env, log)
    try:
        run.wait_ready(180)
    finally:
        code = run.stop()
    if code != 0:
        raise RuntimeError(f"the warm-up run exited with code {code}: {run.tail()}")


class Run:
    """`worker-sync run` as a process of its own, its output in a log file."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.port, self.log = free_port(), log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [*worker_sync_command(), "--config", str(config), "--http-port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
                start_new_session=True,  # Ctrl-C at the bench's terminal is the bench's to handle
            )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except OSError:
            return 0, b""

    def applied(self) -> int | None:
        """Events the stream applied so far (from /status); None while /status does not answer."""
        code, body = self.get("/status")
        if code != 200:
            return None
        status = json.loads(body) or {}  # null until the supervisor's loop publishes its first status
        streams = status.get("streams") or []
        return sum(int(s.get("applied_events", 0)) for s in streams)

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"`worker-sync run` exited with code {code}: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.get("/readyz")[0] != 200:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"`worker-sync run` not ready after {timeout_s:.0f}s: {self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # it finishes what is in flight and commits
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


# -- the bench ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, pg: Endpoint, mariadb: Endpoint, cluster: LocalRayCluster, args: argparse.Namespace, tmp: Path):
        self.pg, self.mariadb, self.cluster, self.args, self.tmp = pg, mariadb, cluster, args, tmp
        self.table = "cp_orders"
        for endpoint in (pg, mariadb):
            create_table(endpoint, ORDERS_DDL, self.table)
        import msgspec

        config = build_config(LINK, pg, mariadb, [self.table], args.shards, tmp)
        supervisor = msgspec.structs.replace(config.supervisor, ray_address=cluster.gcs)
        config = msgspec.structs.replace(config, supervisor=supervisor)
        if args.audit:
            config = msgspec.structs.replace(config, audit=self._audit_store(tmp))
        self.config = tmp / "worker-sync.yaml"
        self.config.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        self.load = LoadProcess(pg, self.table, seed=7)
        self.runs: list[dict[str, Any]] = []
        self.started = 0

    def _audit_store(self, tmp: Path) -> Any:
        """`--audit`: the signed log in the source database, as `worker-sync init` makes it."""
        from nacl.signing import SigningKey

        from actors.engines.postgresql.audit_store import create_schema
        from config.model import Audit

        with self.pg.connect("admin") as admin:
            create_schema(admin, "worker_sync_audit", self.pg.capture.user)
        key = tmp / "audit-signing.key"
        key.write_text(bytes(SigningKey.generate()).hex())
        key.chmod(0o600)
        return Audit(signing_key_file=str(key), checkpoint_export_dir=str(tmp / "audit-checkpoints"))

    def close(self) -> None:
        self.load.close()

    def _start(self, label: str) -> Run:
        self.started += 1
        return Run(self.config, self.cluster.env, self.tmp / f"run-{self.started}-{label}.log")

    def warm_up(self) -> None:
        say("warm-up: `worker-sync run` on the empty tables (creates the replication slot) ...")
        self.started += 1
        warm_up_run(self.config, self.cluster.env, self.tmp / f"run-{self.started}-warm-up.log")

    def measure(self, index: int) -> dict[str, Any]:
        args = self.args
        say(f"run {index + 1}/{args.runs}: writing {args.backlog:,} changes while nothing reads ...")
        written = self.load.write_backlog(args.backlog)
        say(f"run {index + 1}: written in {written.elapsed_s:.1f} s ({written.changes / written.elapsed_s:,.0f}/s)")
        run = self._start(f"drain-{index + 1}")
        try:
            begin = Snapshot(run.process.pid, self.cluster)
            first: Snapshot | None = None
            first_count, first_at = 0, 0.0
            poll_s = args.poll_ms / 1000
            deadline = time.monotonic() + args.timeout_s
            while True:
                applied = run.applied() or 0
                seen_at = time.time()
                if applied and first is None:
                    first, first_count, first_at = Snapshot(run.process.pid, self.cluster), applied, seen_at
                if applied >= written.changes:
                    last, last_at = Snapshot(run.process.pid, self.cluster), seen_at
                    break
                run.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"applied {applied:,} of {written.changes:,} in {args.timeout_s:.0f}s")
                time.sleep(poll_s)
            assert first is not None
            actors, listed = self._actors(last)
        finally:
            code = run.stop()
        if code != 0:
            raise RuntimeError(f"`worker-sync run` exited with code {code} when stopped: {run.tail()}")
        rows = written.changes - first_count
        seconds = last_at - first_at
        wall = written.changes / (last_at - begin.at)
        drain = {
            "rows": rows,
            "seconds": round(seconds, 3),
            # One poll saw everything (a tiny backlog): there is no drain window; the whole run stands in.
            "rows_per_s": round(rows / seconds) if rows and seconds > 0 else round(wall),
            "first_poll_rows": first_count,
            "start_to_first_apply_s": round(first_at - begin.at, 2),
            "start_to_drained_rows_per_s": round(wall),
        }
        result = {
            "written": {"changes": written.changes, "by_op": written.by_op, "per_s": round(written.achieved_per_s)},
            "drain": drain,
            "drain_window": cpu_by_group(first, last, actors),
            "whole_run": cpu_by_group(begin, last, actors),
            "actors": listed,
            "machine_cpu_busy": busy_share(first.machine, last.machine),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        window = result["drain_window"]
        say(
            f"run {index + 1}: drained {rows:,} rows in {seconds:.2f} s = {drain['rows_per_s']:,}/s; CPU in the drain: "
            f"supervisor {window['supervisor_cpu_s']} s, Worker-Sync {window['worker_sync_cpu_s']} s "
            f"(share {window['supervisor_share']}), actors {window['actors_cpu_s']}, Ray's own "
            f"{window['ray_system_cpu_s']} s, databases {window['databases_cpu_s']} s; machine busy "
            f"{result['machine_cpu_busy']}, load {result['load_average_1m']}"
        )
        return result

    def _actors(self, last: Snapshot) -> tuple[dict[int, str], list[dict[str, Any]]]:
        """pid -> class of the actors alive on the cluster (those of the running `worker-sync run`)."""
        pids: dict[int, str] = {}
        listed = []
        for actor in self.cluster.actors():
            if actor.get("state") == "DEAD" or not actor.get("pid"):
                continue
            pid = int(actor["pid"])
            pids[pid] = actor.get("class_name") or "unknown"
            listed.append({"name": actor.get("name"), "class": pids[pid], "pid": pid, "node": actor["node_id"][:8]})
            if pid not in last.ticks:
                say(f"note: actor {actor.get('name')} (pid {pid}) is not among the cluster's processes")
        return pids, sorted(listed, key=lambda a: (a["class"], a["name"] or ""))

    def compare(self) -> list[str]:
        from actors.harness.compare import diff_tables

        say("comparing the target with the source, row by row ...")
        return diff_tables(self.pg, namespace(self.pg, self.table), self.mariadb, namespace(self.mariadb, self.table))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 4) if present else None

    window = [r["drain_window"] for r in runs]
    classes = sorted({c for w in window for c in w["actors_cpu_s"]})
    rates = [r["drain"]["rows_per_s"] for r in runs]
    return {
        "drain_rows_per_s": med(rates),
        "supervisor_share": med([w["supervisor_share"] for w in window]),
        "supervisor_cpu_s": med([w["supervisor_cpu_s"] for w in window]),
        "worker_sync_cpu_s": med([w["worker_sync_cpu_s"] for w in window]),
        "actors_cpu_s": {c: med([w["actors_cpu_s"].get(c, 0.0) for w in window]) for c in classes},
        "ray_system_cpu_s": med([w["ray_system_cpu_s"] for w in window]),
        "databases_cpu_s": med([w["databases_cpu_s"] for w in window]),
        # Per 10,000 rows drained: comparable across backlog sizes.
        "supervisor_cpu_s_per_10k_rows": med(
            [
                w["supervisor_cpu_s"] / r["drain"]["rows"] * 10_000 if r["drain"]["rows"] else None
                for w, r in zip(window, runs, strict=True)
            ]
        ),
        "worker_sync_cpu_s_per_10k_rows": med(
            [
                w["worker_sync_cpu_s"] / r["drain"]["rows"] * 10_000 if r["drain"]["rows"] else None
                for w, r in zip(window, runs, strict=True)
            ]
        ),
        "whole_run_supervisor_share": med([r["whole_run"]["supervisor_share"] for r in runs]),
        "machine_cpu_busy": med([r["machine_cpu_busy"] for r in runs]),
        "load_average_1m": med([r["load_average_1m"] for r in runs]),
    }


# -- output -------------------------------------------------------------------------------------------


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    plt = report.pyplot()
    runs = result.get("runs") or []
    if plt is None or not runs:
        return None
    fig, (cpu_ax, rate_ax) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    classes = sorted({c for r in runs for c in r["drain_window"]["actors_cpu_s"]})
    groups = (
        [("supervisor", "#c44e52")]
        + [
            (c, shade)
            for c, shade in zip(classes, ["#4c72b0", "#55a868", "#8172b2", "#64b5cd", "#ccb974"], strict=False)
        ]
        + [("Ray's own processes", "#bbbbbb")]
    )
    labels = [f"run {i + 1}" for i in range(len(runs))]
    bottoms = [0.0] * len(runs)
    for group, color in groups:
        if group == "supervisor":
            values = [r["drain_window"]["supervisor_cpu_s"] for r in runs]
        elif group == "Ray's own processes":
            values = [r["drain_window"]["ray_system_cpu_s"] for r in runs]
        else:
            values = [r["drain_window"]["actors_cpu_s"].get(group, 0.0) for r in runs]
        cpu_ax.bar(labels, values, bottom=bottoms, color=color, label=group)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for i, r in enumerate(runs):
        share = r["drain_window"]["supervisor_share"]
        cpu_ax.annotate(
            f"supervisor share\n{share:.0%}" if share is not None else "n/a",
            (i, bottoms[i]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    cpu_ax.set_ylabel("CPU seconds during the drain")
    cpu_ax.set_ylim(0, max([*bottoms, 0.01]) * 1.35)  # room for the notes and the legend
    cpu_ax.set_title("CPU by process group (supervisor share = of Worker-Sync's processes)", fontsize=10)
    cpu_ax.legend(fontsize=8, loc="upper center", ncol=len(groups))
    rates = [r["drain"]["rows_per_s"] for r in runs]
    bars = rate_ax.bar(labels, rates, color="#4c72b0")
    rate_ax.bar_label(bars, labels=[f"{v:,.0f}" for v in rates], fontsize=8)
    median = result["median"]["drain_rows_per_s"]
    if median:
        rate_ax.axhline(median, color="black", linewidth=0.8, linestyle=":", label=f"median {median:,.0f}/s")
        rate_ax.legend(fontsize=8)
    changes = result["settings"]["backlog_changes"]
    rate_ax.set_title(f"Drain of {changes:,} changes, PostgreSQL -> MariaDB, rows/s")
    return report.save_plot(plt, fig, name)


def answer_line(result: dict[str, Any]) -> str:
    median = result.get("median") or {}
    if not median:
        return "control plane: no run completed"

    def shown(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    return (
        f"control plane, PostgreSQL -> MariaDB, {result['settings']['backlog_changes']:,}-change backlog, "
        f"median of {len(result['runs'])}: drain {shown(median['drain_rows_per_s'], ',.0f')} rows/s; supervisor "
        f"{median['supervisor_cpu_s']} CPU s of Worker-Sync's {median['worker_sync_cpu_s']} (share "
        f"{shown(median['supervisor_share'], '.1%')}); Ray's own processes {median['ray_system_cpu_s']} CPU s"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=100_000, help="changes per backlog (default 100000)")
    parser.add_argument("--runs", type=int, default=3, help="backlog drains; medians reported (default 3)")
    parser.add_argument("--shards", type=int, default=2, help="applier shards (default 2)")
    parser.add_argument(
        "--audit", action="store_true", help="with the signed audit log on (in the source database), to compare"
    )
    parser.add_argument(
        "--ray-cpus",
        type=int,
        default=2,
        help="logical CPUs of the bench's Ray node (default 2, this machine's cores; raise it if the code under "
        "test gives its actors CPU requests that do not fit)",
    )
    parser.add_argument("--poll-ms", type=float, default=50.0, help="how often /status is read, ms (default 50)")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="give up on a drain after this (default 900)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a 10,000-change backlog, one run")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.backlog, args.runs = 10_000, 1  # large enough for more than one poll of the drain to be seen
    if (
        args.backlog < 1
        or args.runs < 1
        or args.shards < 1
        or args.ray_cpus < 1
        or args.poll_ms <= 0
        or args.timeout_s <= 0
    ):
        parser.error("--backlog, --runs, --shards, --ray-cpus, --poll-ms and --timeout-s must be positive")
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    from config.model import Supervisor as SupervisorSettings

    defaults = SupervisorSettings()
    return {
        "link": LINK,
        "backlog_changes": args.backlog,
        "runs": args.runs,
        "applier_shards": args.shards,
        "audit": args.audit,
        "status_poll_ms": args.poll_ms,
        "ray": f"one `ray start --head` node of the bench's own, --num-cpus={args.ray_cpus}",
        "worker_sync_command": " ".join(Path(c).name for c in worker_sync_command()),
        "workload": {"mix": MIX, "transaction_sizes": list(TXN_SIZES), "transaction_size_weights": list(TXN_WEIGHTS)},
        "worker_sync": {
            "batch_max_events": defaults.batch_max_events,
            "batch_max_wait_ms": defaults.batch_max_wait_ms,
            "queue_max_batches": defaults.queue_max_batches,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    result: dict[str, Any] = {"settings": settings(args), "notes": NOTES, "runs": []}
    ok, interrupted = True, False
    started = time.monotonic()
    assert LINKS[LINK][0] == "postgresql"
    try:
        with servers_and_ray("ws-control-plane-", ray_cpus=args.ray_cpus) as stage:
            report.stop_on_signals()
            bench = Bench(stage.pg, stage.mariadb, stage.cluster, args, stage.tmp)
            try:
                bench.warm_up()
                for index in range(args.runs):
                    result["runs"].append(bench.measure(index))
                    result["median"] = summarize(result["runs"])
                differences = bench.compare()
                result["target_equals_source"] = not differences
                result["differences"] = differences[:20]
                ok = not differences
                say(f"the target {'equals' if ok else 'DIFFERS FROM'} the source")
            except Exception as exc:
                ok = False
                result["error"] = f"{type(exc).__name__}: {exc}"
                say(f"FAILED: {result['error']}")
            finally:
                bench.close()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything this bench started has been stopped")
    except HarnessError as exc:
        ok = False
        result["error"] = f"cannot start the local servers or Ray: {exc}"
        say(result["error"])
    if result["runs"]:
        result["median"] = summarize(result["runs"])
    answers = [answer_line(result)]
    return report.finish(args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=answers)


if __name__ == "__main__":
    sys.exit(main())
