"""pg_chameleon, the peer in bench/peer_chameleon.py: installed into a throwaway venv, configured, run, stopped.

pg_chameleon (PyPI ``pg-chameleon``) replicates MySQL/MariaDB into PostgreSQL with the same binlog library
Worker-Sync uses (mysql-replication). Its own dependencies (psycopg2, older mysql-replication and Sphinx
ranges) must not touch the project's venv, so it lives in a venv of its own under the bench's temp dir.
It reads its configuration from ``~/.pg_chameleon/configuration/NAME.yml``: every command here runs with
HOME set to a directory of the bench's, so nothing outside the temp dir is read or written. pg_chameleon
refuses to run as root ("pg_chameleon cannot be run as root"): when the bench is root, the venv, the pip
install and every pg_chameleon command run as the unprivileged ``nobody`` account, in a directory it owns
(its parents must be traversable), with a Python interpreter that account can execute.

Every command's line and output tail is kept in ``Chameleon.log`` (passwords live only in the 0600 config
file, never on a command line), so a failure can be reported exactly.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

PACKAGE = "pg-chameleon"
VERSION = "2.0.21"
CONFIG = "bench"
SOURCE = "mysql"
#: pg_chameleon's own defaults (its config-example.yml), recorded in the result.
SETTINGS: dict[str, Any] = {
    "replica_batch_size": 10000,
    "replay_max_rows": 10000,
    "sleep_loop": 1,
    "copy_mode": "file",
    "copy_max_memory": "300M",
}


#: The account pg_chameleon runs as when the bench runs as root.
ACCOUNT = "nobody"


def run_as() -> dict[str, Any]:
    """subprocess keyword arguments that drop root for ACCOUNT; none when not root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(ACCOUNT)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def usable_python() -> str | None:
    """An interpreter with venv that the account pg_chameleon runs as can execute (root's pyenv may be 0700)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", None), shutil.which("python3", path=os.defpath)]
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import venv, ensurepip"], capture_output=True, timeout=30, cwd="/", **run_as()
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return candidate
    return None


class ChameleonError(RuntimeError):
    """A pg_chameleon step failed; ``step`` holds the command and the tail of its output."""

    def __init__(self, message: str, step: dict[str, Any]) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class Chameleon:
    """One pg_chameleon installation and configuration in ``base`` (a directory of the bench's)."""

    base: Path
    log: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None
    _replica: subprocess.Popen[bytes] | None = None

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "chameleon"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["HOME"] = str(self.home)
        env["PIP_NO_CACHE_DIR"] = "1"
        return env

    def _own(self, *paths: Path) -> None:
        """Hand the bench's files to the account pg_chameleon runs as (when that is not us)."""
        user = run_as()
        if not user:
            return
        for top in paths:
            for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
                os.chown(path, user["user"], user["group"])

    def _run(self, command: list[str], timeout_s: float, *, display: list[str] | None = None) -> str:
        started = time.monotonic()
        shown = " ".join(display or command)
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=self._env(),
                cwd=self.base,
                **run_as(),
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            step = {"command": shown, "error": f"timed out after {timeout_s:.0f}s", "output_tail": out[-3000:]}
            self.log.append(step)
            raise ChameleonError(f"{shown}: timed out after {timeout_s:.0f}s", step) from None
        except OSError as exc:
            step = {"command": shown, "error": f"{type(exc).__name__}: {exc}"}
            self.log.append(step)
            raise ChameleonError(f"{shown}: {exc}", step) from None
        output = (proc.stdout + proc.stderr).strip()
        step = {"command": shown, "exit": proc.returncode, "seconds": round(time.monotonic() - started, 1)}
        # pg_chameleon prints some failures and still exits 0: its FATAL/ERROR lines count as failures too.
        failed = proc.returncode != 0 or any(
            marker in output for marker in ("FATAL", "Traceback", "ERROR - ", "error state")
        )
        if failed:
            step["output_tail"] = output[-3000:]
        self.log.append(step)
        if failed:
            raise ChameleonError(f"{shown} failed (exit {proc.returncode}): {output[-600:]}", step)
        return output

    # -- install ---------------------------------------------------------------------------------

    def install(self, python: str | None = None, timeout_s: float = 600) -> str:
        """Create the venv and pip-install pg-chameleon==VERSION into it; returns the installed version."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self._own(self.base)
        python = python or usable_python()
        if python is None:
            step = {"command": "find a Python with venv", "error": f"no interpreter that {ACCOUNT} can run"}
            self.log.append(step)
            raise ChameleonError(step["error"], step)
        self._run([python, "-m", "venv", str(self.venv)], 120, display=["python", "-m", "venv", "VENV"])
        pip = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{PACKAGE}=={VERSION}"]
        self._run(pip, timeout_s, display=["VENV/bin/python", "-m", "pip", "install", f"{PACKAGE}=={VERSION}"])
        show = [str(self.venv / "bin" / "python"), "-m", "pip", "show", PACKAGE]
        out = self._run(show, 60, display=["VENV/bin/python", "-m", "pip", "show", PACKAGE])
        self.version = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")), None
        )
        return self.version or "unknown"

    def dependency_versions(self) -> dict[str, str]:
        """What pip resolved next to pg_chameleon (psycopg2, mysql-replication, PyMySQL, ...)."""
        out = self._run(
            [str(self.venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
            60,
            display=["VENV/bin/python", "-m", "pip", "list"],
        )
        wanted = {"pg-chameleon", "pg_chameleon", "mysql-replication", "pymysql", "psycopg2-binary", "pyyaml"}
        return {p["name"]: p["version"] for p in msgspec.json.decode(out) if p["name"].lower() in wanted}

    # -- configure -------------------------------------------------------------------------------

    def configure(self, mariadb: Any, pg: Any, *, target_schema: str, tables: list[str]) -> Path:
        """Write ~/.pg_chameleon/configuration/bench.yml (0600): MariaDB ``tables`` -> PG ``target_schema``.

        pg_chameleon logs in as the admin accounts on both sides: it needs RELOAD (FLUSH TABLES WITH READ
        LOCK) and REPLICATION rights on MariaDB, and creates its catalogue and target schemas in PostgreSQL.
        """
        conf_dir = self.home / ".pg_chameleon" / "configuration"
        conf_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("pid", "logs", "out"):
            (self.base / sub).mkdir(exist_ok=True)
        config = {
            "pid_dir": str(self.base / "pid"),
            "log_dir": str(self.base / "logs"),
            "log_dest": "stdout",
            "log_level": "info",
            "log_days_keep": 1,
            "rollbar_key": "",
            "rollbar_env": "",
            "type_override": {},
            "pg_conn": {
                "host": pg.host,
                "port": str(pg.port),
                "user": pg.admin.user,
                "password": pg.admin.password,
                "database": pg.database,
                "charset": "utf8",
            },
            "sources": {
                SOURCE: {
                    "db_conn": {
                        "host": mariadb.host,
                        "port": str(mariadb.port),
                        "user": mariadb.admin.user,
                        "password": mariadb.admin.password,
                        "charset": "utf8",
                        "connect_timeout": 10,
                    },
                    "schema_mappings": {mariadb.database: target_schema},
                    "limit_tables": [f"{mariadb.database}.{t}" for t in tables],
                    "skip_tables": [],
                    "grant_select_to": [],
                    "lock_timeout": "120s",
                    "my_server_id": 4171,
                    "batch_retention": "1 day",
                    "out_dir": str(self.base / "out"),
                    "on_error_replay": "exit",
                    "on_error_read": "exit",
                    "auto_maintenance": "disabled",
                    "gtid_enable": False,
                    "type": "mysql",
                    "skip_events": {"insert": [], "delete": [], "update": []},
                    "keep_existing_schema": False,
                    "net_read_timeout": 600,
                    **SETTINGS,
                }
            },
            "fillfactor": {},
        }
        path = conf_dir / f"{CONFIG}.yml"
        path.touch(mode=0o600)
        path.write_bytes(msgspec.yaml.encode(config))
        self._own(self.home, *(self.base / sub for sub in ("pid", "logs", "out")))
        return path

    def _command(self, *args: str) -> list[str]:
        return [str(self.executable), *args, "--config", CONFIG]

    def prepare(self, timeout_s: float = 300) -> None:
        """create_replica_schema, add_source, init_replica (copies the tables, records the binlog position)."""
        self._run(self._command("create_replica_schema"), 120, display=["chameleon", "create_replica_schema"])
        self._run(self._command("add_source", "--source", SOURCE), 120, display=["chameleon", "add_source"])
        self._run(
            self._command("init_replica", "--source", SOURCE, "--debug"),
            timeout_s,
            display=["chameleon", "init_replica", "--source", SOURCE, "--debug"],
        )

    # -- replicate -------------------------------------------------------------------------------

    def start(self) -> None:
        """start_replica as a child process (log_dest stdout keeps it in the foreground, at log level info;
        --debug would log every batch at debug level); stop() ends it."""
        log = open(self.base / "replica.log", "ab")  # noqa: SIM115 - the child writes it until stop()
        command = self._command("start_replica", "--source", SOURCE)
        self.log.append({"command": f"chameleon start_replica --source {SOURCE}", "started": time.time()})
        self._replica = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.base,
            start_new_session=True,
            **run_as(),
        )
        log.close()

    def check_running(self) -> None:
        if self._replica is not None and self._replica.poll() is not None:
            tail = self.replica_log_tail()
            step = {"command": "chameleon start_replica", "exit": self._replica.returncode, "output_tail": tail}
            self.log.append(step)
            self._replica = None
            raise ChameleonError(f"start_replica exited ({step['exit']}): {tail[-600:]}", step)

    def replica_log_tail(self, chars: int = 3000) -> str:
        path = self.base / "replica.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """SIGINT (pg_chameleon's own stop: it ends its read and replay processes), then the process group."""
        proc, self._replica = self._replica, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Its read/replay children are daemonic multiprocessing children; make sure none outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
