"""Issue 19's cost per change: a backlog drained by `worker-sync run` beside a plain loop, from the command.

    python bench/backlog.py [--changes 50000] [--runs 3] [--links pg-to-mariadb,mariadb-to-pg] [--shards 2]
                            [--batch-max-events 500] [--decoder wal2json|pgoutput] [--local-ray]
                            [--no-audit] [--poll-ms 20] [--quick] [--results-dir DIR] [--name backlog]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness) and a Ray node of its own (`ray start
--head` in a temp dir: its start-up is timed and reported apart, as "Ray's own start"). Per link direction:

1. The sync bench's 9-column orders table (bench/sync_workload.py) on the source, and one copy per reader on
   the target: Worker-Sync with audit off, Worker-Sync with the signed audit log on (stored in PostgreSQL as
   `worker-sync init` makes it), and the plain loop. Each Worker-Sync variant is a config of its own (own
   slot or binlog position, own state dir), built as bench/sync_lag.py builds it (least-privilege accounts,
   ``--shards`` applier shards, ``supervisor.ray_address`` = the bench's node), and is started once on the
   empty tables (warm-up: it creates its slot / records its position) and stopped. The Worker-Sync readers
   keep their slots from run to run, as deployed; the plain loop's slot is made afresh at each backlog (or
   it reads from the binlog position before it). So with PostgreSQL as the source, a Worker-Sync reader also
   decodes what was written there since its last drain (the audit variant's log entries) and the plain loop
   does not: a handicap for Worker-Sync, kept on purpose (giving the loop a kept slot too made the runs'
   spread depend on their order: bench/README.md).
2. Per run: ``--changes`` changes of sync_lag's 60/30/10 insert/update/delete mix (transactions of 1, 10
   and 100) are written while nothing reads. Then each reader alone, in an order rotated per run, once the
   machine is quiet again (bench/report.py's wait_for_quiet: the servers done flushing and purging what came
   before; ``quiet_wait_s``), drains them into its own copy, timed from its command until its copy equals the
   source (the whole-table count/sum fingerprint of bench/peer_chameleon.py, read once /status, polled every
   ``--poll-ms``, counts every change applied: each read scans the whole copy, on the cores the drain runs on):
   - Worker-Sync: `worker-sync run` as a process of its own (as deployed; Ray already up). Also timed: from
     the command to the first applied change (its /status), i.e. its own start-up overhead without Ray's.
     When the copy is equal: peak RSS (VmHWM) of the supervisor process and of each actor process (found
     through the Ray state API), and the RSS of Ray's own processes (GCS, raylet, dashboard, agents, idle
     workers) beside them; and the CPU seconds (/proc) each of those groups and both servers spent since the
     command. Then SIGTERM.
   - The plain loop, in a spawned process of its own (timed from the spawn, so interpreter start and imports
     count as they do for `run`): PostgreSQL -> MariaDB bench/sync_plain.py's wal2json polling loop;
     MariaDB -> PostgreSQL its well-written bare mysql-replication loop (``freeze_schema=True``,
     ``only_events``, ``executemany`` per batch). Its peak RSS and CPU seconds (its own and the servers')
     are reported too.
3. At the end every copy is compared with the source row by row (actors.harness.compare); the bench exits
   1 if one differs or a run failed, 130 on Ctrl-C.

Ratios are rates: plain loop seconds / Worker-Sync seconds (>1: Worker-Sync is faster), medians of the runs.
JSON on stdout and in bench/results/NAME.json, a plot in bench/results/NAME.png, progress on stderr.
``--quick``: 2,000 changes, one run (the smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import Endpoint, HarnessError
from actors.harness.ray_cluster import LocalRayCluster, children_of, cluster_processes
from bench import report
from bench.control_plane import Run, ray_process_kind, warm_up_run
from bench.peer_chameleon import fingerprint
from bench.report import say
from bench.spy import Spy, grouped, top_table
from bench.stage import servers_and_ray, signed_audit_log
from bench.sync_lag import LINKS, build_config
from bench.sync_workload import MIX, ORDERS_DDL, TXN_SIZES, TXN_WEIGHTS, LoadProcess, create_table, namespace, qualified

NAME = "backlog"
READERS = ("plain_loop", "worker_sync", "worker_sync_audit")
#: Costs issue 19's profile names, by the frames they pass through (shares of all Worker-Sync samples).
PROFILE_GROUPS = {
    "mariadb_writer_rows_to_sql_text": (
        "pymysql/converters.py",
        "_mogrify (pymysql",
        "escape (pymysql",
        "converted (actors/engines/sink.py",
        "mariadb/literals.py",
        "_number (actors/engines/mariadb/writer.py",
        "_datetime (actors/engines/mariadb/writer.py",
    ),
    "postgresql_writer_execute": ("actors/engines/postgresql/writer.py",),
    "batch_encode_decode": ("msgspec", "encoding.py"),
    "wal2json_decoding": ("wal2json.py",),
    "binlog_decoding": ("pymysqlreplication",),
    "per_key_collapse": ("row_id (actors/core/changes.py", "collapse (actors/core/changes.py"),
}
#: Seconds between fingerprints of a Worker-Sync copy while /status does not yet count every change applied.
FINGERPRINT_FALLBACK_S = 3.0

NOTES = [
    "seconds: from the reader's command (Popen of `worker-sync run`; spawn of the plain loop's process) until "
    "its copy's fingerprint equals the source's (the plain loop's end is its last commit; Worker-Sync's: "
    "/status, polled every poll_ms, counts every change applied (it is published at most every 0.2 s) and "
    "the fingerprint read then is equal). per_s = changes / seconds. ratio_* = plain loop seconds / "
    "Worker-Sync seconds (rates).",
    "Worker-Sync connects to the bench's own running Ray node; ray_start_s (`ray start --head`, once) is Ray's "
    "own start, reported apart; *_with_ray_start ratios add it to Worker-Sync's seconds.",
    "startup_to_first_apply_s: from the `worker-sync run` command to the first /status (polled every 20 ms "
    "until then) showing an applied change: Worker-Sync's own start-up, Ray already running.",
    "Memory: peak RSS (VmHWM) of the supervisor process (and children) and of each Worker-Sync actor process "
    "(fresh per run); Ray's own processes: current RSS (VmRSS) at the end of the drain, summed by kind "
    "(shared pages are counted in every process that maps them, as RSS does).",
    "cpu_s: CPU seconds (user + system, /proc) from the reader's command to its equal copy, per group: "
    "`supervisor` (the `run` process), each actor class, `ray` (Ray's own processes), `postgresql` and "
    "`mariadb` (the servers, their exited backends included), `plain loop` (its whole process). Actor "
    "processes that Ray started before the command (idle workers) count only from the command on.",
    "The load generator is idle during the drains; PostgreSQL, MariaDB, Ray and the reader share the cores "
    "(other people's processes too: see load_average_1m).",
]


# -- /proc ----------------------------------------------------------------------------------------------


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; zeros when it is gone."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def worker_sync_processes(supervisor_pid: int, cluster: LocalRayCluster) -> dict[int, str]:
    """The processes of one `worker-sync run` and of the Ray node it uses, by kind: "supervisor" (the command
    and its children), each actor's class name, and "ray" (Ray's own: GCS, raylet, dashboard, agents, idle
    workers)."""
    kinds = dict.fromkeys({supervisor_pid} | children_of({supervisor_pid}), "supervisor")
    for actor in cluster.actors():
        if actor.get("state") != "DEAD" and actor.get("pid"):
            kinds.setdefault(int(actor["pid"]), actor.get("class_name") or "unknown")
    for pid in cluster_processes(cluster.temp_dir):
        kinds.setdefault(pid, "ray")
    return kinds


def memory_by_group(kinds: dict[int, str]) -> dict[str, Any]:
    """Peak RSS of Worker-Sync's processes (supervisor, actors by class) and RSS of Ray's own, in MiB."""
    by_class: dict[str, float] = {}
    ray_own: dict[str, float] = {}
    supervisor_mib = 0.0
    for pid, kind in kinds.items():
        rss, hwm = memory_kib(pid)
        if kind == "supervisor":
            supervisor_mib += hwm / 1024
        elif kind == "ray":
            own = ray_process_kind(pid)
            ray_own[own] = ray_own.get(own, 0.0) + rss / 1024
        else:
            by_class[kind] = by_class.get(kind, 0.0) + hwm / 1024
    return {
        "supervisor_peak_mib": round(supervisor_mib, 1),
        "actors_peak_mib": {k: round(v, 1) for k, v in sorted(by_class.items())},
        "worker_sync_peak_mib": round(supervisor_mib + sum(by_class.values()), 1),
        "ray_own_rss_mib": round(sum(ray_own.values()), 1),
        "ray_own_by_process_rss_mib": {k: round(v, 1) for k, v in sorted(ray_own.items())},
    }


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(user + system ticks of the process itself, those of the children it reaped); zeros when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def listening(port: int) -> set[int]:
    """The processes holding a listening TCP socket on ``port`` (a server's main process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    pids.add(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds each group of processes spent between :meth:`start` and :meth:`read`, the two servers among
    them: where the machine's cores went during a drain (py-spy's samples count wall time while a thread holds
    the GIL, which a loaded machine inflates, so they rank functions but do not measure CPU).

    Live processes count by their own time; a server's root process (the postmaster) also by what it reaped
    from children that exited meanwhile (PostgreSQL's backends); this process by what it reaped (the plain
    loop's spawned process)."""

    def __init__(self, servers: dict[str, int]) -> None:
        """``servers``: engine -> the port its server listens on."""
        self.servers = servers
        self._before: dict[int, tuple[int, int]] = {}
        self._reaped_s = 0.0

    def start(self) -> None:
        self._before = {int(e.name): cpu_ticks(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
        self._reaped_s = self._reaped_here()

    @staticmethod
    def _reaped_here() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def read(self, kinds: dict[int, str], reaped_kind: str | None = None) -> dict[str, float]:
        """Seconds per kind: ``kinds`` (pid -> kind) and the servers' processes; ``reaped_kind`` names what this
        process reaped since :meth:`start`."""
        kinds = dict(kinds)
        roots: set[int] = set()
        for engine, port in self.servers.items():
            found = listening(port)
            roots |= found
            for pid in found | children_of(found):
                kinds.setdefault(pid, engine)
        seconds: dict[str, float] = {}
        for pid, kind in kinds.items():
            own, reaped = cpu_ticks(pid)
            own_before, reaped_before = self._before.get(pid, (0, 0))
            ticks = own - own_before + (reaped - reaped_before if pid in roots else 0)
            seconds[kind] = seconds.get(kind, 0.0) + ticks / _TICKS_PER_S
        if reaped_kind is not None:
            seconds[reaped_kind] = seconds.get(reaped_kind, 0.0) + self._reaped_here() - self._reaped_s
        return {kind: round(value, 2) for kind, value in sorted(seconds.items())}


# -- one link -------------------------------------------------------------------------------------------


class LinkBacklog:
    def __init__(
        self, link: str, pg: Endpoint, mariadb: Endpoint, cluster: LocalRayCluster, args: argparse.Namespace, tmp: Path
    ) -> None:
        self.link, self.cluster, self.args, self.tmp = link, cluster, args, tmp
        source, target, self.prefix = LINKS[link]
        endpoints = {"postgresql": pg, "mysql": mariadb}
        self.pg, self.mariadb = pg, mariadb
        self.source, self.target = endpoints[source], endpoints[target]
        self.readers = [r for r in READERS if args.audit or r != "worker_sync_audit"]
        self.table = f"{self.prefix}_bl"
        self.copies = {reader: f"{self.prefix}_bl_{reader}" for reader in self.readers}
        self.result: dict[str, Any] = {
            "source": f"{self.source.engine}:{namespace(self.source, self.table)}",
            "plain_loop": "sync_plain.pg_to_mariadb (wal2json polling, multi-row upserts)"
            if self.source.engine == "postgresql"
            else "sync_plain.mariadb_to_pg_bare (freeze_schema, only_events, executemany)",
            "runs": [],
        }
        self.configs: dict[str, Path] = {}
        self.plain_slot = f"plain_{self.prefix}_bl"
        #: With --py-spy: collapsed stacks per process kind, summed over the runs (audit-off reader only).
        self.stacks: dict[str, Counter[str]] = {}
        self.load: LoadProcess | None = None
        self.cpu = CpuMeter({"postgresql": pg.port, "mariadb": mariadb.port})
        self.ok = True

    def run(self) -> dict[str, Any]:
        create_table(self.source, ORDERS_DDL, self.table)
        for copy in self.copies.values():
            create_table(self.target, ORDERS_DDL, copy)
        for reader in self.readers:
            if reader != "plain_loop":
                self.configs[reader] = self._config(reader)
        self.load = LoadProcess(self.source, self.table, seed=11)
        try:
            for reader in self.configs:
                self._warm_up(reader)
            for index in range(self.args.runs):
                self.result["runs"].append(self._measure(index))
                self.result["median"] = summarize(self.result["runs"], self.readers)
            self._compare()
            if self.stacks:
                self._write_profile()
        finally:
            self.load.close()
            self._drop_slots()
        return self.result

    def _config(self, reader: str) -> Path:
        """`worker-sync run`'s config for one Worker-Sync reader: its own copy, slot, state dir (and audit)."""
        import msgspec

        from config.model import Audit, TableMap

        config = build_config(self.link, self.pg, self.mariadb, [self.table], self.args.shards, self.tmp)
        (link,) = config.links
        tables = [
            TableMap(source=namespace(self.source, self.table), target=namespace(self.target, self.copies[reader]))
        ]
        link = msgspec.structs.replace(link, name=f"bl-{self.prefix}-{reader.replace('_', '-')}", tables=tables)
        supervisor = msgspec.structs.replace(
            config.supervisor,
            ray_address=None if self.args.local_ray else self.cluster.gcs,
            state_dir=str(self.tmp / f"state-{self.prefix}-{reader}"),
            batch_max_events=self.args.batch_max_events,
        )
        slot = f"ws_{self.prefix}_{reader}"
        pg_node = msgspec.structs.replace(config.databases.postgresql, slot_name=slot, decoder=self.args.decoder)
        if self.args.decoder == "pgoutput" and self.source.engine == "postgresql":
            with self.pg.connect("admin") as admin:  # what `worker-sync init --admin-user` makes
                admin.execute(f"DROP PUBLICATION IF EXISTS {slot}")
                admin.execute(f"CREATE PUBLICATION {slot} FOR TABLE {namespace(self.source, self.table)}")
        databases = msgspec.structs.replace(config.databases, postgresql=pg_node)
        config = msgspec.structs.replace(config, links=[link], supervisor=supervisor, databases=databases)
        if reader == "worker_sync_audit":
            config = msgspec.structs.replace(config, audit=self._audit(reader))
        else:
            config = msgspec.structs.replace(config, audit=Audit(enabled=False))
        path = self.tmp / f"worker-sync-{self.prefix}-{reader}.yaml"
        path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        return path

    def _audit(self, reader: str) -> Any:
        """The signed log in PostgreSQL (the source or the target), granted to the account the link uses there."""
        role = self.pg.capture.user if self.source.engine == "postgresql" else self.pg.apply.user
        return signed_audit_log(self.pg, role, self.tmp, self.prefix)

    def _start(self, reader: str, label: str) -> Run:
        return Run(self.configs[reader], self.cluster.env, self.tmp / f"{self.prefix}-{reader}-{label}.log")

    def _warm_up(self, reader: str) -> None:
        say(f"{self.link}: warm-up of {reader} on the empty tables (slot, start position) ...")
        warm_up_run(self.configs[reader], self.cluster.env, self.tmp / f"{self.prefix}-{reader}-warm-up.log")

    def _measure(self, index: int) -> dict[str, Any]:
        args = self.args
        position: tuple[str, int] | None = None
        if self.source.engine == "postgresql":  # the plain loop starts at the backlog (see the module's notes)
            with self.source.connect("admin") as conn:
                conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (self.plain_slot,))
        else:
            with self.source.connect("admin") as conn, conn.cursor() as cursor:
                cursor.execute("SHOW MASTER STATUS")
                log_file, log_pos = cursor.fetchone()[:2]
                position = (log_file, int(log_pos))
        say(f"{self.link}: run {index + 1}/{args.runs}: writing {args.changes:,} changes while nothing reads ...")
        assert self.load is not None
        written = self.load.write_backlog(args.changes)
        want = fingerprint(self.source, qualified(self.source, self.table))
        run: dict[str, Any] = {
            "written": {"changes": written.changes, "by_op": written.by_op, "per_s": round(written.achieved_per_s)},
        }
        order = self.readers[index % len(self.readers) :] + self.readers[: index % len(self.readers)]
        run["order"] = order
        try:
            for reader in order:
                quiet_wait_s = report.wait_for_quiet()
                if reader == "plain_loop":
                    run[reader] = self._plain(written.changes, want, self.plain_slot, position)
                else:
                    run[reader] = self._worker_sync(reader, written.changes, want)
                run[reader]["per_s"] = round(written.changes / run[reader]["seconds"])
                run[reader]["quiet_wait_s"] = quiet_wait_s
                say(f"{self.link}: run {index + 1}: {reader}: {self._line(run[reader])}")
        finally:
            self._drop_slot(self.plain_slot)
        run["load_average_1m"] = round(os.getloadavg()[0], 2)
        return run

    @staticmethod
    def _line(figures: dict[str, Any]) -> str:
        text = f"{figures['seconds']:.2f} s from the command to an equal copy ({figures['per_s']:,}/s)"
        if "startup_to_first_apply_s" in figures:
            text += f"; first applied change after {figures['startup_to_first_apply_s']:.2f} s"
            if "own_startup_s" in figures:
                text += f" (Ray {figures['log_ray_s']:.2f} s of it, Worker-Sync's own {figures['own_startup_s']:.2f} s)"
            memory = figures["memory"]
            if memory:
                text += (
                    f"; peak RSS Worker-Sync {memory['worker_sync_peak_mib']:,.0f} MiB {memory['actors_peak_mib']}, "
                    f"Ray's own {memory['ray_own_rss_mib']:,.0f} MiB"
                )
        else:
            text += f"; peak RSS {figures['peak_rss_mib']:,.0f} MiB"
        if figures.get("cpu_s"):
            text += f"; CPU s {figures['cpu_s']}"
        return text

    def _plain(self, changes: int, want: tuple[int, ...], slot: str, position: tuple[str, int] | None) -> dict:
        from bench import sync_plain

        copy = self.copies["plain_loop"]
        if self.source.engine == "postgresql":
            loop = "pg_to_mariadb"
            kwargs: dict[str, Any] = {"pg": self.source, "slot": slot, "table": self.table}
            kwargs |= {"mariadb": self.target, "target_table": copy, "expected": changes}
        else:
            assert position is not None
            loop = "mariadb_to_pg_bare"
            kwargs = {"mariadb": self.source, "log_file": position[0], "log_pos": position[1], "table": self.table}
            kwargs |= {"pg": self.target, "target_table": copy, "expected": changes}
        kwargs["timeout_s"] = self.args.timeout_s
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.cpu.start()
        started = time.time()
        process = context.Process(target=sync_plain.run_child, args=(child, loop, kwargs), daemon=True)
        process.start()
        child.close()
        try:
            if not parent.poll(self.args.timeout_s + 60):
                raise RuntimeError(f"plain loop {loop}: no answer after {self.args.timeout_s + 60:.0f}s")
            status, payload = parent.recv()
        finally:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        if status != "ok":
            raise RuntimeError(f"plain loop {loop} failed: {payload}")
        cpu = self.cpu.read({}, reaped_kind="plain loop")
        got = fingerprint(self.target, qualified(self.target, copy))
        if got != want:
            raise RuntimeError(f"plain loop {loop}: its copy differs from the source after its last commit")
        return {
            "seconds": round(payload["last_commit_at"] - started, 3),
            "loop_seconds": round(payload["elapsed_s"], 3),
            "peak_rss_mib": round(payload["peak_rss_kib"] / 1024, 1),
            "cpu_s": cpu,
        }

    def _worker_sync(self, reader: str, changes: int, want: tuple[int, ...]) -> dict[str, Any]:
        copy = qualified(self.target, self.copies[reader])
        poll_s = self.args.poll_ms / 1000
        label = f"drain-{len(self.result['runs']) + 1}"
        self.cpu.start()
        started = time.time()
        run = self._start(reader, label)
        spy = None
        if self.args.py_spy and reader == "worker_sync" and not self.args.local_ray:
            spy = Spy(self.args.py_spy, self.tmp / "profiles", f"{self.prefix}-{reader}-{label}")
            spy.watch(run.process.pid, "supervisor")
        first_at = 0.0
        scanned = 0.0
        try:
            deadline = time.monotonic() + self.args.timeout_s
            while not first_at:  # the first applied change, from /status (cheap to poll)
                if spy is not None and time.monotonic() - scanned > 0.1:
                    spy.watch_actors(cluster_processes(self.cluster.temp_dir))
                    scanned = time.monotonic()
                if (run.applied() or 0) > 0:
                    first_at = time.time()
                    break
                run.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{reader}: nothing applied in {self.args.timeout_s:.0f}s: {run.tail()}")
                time.sleep(0.02)
            # The fingerprint scans the whole copy (tens of ms of the target's CPU at 200,000 rows, taken from the
            # cores the drain shares): it is read once /status counts every change applied, else every few
            # seconds (a fallback, should the counts differ).
            fingerprinted = time.monotonic()
            while True:
                if spy is not None:
                    spy.watch_actors(cluster_processes(self.cluster.temp_dir))
                now = time.time()
                if (run.applied() or 0) >= changes or time.monotonic() - fingerprinted > FINGERPRINT_FALLBACK_S:
                    fingerprinted = time.monotonic()
                    if fingerprint(self.target, copy) == want:
                        equal_at = now
                        break
                run.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{reader}: copy not equal after {self.args.timeout_s:.0f}s: {run.tail()}")
                time.sleep(poll_s)
            if spy is not None:
                spy.stop()
                for kind, stacks in spy.samples().items():
                    self.stacks.setdefault(kind, Counter()).update(stacks)
            # With --local-ray the actors run under the run's own Ray, which the state API here does not see.
            kinds = {} if self.args.local_ray else worker_sync_processes(run.process.pid, self.cluster)
            cpu = None if self.args.local_ray else self.cpu.read(kinds)
            memory = memory_by_group(kinds) if kinds else None
        finally:
            if spy is not None:
                spy.stop()
            code = run.stop()
            if self.args.logs:  # `worker-sync run`'s own log (start-up steps with their times)
                Path(self.args.logs).mkdir(parents=True, exist_ok=True)
                shutil.copy(run.log, Path(self.args.logs) / run.log.name)
        if code != 0:
            raise RuntimeError(f"{reader}: `worker-sync run` exited with code {code} when stopped: {run.tail()}")
        figures = {
            "started_at": round(started, 3),  # time.time() of the command, to read its log's times against
            "seconds": round(equal_at - started, 3),
            "startup_to_first_apply_s": round(first_at - started, 3),
            "first_apply_to_equal_s": round(equal_at - first_at, 3),
            "memory": memory,
            "cpu_s": cpu,
        }
        return figures | startup_from_log(run.log)

    def _write_profile(self) -> None:
        """The top table of the sampled drains (results/NAME_profile_LINK.md) and the shares of the costs
        issue 19 names (in the JSON)."""
        title = (
            f"py-spy, {self.link}: Worker-Sync (audit off) draining {self.args.changes:,} changes x "
            f"{self.args.runs} runs, {self.args.shards} shards, samples of the GIL holder at 100/s"
        )
        path = report.RESULTS / f"{self.args.name}_profile_{self.link}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(top_table(self.stacks, title) + "\n")
        everything: Counter[str] = Counter()
        for stacks in self.stacks.values():
            everything.update(stacks)
        self.result["profile"] = {
            "top_table": path.name,
            "samples": {kind: sum(stacks.values()) for kind, stacks in sorted(self.stacks.items())},
            "share_of_worker_sync_samples": grouped(everything, PROFILE_GROUPS),
        }

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
        for reader in self.configs:
            self._drop_slot(f"ws_{self.prefix}_{reader}")
        self._drop_slot(self.plain_slot)

    def _compare(self) -> None:
        from actors.harness.compare import diff_tables

        say(f"{self.link}: comparing every copy with the source, row by row ...")
        source = namespace(self.source, self.table)
        for reader, copy in self.copies.items():
            differences = diff_tables(self.source, source, self.target, namespace(self.target, copy))
            self.result[f"{reader}_equals_source"] = not differences
            self.result[f"{reader}_differences"] = differences[:20]
            if differences:
                self.ok = False
                say(f"{self.link}: {reader}'s copy DIFFERS FROM the source: {differences[:3]}")


STARTED_LINE = re.compile(r"first change applied ([0-9.]+) s after the process started \(([0-9.]+) s of it")
#: The later line: the whole first batch done (every shard's part applied, the audit's stored).
FIRST_BATCH_LINE = re.compile(r"first batch applied by every shard(?: and audited)? ([0-9.]+) s after the process")


def startup_from_log(log: Path) -> dict[str, float]:
    """The supervisor's own start-up line (seconds from its process start to the first applied change, and
    how many of them went to starting or joining Ray): Worker-Sync's own start-up is their difference."""
    found = STARTED_LINE.search(log.read_text(errors="replace"))
    if found is None:
        return {}
    to_first, ray_s = float(found[1]), float(found[2])
    return {"log_process_to_first_apply_s": to_first, "log_ray_s": ray_s, "own_startup_s": round(to_first - ray_s, 3)}


def first_batch_from_log(log: Path, ray_s: float) -> dict[str, float]:
    """Worker-Sync's own seconds to the whole first batch done (its positions may be committed from then on)."""
    found = FIRST_BATCH_LINE.search(log.read_text(errors="replace"))
    return {} if found is None else {"own_first_batch_s": round(float(found[1]) - ray_s, 3)}


def summarize(runs: list[dict[str, Any]], readers: list[str]) -> dict[str, Any]:
    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    median: dict[str, Any] = {}
    for reader in readers:
        done = [r[reader] for r in runs if reader in r]
        median[f"{reader}_seconds"] = med([f["seconds"] for f in done])
        median[f"{reader}_per_s"] = med([f["per_s"] for f in done])
        cpus = [f["cpu_s"] for f in done if f.get("cpu_s")]
        if cpus:
            kinds = sorted({kind for cpu in cpus for kind in cpu})
            median[f"{reader}_cpu_s"] = {kind: med([cpu.get(kind, 0.0) for cpu in cpus]) for kind in kinds}
            median[f"{reader}_cpu_s_total"] = med([sum(cpu.values()) for cpu in cpus])
        if reader == "plain_loop":
            median["plain_loop_peak_rss_mib"] = med([f["peak_rss_mib"] for f in done])
            continue
        median[f"{reader}_startup_to_first_apply_s"] = med([f["startup_to_first_apply_s"] for f in done])
        median[f"{reader}_own_startup_s"] = med([f["own_startup_s"] for f in done if "own_startup_s" in f])
        median[f"{reader}_ray_start_in_run_s"] = med([f["log_ray_s"] for f in done if "log_ray_s" in f])
        measured = [f["memory"] for f in done if f["memory"]]
        median[f"{reader}_peak_mib"] = med([m["worker_sync_peak_mib"] for m in measured])
        median[f"{reader}_ray_own_rss_mib"] = med([m["ray_own_rss_mib"] for m in measured])
        ratios = [r["plain_loop"]["seconds"] / r[reader]["seconds"] for r in runs if reader in r and "plain_loop" in r]
        median[f"ratio_{reader}"] = med(ratios)
        median[f"ratio_{reader}_per_run"] = [round(v, 3) for v in ratios]
    return median


# -- output ---------------------------------------------------------------------------------------------


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    plt = report.pyplot()
    links = {k: v for k, v in result.get("links", {}).items() if v.get("median")}
    if plt is None or not links:
        return None
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"plain_loop": "#999999", "worker_sync": "#4c72b0", "worker_sync_audit": "#dd8452"}
    labels, values, shades = [], [], []
    for link, data in links.items():
        for reader in READERS:
            seconds = data["median"].get(f"{reader}_seconds")
            if seconds is not None:
                labels.append(f"{link}\n{reader.replace('_', ' ')}")
                values.append(seconds)
                shades.append(colors[reader])
    bars = time_ax.bar(range(len(values)), values, color=shades)
    time_ax.bar_label(bars, labels=[f"{v:.1f} s" for v in values], fontsize=8)
    time_ax.set_xticks(range(len(values)), labels, fontsize=7)
    time_ax.set_ylabel("seconds from the command to an equal copy (median)")
    time_ax.set_title(
        f"Backlog of {result['settings']['changes']:,} changes (Ray already up: {result.get('ray_start_s')} s)"
    )
    mem_labels, ws_mem, ray_mem = [], [], []
    for link, data in links.items():
        median = data["median"]
        mem_labels += [f"{link}\nplain loop", f"{link}\nWorker-Sync"]
        ws_mem += [median.get("plain_loop_peak_rss_mib") or 0, median.get("worker_sync_peak_mib") or 0]
        ray_mem += [0, median.get("worker_sync_ray_own_rss_mib") or 0]
    mem_ax.bar(range(len(ws_mem)), ws_mem, color="#4c72b0", label="peak RSS: loop / Worker-Sync processes")
    mem_ax.bar(range(len(ray_mem)), ray_mem, bottom=ws_mem, color="#cccccc", label="Ray's own processes (RSS)")
    mem_ax.set_xticks(range(len(ws_mem)), mem_labels, fontsize=7)
    mem_ax.set_ylabel("MiB")
    mem_ax.set_title("Memory")
    mem_ax.legend(fontsize=8)
    return report.save_plot(plt, fig, name)


def answer_line(link: str, data: dict[str, Any], ray_start_s: float | None) -> str:
    median = data.get("median") or {}
    if not median:
        return f"{link}: no run completed"
    text = f"{link}, median of {len(data['runs'])}: plain loop {median['plain_loop_seconds']} s"
    for reader in ("worker_sync", "worker_sync_audit"):
        if median.get(f"{reader}_seconds") is not None:
            text += (
                f"; {reader.replace('_', ' ')} {median[f'{reader}_seconds']} s = {median[f'ratio_{reader}']:.2f}x "
                f"(first applied change after {median[f'{reader}_startup_to_first_apply_s']} s"
            )
            if median.get(f"{reader}_own_startup_s") is not None:
                text += (
                    f"; Worker-Sync's own start-up {median[f'{reader}_own_startup_s']} s, Ray's start within `run` "
                    f"{median[f'{reader}_ray_start_in_run_s']} s"
                )
            text += ")"
    text += f"; Ray's own start {ray_start_s} s"
    cpu = [f"{r.replace('_', ' ')} {median[f'{r}_cpu_s_total']}" for r in READERS if median.get(f"{r}_cpu_s_total")]
    if cpu:
        text += f"; CPU seconds, servers included: {', '.join(cpu)}"
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=50_000, help="changes per backlog (default 50000)")
    parser.add_argument("--runs", type=int, default=3, help="backlogs per link; medians reported (default 3)")
    parser.add_argument("--links", default=",".join(LINKS), help=f"comma list of {', '.join(LINKS)}")
    parser.add_argument("--shards", type=int, default=2, help="applier shards (default 2)")
    parser.add_argument(
        "--batch-max-events", type=int, default=500, help="supervisor.batch_max_events of each run (default 500)"
    )
    parser.add_argument(
        "--decoder",
        choices=("wal2json", "pgoutput"),
        default="wal2json",
        help="output plugin of Worker-Sync's PostgreSQL capture (default wal2json; the plain loop polls wal2json)",
    )
    parser.add_argument("--no-audit", dest="audit", action="store_false", help="skip the audit-on Worker-Sync")
    parser.add_argument(
        "--poll-ms", type=float, default=20.0, help="poll of a Worker-Sync run's /status, ms (default 20)"
    )
    parser.add_argument("--timeout-s", type=float, default=900.0, help="give up on a drain after this (default 900)")
    parser.add_argument(
        "--py-spy",
        help="py-spy binary: profile the audit-off Worker-Sync drains (supervisor and actors) into "
        "results/NAME_profile_LINK.md; its timings are then those of a profiled run",
    )
    parser.add_argument("--logs", help="copy each `worker-sync run` log (JSON lines) into this directory")
    parser.add_argument(
        "--local-ray",
        action="store_true",
        help="each `worker-sync run` starts a Ray of its own, as `run` without `supervisor.ray_address` does on "
        "a laptop (Ray's start then counts in the drain; the run's log splits it out); no memory figures",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 changes, one run")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.changes, args.runs = 2_000, 1
    args.links = [link.strip() for link in args.links.split(",") if link.strip()]
    unknown = set(args.links) - set(LINKS)
    if unknown:
        parser.error(f"unknown link(s): {', '.join(sorted(unknown))}; choose from {', '.join(LINKS)}")
    if min(args.changes, args.runs, args.shards, args.batch_max_events) < 1 or min(args.poll_ms, args.timeout_s) <= 0:
        parser.error("--changes, --runs, --shards, --batch-max-events, --poll-ms and --timeout-s must be positive")
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "changes": args.changes,
        "runs": args.runs,
        "links": args.links,
        "applier_shards": args.shards,
        "batch_max_events": args.batch_max_events,
        "postgresql_decoder": args.decoder,
        "audit_variant": args.audit,
        "profiled_with_py_spy": bool(args.py_spy),
        "poll_ms": args.poll_ms,
        "ray": "a Ray started by each `worker-sync run` itself"
        if args.local_ray
        else "one `ray start --head --num-cpus=2` node of the bench's own",
        "workload": {"mix": MIX, "transaction_sizes": list(TXN_SIZES), "transaction_size_weights": list(TXN_WEIGHTS)},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    result: dict[str, Any] = {"settings": settings(args), "notes": NOTES, "links": {}}
    ok, interrupted = True, False
    started = time.monotonic()
    try:
        with servers_and_ray("ws-backlog-") as stage:
            result["ray_start_s"] = stage.ray_start_s
            report.stop_on_signals()
            for link in args.links:
                bench = LinkBacklog(link, stage.pg, stage.mariadb, stage.cluster, args, stage.tmp)
                result["links"][link] = bench.result
                try:
                    bench.run()
                except Exception as exc:
                    bench.ok = False
                    bench.result["error"] = f"{type(exc).__name__}: {exc}"
                    say(f"{link}: FAILED: {bench.result['error']}")
                ok = ok and bench.ok
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything this bench started has been stopped")
    except HarnessError as exc:
        ok = False
        result["error"] = f"cannot start the local servers or Ray: {exc}"
        say(result["error"])
    ray_start = result.get("ray_start_s")
    for data in result["links"].values():
        median = data.get("median") or {}
        for reader in ("worker_sync", "worker_sync_audit"):
            seconds = median.get(f"{reader}_seconds")
            if seconds and ray_start is not None and median.get("plain_loop_seconds"):
                median[f"ratio_{reader}_with_ray_start"] = round(
                    median["plain_loop_seconds"] / (seconds + ray_start), 3
                )
    answers = [answer_line(link, data, ray_start) for link, data in result["links"].items()]
    return report.finish(args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=answers)


if __name__ == "__main__":
    sys.exit(main())
