"""A throwaway PostgreSQL (15, from Debian) with logical decoding and wal2json, tuned for tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import ClassVar

import psycopg

from actors.harness.packages import Requirement
from actors.harness.ports import LOOPBACK
from actors.harness.process import run_checked
from actors.harness.server import LocalServer

MAJOR = 15
DEBIAN_BINDIR = Path(f"/usr/lib/postgresql/{MAJOR}/bin")

# Logical decoding for capture; durability off because the data is thrown away (start and tests are faster).
# synchronous_commit stays ON: logical decoding only reads flushed WAL, so with it off a committed change
# reached a slot up to wal_writer_delay (200 ms) later (measured), racing every capture test; with fsync off
# the flush is a plain write(), so keeping it on cost nothing measurable (2,000 single-row commits: 0.22 s
# vs 0.24 s).
SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "100",
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "password_encryption": "scram-sha-256",
    "logging_collector": "off",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_min_messages": "warning",
    "timezone": "UTC",
}

# Password (SCRAM) for everyone, over TCP and the socket: tests see the same auth as production.
PG_HBA = """\
# Written by actors.harness.postgres.
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
"""


def find_bindir() -> Path:
    """Debian's versioned directory, else whatever `pg_config --bindir` says."""
    if (DEBIAN_BINDIR / "postgres").exists():
        return DEBIAN_BINDIR
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "postgres").exists():
            return Path(out.stdout.strip())
    return DEBIAN_BINDIR


def find_pkglibdir(bindir: Path) -> Path:
    """Where output plugins such as wal2json.so live, as this installation's pg_config reports it."""
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return Path(f"/usr/lib/postgresql/{MAJOR}/lib")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class LocalPostgres(LocalServer):
    """PostgreSQL as a direct child process, running as `postgres` when we are root."""

    engine: ClassVar[str] = "postgresql"
    os_account: ClassVar[str] = "postgres"
    admin_user: ClassVar[str] = "ws_admin"
    maintenance_database: ClassVar[str] = "postgres"
    death_signal: ClassVar[int] = signal.SIGQUIT  # immediate shutdown: the postmaster also ends its children
    # SIGINT: fast shutdown (ends sessions, checkpoints); SIGQUIT: immediate, if that hangs.
    stop_steps: ClassVar[tuple[tuple[int, float], ...]] = ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0))

    @property
    def bindir(self) -> Path:
        return find_bindir()

    def requirements(self) -> list[Requirement]:
        return [
            Requirement(
                f"PostgreSQL {MAJOR} server (postgres, initdb)",
                f"postgresql-{MAJOR}",
                lambda: (find_bindir() / "postgres").exists() and (find_bindir() / "initdb").exists(),
            ),
            Requirement(
                f"wal2json output plugin (wal2json.so in PostgreSQL {MAJOR}'s pkglibdir)",
                f"postgresql-{MAJOR}-wal2json",
                lambda: (find_pkglibdir(find_bindir()) / "wal2json.so").exists(),
            ),
        ]

    def initialize(self) -> None:
        pwfile = self.run_dir / "initdb.pw"
        self.write_private(pwfile, self.admin.password + "\n")
        try:
            run_checked(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.admin.user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ],
                log_path=self.log_path,
                run_as=self.run_as,
                cwd=self.home,
                timeout_s=120.0,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)  # keeps initdb's owner and mode
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# Added by actors.harness.postgres.\n")
            for key, value in {**SETTINGS, **self.settings}.items():
                conf.write(f"{key} = {_quote(value)}\n")

    def command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(
                host=LOOPBACK,
                port=self.port,
                user=self.admin.user,
                password=self.admin.password,
                dbname=self.maintenance_database,
                connect_timeout=2,
            ):
                return True
        except psycopg.OperationalError:
            return False
