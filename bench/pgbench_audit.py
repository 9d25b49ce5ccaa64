"""The cost of auditing at the source: pgbench TPS alone, while Worker-Sync captures and audits, with triggers,
and while a bare logical-decoding client streams (the floor any logical-decoding CDC tool pays).

    python bench/pgbench_audit.py [--scale 2] [--clients 2] [--jobs 2] [--duration 20] [--repeat 3]
                                  [--pin] [--decoder wal2json|pgoutput] [--audit-store source|separate]
                                  [--variants alone,worker_sync,trigger_audit,logical_floor]
                                  [--quick] [--results-dir DIR]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness, in a temp dir) and a local Ray,
initializes pgbench's tables in PostgreSQL (``pgbench -i -s SCALE``, the pgbench that ships with the
harness's PostgreSQL: found in the same bin directory, actors.harness.postgres.find_bindir), and runs the
built-in TPC-B-like script (``pgbench -n -c CLIENTS -j JOBS -T DURATION``) in four variants (``--variants``
picks some of them, ``alone`` always among them):

(a) ``alone``: nothing else runs.
(b) ``worker_sync``: Worker-Sync captures the four pgbench tables (PostgreSQL -> MariaDB link, wal2json,
    2 applier shards) with the audit actor on (signed hash-chained log in the source PostgreSQL, schema
    worker_sync_audit, as a production config would keep it). It is started and caught up before pgbench
    starts, and stopped after (the seconds it needed to catch up after pgbench ended are reported).
(c) ``trigger_audit``: a classic audit table instead: an AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW
    trigger on each pgbench table writes (table, operation, time, user, old row, new row as jsonb) to
    ``audit_trail``; created before the run, dropped after.
(d) ``logical_floor``: no Worker-Sync; PostgreSQL's own C client ``pg_recvlogical`` (beside pgbench) streams a
    slot of the same output plugin as Worker-Sync's capture in this invocation (``--decoder``: wal2json with the
    capture's options and table list, or pgoutput ``proto_version=1`` on the publication of the four tables) to
    /dev/null. Its slot is created before the run and dropped after; it is started and caught up (its walsender
    has sent all WAL written so far) before pgbench starts, and stopped after (the seconds the walsender needed to
    send what pgbench wrote are reported). This is the floor: the walsender's decoding and sending, which any
    logical-decoding CDC tool costs the source, with nothing of Worker-Sync's (no parsing, applying, auditing,
    no queries against the source). Feedback as a real consumer gives it: a status update every second (``-s 1``,
    Worker-Sync's interval) and the confirmed position advanced once a second (``-F 1``; /dev/null is never
    fsynced). (b)/(d) is what Worker-Sync costs beyond the floor.

pgbench_history has no primary key, which capture needs (Worker-Sync refuses keyless tables); the bench
adds one to it once, before any run (``ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY``),
so all variants run on the same schema: the key costs each of them the same sequence call per
insert. pgbench's script names its columns, so it is unaffected.

Each repeat runs the variants in a rotated order; the figures are the medians of ``--repeat`` runs,
reported as (b)/(a), (c)/(a), (d)/(a) and (b)/(d). At the end MariaDB's copy of the four tables is compared
with PostgreSQL row by row (actors.harness.compare.diff_tables) after a last catch-up. Exit codes: 0 ok, 1 a run
failed or the copy differs, 2 bad usage, 3 servers, pgbench or pg_recvlogical (for logical_floor) missing,
130 Ctrl-C. JSON on stdout and in bench/results/pgbench_audit.json, a plot in bench/results/pgbench_audit.png,
progress on stderr.
``--quick``: scale 1, one client, 2 s runs, one repeat (the smoke test).

``--pin`` measures the cost as a DBA sees it on a database host: PostgreSQL (every server process) and pgbench
run on CPU 0, while Worker-Sync (this process, Ray and its actors), the target MariaDB and pg_recvlogical (which
stands for the consumer in (d)) run on CPU 1, so the figure is what capture takes from the source, not what two
programs sharing two cores take from each other. The walsenders, which (b) and (d) start after the pinning, are
forked by the postmaster and inherit its CPU: each run checks it (``walsender_cpus`` in the JSON).
Without it everything shares the cores (the co-located figure). ``--decoder`` picks the capture's output plugin.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import Endpoint, HarnessError, local_servers
from actors.harness.postgres import find_bindir
from actors.harness.secret_files import write_secret_file
from bench import report
from bench.report import say

NAME = "pgbench_audit"
VARIANTS = ("alone", "worker_sync", "trigger_audit", "logical_floor")
AUDIT_SCHEMA = "worker_sync_audit"
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
MARIADB_DDL = (
    "CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))",
    "CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88))",
    "CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84))",
    "CREATE TABLE pgbench_history (hid bigint PRIMARY KEY, tid int, bid int, aid int, delta int, "
    "mtime datetime(6), filler char(22))",
)
TRIGGER_FUNCTION = """
CREATE TABLE IF NOT EXISTS audit_trail (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), db_user text NOT NULL DEFAULT current_user,
    table_name text NOT NULL, operation text NOT NULL, old_row jsonb, new_row jsonb);
CREATE OR REPLACE FUNCTION audit_trail_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_trail (table_name, operation, old_row, new_row)
    VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END $$;
"""
#: Counts and sums that change with the initial copy and every pgbench transaction: equal on both sides means the
#: copy has caught up (confirmed row by row at the end).
FINGERPRINT = (
    "SELECT (SELECT count(*) FROM pgbench_history), (SELECT count(*) FROM pgbench_accounts), "
    "(SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts), "
    "(SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers), "
    "(SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches)"
)
TPS_LINE = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY_LINE = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
TRANSACTIONS_LINE = re.compile(r"^number of transactions actually processed: ([0-9]+)", re.MULTILINE)


class BenchError(RuntimeError):
    """A step of the bench failed (the message says which and why)."""


def pgbench_path() -> Path:
    return find_bindir() / "pgbench"


def recvlogical_path() -> Path:
    return find_bindir() / "pg_recvlogical"


#: With --pin: the source's CPU (PostgreSQL and pgbench) and Worker-Sync's (with the target).
SOURCE_CPU, SYNC_CPU = 0, 1


def pin_to_source_cpu() -> None:
    os.sched_setaffinity(0, {SOURCE_CPU})


def pin_to_sync_cpu() -> None:
    os.sched_setaffinity(0, {SYNC_CPU})


def _processes() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, command line) of every process still there."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
        found[int(entry.name)] = (parent, [arg.decode(errors="replace") for arg in argv if arg])
    return found


def pin_postgres(port: int) -> list[int]:
    """Move the harness PostgreSQL's postmaster (the one listening on ``port``) and its running children to
    SOURCE_CPU (backends forked later inherit the postmaster's affinity); returns the PIDs moved."""
    processes = _processes()
    postmasters = [
        pid
        for pid, (_, argv) in processes.items()
        if argv and argv[0].endswith("/postgres") and "-p" in argv and argv[argv.index("-p") + 1 :][:1] == [str(port)]
    ]
    if len(postmasters) != 1:
        raise BenchError(f"--pin: expected one PostgreSQL postmaster on port {port}, found {len(postmasters)}")
    moved = postmasters + [pid for pid, (parent, _) in processes.items() if parent == postmasters[0]]
    for pid in moved:
        os.sched_setaffinity(pid, {SOURCE_CPU})
    return moved


def pgbench(pg: Endpoint, args: list[str], timeout_s: float, *, pin: bool = False) -> str:
    """Run pgbench as the admin account (password through PGPASSWORD, never on the command line)."""
    command = [str(pgbench_path()), "-h", pg.host, "-p", str(pg.port), "-U", pg.admin.user, *args, pg.database]
    env = {**os.environ, "PGPASSWORD": pg.admin.password}
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            preexec_fn=pin_to_source_cpu if pin else None,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"pgbench {' '.join(args)}: no answer in {timeout_s:.0f}s") from None
    if proc.returncode != 0:
        raise BenchError(f"pgbench {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout + proc.stderr


def fingerprint(endpoint: Endpoint) -> tuple[int, ...]:
    with endpoint.connect("admin") as conn:
        if endpoint.engine == "postgresql":
            row = conn.execute(FINGERPRINT).fetchone()
        else:
            with conn.cursor() as cursor:
                cursor.execute(FINGERPRINT)
                row = cursor.fetchone()
    return tuple(int(v) for v in row)


#: Worker-Sync's slot (and, with pgoutput, its publication of the four tables, named like the slot).
SLOT = PUBLICATION = "ws_pgbench"
#: logical_floor's own slot, created before each of its runs and dropped after.
FLOOR_SLOT = "floor_pgbench"
#: pg_recvlogical's feedback in logical_floor. -s 1: a standby status update every second, as Worker-Sync's
#: stream sends one (actors.engines.postgresql.replication.FEEDBACK_INTERVAL_S), instead of the default 10 s.
#: -F 1: /dev/null is no regular file, so pg_recvlogical never fsyncs it; the interval only sets how often the
#: flush position it reports catches up with what it received: once a second, like a consumer confirming what it
#: has handled in batches (the default 10 s would hold the slot's confirmed position further back than Worker-Sync
#: does; 0 would confirm everything on every loop, which no consumer that writes somewhere does).
FLOOR_STATUS_INTERVAL_S = 1
FLOOR_FSYNC_INTERVAL_S = 1


def walsender_cpus(pg: Endpoint, slot: str, pin: bool) -> list[int]:
    """The CPUs the walsender streaming ``slot`` may use. A walsender is a backend the postmaster forks when the
    consumer connects, so it inherits the postmaster's affinity (pin_postgres): with --pin it must be on
    SOURCE_CPU like every PostgreSQL process, which this checks rather than assumes."""
    pid = walsender_pid(pg, slot)
    cpus = sorted(os.sched_getaffinity(pid))
    if pin and cpus != [SOURCE_CPU]:
        raise BenchError(f"--pin: slot {slot}'s walsender (PID {pid}) may run on CPUs {cpus}, not {SOURCE_CPU}")
    return cpus


#: Clock ticks per second of /proc's CPU times.
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_idle_s(cpu: int) -> float:
    """Seconds ``cpu`` has been idle (idle + iowait) since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            return (int(fields[4]) + int(fields[5])) / TICKS_PER_S
    raise BenchError(f"/proc/stat has no line for CPU {cpu}")


def process_cpu(pid: int) -> tuple[float, int]:
    """(CPU seconds used, times it went to sleep of its own accord) of process ``pid``: how much a walsender
    worked, and how often it waited for more WAL or for its consumer."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    switches = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("voluntary_ctxt_switches:")
    )
    return (int(stat[11]) + int(stat[12])) / TICKS_PER_S, switches


class SourceCpu:
    """Where the source's CPU went during one pgbench run, so that the TPS ratios can be explained rather than
    only stated: how idle CPU 0 was (with --pin) and what the run's walsender used while pgbench ran and while it
    caught up after (its wakeups say whether it decoded commit by commit or in larger bites)."""

    def __init__(self, walsender_pid: int | None) -> None:
        self.pid = walsender_pid
        self.wall0 = time.monotonic()
        self.idle0 = cpu_idle_s(SOURCE_CPU)
        self.walsender0 = process_cpu(self.pid) if self.pid else None
        self.during: dict[str, Any] = {}

    def pgbench_ended(self) -> None:
        wall = time.monotonic() - self.wall0
        self.during = {"source_cpu_idle_share": round((cpu_idle_s(SOURCE_CPU) - self.idle0) / wall, 3)}
        if self.walsender0 is not None:
            self.walsender1 = process_cpu(self.pid)
            cpu_s, wakeups = (now - then for now, then in zip(self.walsender1, self.walsender0, strict=True))
            self.during |= {
                "walsender_cpu_s": round(cpu_s, 2),
                "walsender_cpu_share": round(cpu_s / wall, 3),
                "walsender_wakeups_per_s": round(wakeups / wall),
            }

    def caught_up(self, transactions: float) -> dict[str, Any]:
        """The figures, once the consumer has caught up after the run (``transactions``: pgbench's count)."""
        if self.walsender0 is None:
            return self.during
        after_s = process_cpu(self.pid)[0] - self.walsender1[0]
        total_s = self.during["walsender_cpu_s"] + after_s
        return self.during | {
            "walsender_cpu_after_run_s": round(after_s, 2),
            "walsender_us_per_transaction": round(total_s / transactions * 1e6, 1) if transactions else None,
        }


SOURCE_CPU_KEYS = (
    "source_cpu_idle_share",
    "walsender_cpu_share",
    "walsender_wakeups_per_s",
    "walsender_cpu_after_run_s",
    "walsender_us_per_transaction",
)


def walsender_pid(pg: Endpoint, slot: str, timeout_s: float = 30.0) -> int:
    """The PID of the walsender streaming ``slot``, once its consumer has connected (a consumer that had nothing
    to catch up with may not have yet)."""
    deadline = time.monotonic() + timeout_s
    with pg.connect("admin") as conn:
        while True:
            row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is not None and row[0] is not None:
                return int(row[0])
            if time.monotonic() > deadline:
                raise BenchError(f"no walsender streams slot {slot} after {timeout_s:.0f} s")
            time.sleep(0.1)


class LogicalFloor:
    """The logical_floor variant's consumer: PostgreSQL's own C client pg_recvlogical streams a slot of the same
    output plugin and options as Worker-Sync's capture (wal2json with its options and table list, or pgoutput
    protocol 1 on the publication of the four tables) to /dev/null. With --pin it runs on SYNC_CPU, standing
    for the consumer; its walsender is a PostgreSQL process, on SOURCE_CPU."""

    def __init__(self, pg: Endpoint, decoder: str, tmp: Path, *, pin: bool) -> None:
        self.pg, self.decoder, self.pin = pg, decoder, pin
        self.log_path = tmp / "pg_recvlogical.log"
        #: wal2json 2.6+ takes Worker-Sync's numbers-as-text option; probed on the first slot (as the capture
        #: falls back without it).
        self.numbers_as_text: bool | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def options(self) -> dict[str, str]:
        if self.decoder == "pgoutput":
            from actors.engines.postgresql.pgoutput import plugin_options

            return plugin_options(PUBLICATION)
        from actors.engines.postgresql.wal2json import NUMBERS_AS_TEXT, PLUGIN_OPTIONS

        options = dict(PLUGIN_OPTIONS, **{"add-tables": ",".join(f"public.{t}" for t in TABLES)})
        if self.numbers_as_text:
            options[NUMBERS_AS_TEXT] = "1"
        return options

    def command(self) -> list[str]:
        options = [arg for key, value in self.options().items() for arg in ("-o", f"{key}={value}")]
        return [
            str(recvlogical_path()),
            *("-h", self.pg.host, "-p", str(self.pg.port), "-U", self.pg.capture.user, "-d", self.pg.database),
            "-w",  # the password comes from PGPASSWORD: never prompt
            "-n",  # exit on a lost connection instead of reconnecting: the run fails rather than measuring less
            *("--slot", FLOOR_SLOT, "--start", "-f", "/dev/null"),
            *("-s", str(FLOOR_STATUS_INTERVAL_S), "-F", str(FLOOR_FSYNC_INTERVAL_S)),
            *options,
        ]

    def start(self) -> list[int]:
        """Create the slot and start pg_recvlogical (caught_up says when it streams); the CPUs it may use."""
        from actors.engines.postgresql.replication import SESSION_OPTIONS

        with self.pg.connect("admin") as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (FLOOR_SLOT, self.decoder))
        if self.decoder == "wal2json" and self.numbers_as_text is None:
            self.numbers_as_text = self._takes_numbers_as_text()
        env = {**os.environ, "PGPASSWORD": self.pg.capture.password, "PGOPTIONS": SESSION_OPTIONS}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                preexec_fn=pin_to_sync_cpu if self.pin else None,
            )
        return sorted(os.sched_getaffinity(self.proc.pid))

    def _takes_numbers_as_text(self) -> bool:
        import psycopg

        from actors.engines.postgresql.wal2json import NUMBERS_AS_TEXT

        with self.pg.connect("admin") as conn:
            try:  # the plugin reads its options when decoding starts, even with nothing to decode
                conn.execute(
                    "SELECT count(*) FROM pg_logical_slot_peek_changes(%s, NULL, NULL, %s, '1')",
                    (FLOOR_SLOT, NUMBERS_AS_TEXT),
                )
            except psycopg.Error as exc:
                if NUMBERS_AS_TEXT not in str(exc):
                    raise
                return False
        return True

    def _check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"pg_recvlogical exited (code {self.proc.returncode}): {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-800:] or "no output"
        except OSError:
            return "no output"

    def caught_up(self, timeout_s: float) -> float:
        """Seconds until the walsender had decoded and sent all the WAL written before this call: past a marker,
        a logical message in a transaction of its own. Transactional, so that its commit flushes it: the walsender
        only reads flushed WAL, and a non-transactional message (PostgreSQL 15 has no flush option) waits for
        whatever flushes next, seconds later on an idle server (measured: 21 s). It costs the consumer a few
        bytes at most (pgoutput without `messages` does not pass it on)."""
        started = time.monotonic()
        with self.pg.connect("admin") as conn:
            marker = conn.execute("SELECT pg_logical_emit_message(true, 'pgbench_audit', 'marker')::text").fetchone()
            while True:
                self._check()
                row = conn.execute(
                    "SELECT r.sent_lsn > %s::pg_lsn FROM pg_replication_slots s "
                    "JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
                    (marker[0], FLOOR_SLOT),
                ).fetchone()
                if row is not None and row[0]:
                    return round(time.monotonic() - started, 2)
                if time.monotonic() - started > timeout_s:
                    raise BenchError(f"pg_recvlogical's walsender had not caught up in {timeout_s:.0f}s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop pg_recvlogical (Ctrl-C: it sends its last status and exits 0) and drop the slot."""
        proc, self.proc = self.proc, None
        if proc is None:
            self._drop_slot()  # if it was created
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        finally:
            self._drop_slot()
        if code != 0:
            raise BenchError(f"pg_recvlogical exited (code {code}): {self._log_tail()}")

    def _drop_slot(self) -> None:
        deadline = time.monotonic() + 30
        with self.pg.connect("admin") as conn:
            query = "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
            while (row := conn.execute(query, (FLOOR_SLOT,)).fetchone()) is not None and row[0]:
                if time.monotonic() > deadline:
                    raise BenchError(f"slot {FLOOR_SLOT} still active 30s after pg_recvlogical stopped")
                time.sleep(0.05)
            if row is not None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (FLOOR_SLOT,))


def build_config(
    pg: Endpoint, mariadb: Endpoint, tmp: Path, decoder: str = "wal2json", audit_db: Endpoint | None = None
) -> Any:
    """PostgreSQL -> MariaDB, the four pgbench tables, audit on: the store in the source's database, or in
    ``audit_db`` (a node named `audit`)."""
    import msgspec
    from nacl.signing import SigningKey

    from config import parse_config
    from config.model import (
        Audit,
        Config,
        Databases,
        Http,
        Link,
        MySqlNode,
        NamedPostgresNode,
        PostgresNode,
        TableMap,
        Tls,
    )
    from config.model import Supervisor as SupervisorSettings

    key = write_secret_file(tmp, "audit-signing-key", bytes(SigningKey.generate()).hex())
    audit_nodes = []
    if audit_db is not None:
        audit_nodes.append(
            NamedPostgresNode(
                name="audit",
                host=audit_db.host,
                port=audit_db.port,
                database=audit_db.database,
                username=audit_db.capture.user,
                password_file=write_secret_file(tmp, "audit-password", audit_db.capture.password),
                tls=Tls(mode="disable"),
            )
        )
    config = Config(
        nodes=audit_nodes,
        databases=Databases(
            postgresql=PostgresNode(
                host=pg.host,
                port=pg.port,
                database=pg.database,
                username=pg.capture.user,
                password_file=write_secret_file(tmp, "pg-password", pg.capture.password),
                tls=Tls(mode="disable"),
                slot_name=SLOT,
                decoder=decoder,  # type: ignore[arg-type]  # one of the config's literals (argparse choices)
            ),
            mysql=MySqlNode(
                host=mariadb.host,
                port=mariadb.port,
                database=mariadb.database,
                username=mariadb.apply.user,
                password_file=write_secret_file(tmp, "mariadb-password", mariadb.apply.password),
                tls=Tls(mode="disable"),
            ),
        ),
        links=[
            Link(
                name="bench-pgbench",
                source="postgresql",
                target="mysql",
                tables=[TableMap(source=f"public.{t}", target=f"{mariadb.database}.{t}") for t in TABLES],
            )
        ],
        audit=Audit(
            enabled=True,
            node="audit" if audit_db is not None else "postgresql",
            schema=AUDIT_SCHEMA,
            signing_key_file=key,
        ),
        supervisor=SupervisorSettings(applier_shards=2, state_dir=str(tmp / "state")),
        http=Http(token_env=None),
    )
    return parse_config(msgspec.yaml.encode(config), source="bench config pgbench")


class AuditBench:
    def __init__(
        self, pg: Endpoint, mariadb: Endpoint, args: argparse.Namespace, tmp: Path, audit_db: Endpoint | None = None
    ) -> None:
        self.pg, self.mariadb, self.args, self.tmp = pg, mariadb, args, tmp
        #: Where the audit store lives: None for the source's own database.
        self.audit_db = audit_db
        self.result: dict[str, Any] = {"runs": []}
        self.sync: Any = None
        self.floor = LogicalFloor(pg, args.decoder, tmp, pin=args.pin)
        self.ok = True

    def prepare(self) -> None:
        from actors.engines.postgresql.audit_store import create_schema

        args = self.args
        say(f"pgbench -i -s {args.scale} ...")
        pgbench(self.pg, ["-i", "-q", "-s", str(args.scale)], timeout_s=600)
        with self.pg.connect("admin") as conn:
            conn.execute("ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY")
            conn.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {self.pg.capture.user}")
            conn.execute(TRIGGER_FUNCTION)
            if self.audit_db is None:
                create_schema(conn, AUDIT_SCHEMA, self.pg.capture.user)
            if args.decoder == "pgoutput":
                conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {', '.join(TABLES)}")
        with self.mariadb.connect("admin") as conn, conn.cursor() as cursor:
            for ddl in MARIADB_DDL:
                cursor.execute(ddl)
        if self.audit_db is not None:
            with self.audit_db.connect("admin") as conn:
                create_schema(conn, AUDIT_SCHEMA, self.audit_db.capture.user)
        self.config = build_config(self.pg, self.mariadb, self.tmp, args.decoder, self.audit_db)
        say("Worker-Sync's first start: the initial snapshot of the pgbench tables ...")
        self._start_sync()
        self.result["initial_copy_s"] = self._catch_up(timeout_s=900)
        self._stop_sync()

    # -- Worker-Sync ---------------------------------------------------------------------------

    def _start_sync(self) -> None:
        from bench.sync_lag import RunningSync

        self.sync = RunningSync(self.config)
        self.sync.wait_ready(180)

    def _stop_sync(self) -> None:
        from contextlib import suppress

        import ray

        if self.sync is None:
            return
        sync, self.sync = self.sync, None
        sync.stop()
        audit = sync.supervisor.audit
        if audit is not None:
            with suppress(Exception):
                ray.kill(audit.actor)

    def _catch_up(self, timeout_s: float) -> float:
        """Seconds until MariaDB's copy equals PostgreSQL's (pgbench is not running then)."""
        started = time.monotonic()
        want = fingerprint(self.pg)
        while fingerprint(self.mariadb) != want:
            self.sync._check()
            if time.monotonic() - started > timeout_s:
                raise BenchError(f"Worker-Sync had not caught up {timeout_s:.0f}s after pgbench ended")
            time.sleep(0.2)
        return round(time.monotonic() - started, 2)

    # -- runs ----------------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        variants = args.variants
        for attempt in range(args.repeat):
            shift = attempt % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                self.result["runs"].append(self._one(variant, attempt))
        self.summarize()
        say("a last catch-up and a row-by-row comparison of MariaDB's copy ...")
        self._start_sync()
        try:
            self.result["final_catch_up_s"] = self._catch_up(timeout_s=900)
        finally:
            self._stop_sync()
        self._compare()

    def _one(self, variant: str, attempt: int) -> dict[str, Any]:
        args = self.args
        run: dict[str, Any] = {"variant": variant, "repeat": attempt + 1}
        if variant == "worker_sync":
            started = time.monotonic()
            self._start_sync()
            run["catch_up_before_s"] = self._catch_up(timeout_s=900)
            run["start_and_catch_up_s"] = round(time.monotonic() - started, 2)
            run["walsender_cpus"] = walsender_cpus(self.pg, SLOT, args.pin)
        elif variant == "trigger_audit":
            with self.pg.connect("admin") as conn:
                for table in TABLES:
                    conn.execute(
                        f"CREATE TRIGGER audit_trail_row AFTER INSERT OR UPDATE OR DELETE ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION audit_trail_row()"
                    )
        try:
            if variant == "logical_floor":
                run["consumer_cpus"] = self.floor.start()
                run["catch_up_before_s"] = self.floor.caught_up(timeout_s=60)
                run["walsender_cpus"] = walsender_cpus(self.pg, FLOOR_SLOT, args.pin)
            with self.pg.connect("admin") as conn:
                conn.execute("CHECKPOINT")  # each run starts without the previous one's dirty pages to write
            slot = {"worker_sync": SLOT, "logical_floor": FLOOR_SLOT}.get(variant)
            source_cpu = SourceCpu(walsender_pid(self.pg, slot) if slot else None)
            out = pgbench(
                self.pg,
                ["-n", "-c", str(args.clients), "-j", str(args.jobs), "-T", str(args.duration)],
                timeout_s=args.duration + 120,
                pin=args.pin,
            )
            source_cpu.pgbench_ended()
            tps, latency = TPS_LINE.search(out), LATENCY_LINE.search(out)
            if tps is None:
                raise BenchError(f"no tps line in pgbench's output: {out[-600:]}")
            run["tps"] = round(float(tps.group(1)), 1)
            run["latency_ms"] = float(latency.group(1)) if latency else None
            run["load_average_1m"] = round(os.getloadavg()[0], 2)
            if variant == "worker_sync":
                run["catch_up_after_s"] = self._catch_up(timeout_s=900)
            elif variant == "logical_floor":
                run["catch_up_after_s"] = self.floor.caught_up(timeout_s=900)
            transactions = TRANSACTIONS_LINE.search(out)
            run |= source_cpu.caught_up(float(transactions.group(1)) if transactions else 0.0)
        finally:
            if variant == "worker_sync":
                self._stop_sync()
            elif variant == "logical_floor":
                self.floor.stop()
            elif variant == "trigger_audit":
                with self.pg.connect("admin") as conn:
                    for table in TABLES:
                        conn.execute(f"DROP TRIGGER audit_trail_row ON {table}")
        say(f"#{attempt + 1} {variant}: {run['tps']:,.1f} tps, latency {run['latency_ms']} ms")
        return run

    def summarize(self) -> None:
        runs = self.result["runs"]
        variants = self.args.variants
        tps = {v: report.median([r["tps"] for r in runs if r["variant"] == v]) for v in variants}
        self.result["tps_median"] = {v: round(t, 1) for v, t in tps.items()}
        if tps["alone"] > 0:
            for variant in variants:
                if variant != "alone":
                    self.result[f"ratio_{variant}_to_alone"] = round(tps[variant] / tps["alone"], 3)
        if tps.get("logical_floor", 0) > 0 and "worker_sync" in tps:
            # What Worker-Sync costs beyond what any logical-decoding consumer costs.
            self.result["ratio_worker_sync_to_logical_floor"] = round(tps["worker_sync"] / tps["logical_floor"], 3)
        if "logical_floor" in variants:
            self.result["settings"]["logical_floor"]["plugin_options"] = self.floor.options()
            self.result["settings"]["logical_floor"]["command"] = " ".join(self.floor.command())
        self.result["source_cpu_median"] = {
            variant: {
                key: report.median([r[key] for r in runs if r["variant"] == variant and r.get(key) is not None])
                for key in SOURCE_CPU_KEYS
                if any(r.get(key) is not None for r in runs if r["variant"] == variant)
            }
            for variant in variants
        }
        for variant in ("worker_sync", "logical_floor"):
            if variant in variants:
                behind = [r["catch_up_after_s"] for r in runs if r["variant"] == variant]
                self.result[f"{variant}_catch_up_after_run_s_median"] = report.median(behind)
        with self.pg.connect("admin") as conn:
            self.result["audit_trail_rows"] = conn.execute("SELECT count(*) FROM audit_trail").fetchone()[0]
            self.result["replication_slots_after_runs"] = [
                row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")
            ]
        with (self.audit_db or self.pg).connect("admin") as conn:
            self.result["worker_sync_audit_entries"] = conn.execute(
                f"SELECT count(*) FROM {AUDIT_SCHEMA}.entries"
            ).fetchone()[0]

    def _compare(self) -> None:
        from actors.harness.compare import diff_tables

        differences = []
        for table in TABLES:
            found = diff_tables(self.pg, f"public.{table}", self.mariadb, f"{self.mariadb.database}.{table}")
            differences += [f"{table}: {d}" for d in found]
        self.result["target_equals_source"] = not differences
        self.result["differences"] = differences
        if differences:
            self.ok = False
        say(f"MariaDB's copy {'equals' if not differences else 'DIFFERS FROM'} the source")


LABELS = {
    "alone": "(a) pgbench alone",
    "worker_sync": "(b) + Worker-Sync capture & audit",
    "trigger_audit": "(c) + trigger audit table",
    "logical_floor": "(d) + pg_recvlogical to /dev/null (floor)",
}


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    medians = result.get("tps_median")
    if not medians:
        return None
    settings = result["settings"]
    shown = [v for v in VARIANTS if v in medians]
    return report.bar_plot(
        name,
        f"pgbench TPS, scale {settings['scale']}, {settings['clients']} clients, {settings['duration_s']} s "
        f"(median of {settings['repeat']})",
        [LABELS[v] for v in shown],
        [medians[v] for v in shown],
        "transactions/s",
    )


def answer(result: dict[str, Any]) -> str:
    medians = result.get("tps_median")
    if not medians or any(f"ratio_{v}_to_alone" not in result for v in medians if v != "alone"):
        return f"no figures: {result.get('error', 'n/a')}"
    what = {
        "worker_sync": "with Worker-Sync capturing and auditing",
        "trigger_audit": "with a trigger audit table",
        "logical_floor": "with pg_recvlogical streaming the same plugin to /dev/null (the floor)",
    }
    parts = [f"alone {medians['alone']:,.1f}"] + [
        f"{what[v]} {medians[v]:,.1f} ({result[f'ratio_{v}_to_alone']:.2f}x)" for v in VARIANTS[1:] if v in medians
    ]
    line = f"pgbench TPS (median): {'; '.join(parts)}"
    if "ratio_worker_sync_to_logical_floor" in result:
        line += f"; Worker-Sync vs the floor {result['ratio_worker_sync_to_logical_floor']:.2f}x"
    walsenders = [
        f"{variant} {cpu['walsender_cpu_share']:.0%} of a core, {cpu['walsender_us_per_transaction']:.1f} us/tx"
        for variant, cpu in result.get("source_cpu_median", {}).items()
        if "walsender_cpu_share" in cpu and "walsender_us_per_transaction" in cpu
    ]
    if walsenders:
        line += f"; the walsender used: {'; '.join(walsenders)}"
    return line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=2, help="pgbench scale factor (default 2)")
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients (default 2)")
    parser.add_argument("--jobs", type=int, default=2, help="pgbench threads (default 2)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per pgbench run (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; medians reported (default 3)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help=f"PostgreSQL and pgbench on CPU {SOURCE_CPU}, Worker-Sync and MariaDB on CPU {SYNC_CPU} (needs 2 CPUs)",
    )
    parser.add_argument(
        "--decoder",
        choices=("wal2json", "pgoutput"),
        default="wal2json",
        help="capture output plugin (default wal2json)",
    )
    parser.add_argument(
        "--audit-store",
        choices=("source", "separate"),
        default="source",
        help="the audit store in the source's database (default), or in a PostgreSQL of its own (with --pin: on "
        "Worker-Sync's CPU), as a deployment that keeps the audit trail apart from the audited data would",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated variants to run, `alone` among them (default {','.join(VARIANTS)})",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: scale 1, 1 client, 2 s, one repeat")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.clients, args.jobs, args.duration, args.repeat = 1, 1, 1, 2, 1
    if min(args.scale, args.clients, args.jobs, args.duration, args.repeat) < 1:
        parser.error("--scale, --clients, --jobs, --duration and --repeat must be positive")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or "alone" not in args.variants or len(set(args.variants)) != len(args.variants):
        parser.error(f"--variants: distinct names from {', '.join(VARIANTS)}, `alone` among them")
    if args.jobs > args.clients:
        parser.error("--jobs may not exceed --clients (pgbench's rule)")
    if args.pin and not {SOURCE_CPU, SYNC_CPU} <= os.sched_getaffinity(0):
        parser.error(f"--pin needs CPUs {SOURCE_CPU} and {SYNC_CPU}; this process may use {os.sched_getaffinity(0)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    if not pgbench_path().exists():
        print(
            f"pgbench not found next to PostgreSQL's server ({pgbench_path()}): install postgresql-15", file=sys.stderr
        )
        return 3
    if "logical_floor" in args.variants and not recvlogical_path().exists():
        print(
            f"pg_recvlogical not found next to PostgreSQL's server ({recvlogical_path()}): install postgresql-15 "
            "(or leave logical_floor out of --variants)",
            file=sys.stderr,
        )
        return 3
    result: dict[str, Any] = {
        "settings": {
            "scale": args.scale,
            "clients": args.clients,
            "jobs": args.jobs,
            "duration_s": args.duration,
            "repeat": args.repeat,
            "script": "pgbench built-in tpcb-like (-n: no vacuum between runs)",
            "variants": args.variants,
            "worker_sync": {
                "link": "postgresql -> mariadb",
                "applier_shards": 2,
                "audit": True,
                "decoder": args.decoder,
                "audit_store": args.audit_store,
            },
            "logical_floor": {
                "client": "pg_recvlogical to /dev/null, its own slot created before each run and dropped after",
                "plugin": args.decoder,
                "status_interval_s": FLOOR_STATUS_INTERVAL_S,
                "fsync_interval_s": FLOOR_FSYNC_INTERVAL_S,
            },
            "pinned": (
                f"PostgreSQL (walsenders included) and pgbench on CPU {SOURCE_CPU}; Worker-Sync, Ray, MariaDB and "
                f"pg_recvlogical on CPU {SYNC_CPU}"
                if args.pin
                else "no: everything shares the cores"
            ),
            "pgbench_history": "given a primary key (hid bigserial) before any run, in all variants",
        },
        "pgbench_version": subprocess.run(
            [str(pgbench_path()), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "notes": [
            "(b) runs while Worker-Sync's capture, two applier shards and the audit actor run beside PostgreSQL, "
            "MariaDB and pgbench; the audit store is where settings.worker_sync.audit_store says.",
            "(d) logical_floor: the walsender decoding the same plugin and sending to a C client that discards "
            "everything: what any logical-decoding CDC tool costs the source, with nothing of Worker-Sync's.",
            "catch_up_after_s: seconds Worker-Sync needed after pgbench ended until MariaDB's copy equalled the "
            "source (0 means it kept up); for logical_floor, until the walsender had sent all WAL written by then.",
            "source_cpu_idle_share: the part of CPU 0 left idle while pgbench ran (meaningful with --pin, where "
            "CPU 0 holds only PostgreSQL and pgbench). walsender_cpu_share: the part of a core the run's walsender "
            "used meanwhile; walsender_cpu_after_run_s: what it used while its consumer caught up after; "
            "walsender_us_per_transaction: both together per pgbench transaction; walsender_wakeups_per_s: how often "
            "it slept and woke (per commit when its consumer keeps up, less when it decodes in larger bites).",
            "Figures from a shared 2-core machine: noisy; compare the ratios of the same run.",
        ],
    }
    ok, interrupted = False, False
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ws-pgbench-") as tmp_name:
            tmp = Path(tmp_name)
            say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
            if args.pin:
                os.sched_setaffinity(0, {SYNC_CPU})  # MariaDB and Ray, started from here, inherit it
            with local_servers(tmp / "servers") as (pg, mariadb), ExitStack() as stack:
                import ray

                if args.pin:
                    say(f"pinned {len(pin_postgres(pg.port))} PostgreSQL processes to CPU {SOURCE_CPU}")
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                report.stop_on_signals()  # ray.init installed its own SIGTERM handler
                audit_db = None
                if args.audit_store == "separate":
                    from actors.harness.postgres import LocalPostgres

                    audit_server = LocalPostgres(tmp / "audit")
                    audit_server.start()
                    stack.callback(audit_server.stop)
                    audit_db = audit_server.endpoint
                bench = AuditBench(pg, mariadb, args, tmp, audit_db)
                bench.result = result | bench.result
                try:
                    bench.prepare()
                    bench.run()
                    ok = bench.ok
                except Exception as exc:
                    bench.result["error"] = f"{type(exc).__name__}: {exc}"
                    say(f"FAILED: {bench.result['error']}")
                finally:
                    bench._stop_sync()
                    ray.shutdown()
                result = bench.result
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
