"""A throwaway MariaDB (Debian's 10.11) with a ROW binlog carrying full images and column names, tuned
for tests."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import ClassVar

import pymysql

from actors.harness.packages import Requirement
from actors.harness.ports import LOOPBACK
from actors.harness.process import run_checked
from actors.harness.server import LocalServer

SERVER_ID = "1"
# 32M instead of the default 96M redo log: initialization writes the whole file.
INNODB_LOG_FILE_SIZE = "32M"

# Capture needs ROW events with full before/after images and column names (binlog_row_metadata=FULL,
# else they arrive as UNKNOWN_COL0..); GTIDs are always on in MariaDB. Durability is off for speed.
SETTINGS: dict[str, str] = {
    "log-bin": "binlog",
    "binlog-format": "ROW",
    "binlog-row-image": "FULL",
    "binlog-row-metadata": "FULL",
    "server-id": SERVER_ID,
    "gtid-strict-mode": "ON",
    "log-slave-updates": "ON",
    "innodb-flush-log-at-trx-commit": "2",
    "sync-binlog": "0",
    "innodb-buffer-pool-size": "128M",
    "innodb-log-file-size": INNODB_LOG_FILE_SIZE,
    "innodb-doublewrite": "OFF",
    "skip-name-resolve": "ON",
    "performance-schema": "OFF",
    "character-set-server": "utf8mb4",
    "max-connections": "200",
}


def find_binary(name: str) -> str | None:
    """mariadbd lives in /usr/sbin, which is not on a non-root PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    return found


class LocalMariaDB(LocalServer):
    """MariaDB as a direct child process, running as `mysql` when we are root."""

    engine: ClassVar[str] = "mariadb"
    os_account: ClassVar[str] = "mysql"
    admin_user: ClassVar[str] = "root"
    socket_file: ClassVar[str] = "mariadbd.sock"
    maintenance_database: ClassVar[str] = "mysql"
    death_signal: ClassVar[int] = signal.SIGKILL  # the data is thrown away anyway
    stop_steps: ClassVar[tuple[tuple[int, float], ...]] = ((signal.SIGTERM, 30.0),)

    def requirements(self) -> list[Requirement]:
        return [
            Requirement(
                "MariaDB server (mariadbd, mariadb-install-db)",
                "mariadb-server",
                lambda: bool(find_binary("mariadbd") and find_binary("mariadb-install-db")),
            )
        ]

    @property
    def config_path(self) -> Path:
        return self.home / "my.cnf"  # read by mariadbd as `mysql`: in its home, not in base_dir

    @property
    def init_file(self) -> Path:
        return self.run_dir / "init.sql"

    def initialize(self) -> None:
        user = [f"--user={self.run_as.name}"] if self.run_as else []
        run_checked(
            [
                str(find_binary("mariadb-install-db")),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                *user,
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
                f"--innodb-log-file-size={INNODB_LOG_FILE_SIZE}",
            ],
            log_path=self.log_path,
            run_as=None,
            cwd=self.home,
            timeout_s=120.0,
        )
        # Runs once at start-up, before connections are accepted: root gets its password without a
        # window where it has none. Kept out of the binlog (capture must never see it).
        password = self.admin.password.replace("\\", "\\\\").replace("'", "\\'")
        self.write_private(
            self.init_file,
            (
                "SET SESSION sql_log_bin = 0;\n"
                "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket "
                f"OR mysql_native_password USING PASSWORD('{password}');\n"
                f"CREATE USER 'root'@'{LOOPBACK}' IDENTIFIED BY '{password}';\n"
                f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{LOOPBACK}' WITH GRANT OPTION;\n"
            ),
        )

    def command(self) -> list[str]:
        options = {
            "datadir": str(self.data_dir),
            "port": str(self.port),
            "bind-address": LOOPBACK,
            "socket": str(self.socket_dir / self.socket_file),
            "pid-file": str(self.run_dir / "mariadbd.pid"),
            **SETTINGS,
            **self.settings,
        }
        if self.init_file.exists():
            options["init-file"] = str(self.init_file)
        if self.run_as is not None:
            # Popen already switched to this user; the option just makes mariadbd accept running as root's
            # child. (Letting mariadbd switch user itself would clear its parent-death signal.)
            options["user"] = self.run_as.name
        self.config_path.write_text(
            "# Written by actors.harness.mariadb.\n[mariadbd]\n"
            + "".join(f"{key} = {value}\n" for key, value in options.items())
        )
        return [str(find_binary("mariadbd")), f"--defaults-file={self.config_path}"]

    def accepts_connections(self) -> bool:
        try:
            pymysql.connect(
                host=LOOPBACK, port=self.port, user=self.admin.user, password=self.admin.password, connect_timeout=2
            ).close()
        except pymysql.err.MySQLError:
            return False
        self.init_file.unlink(missing_ok=True)  # done its job; do not keep a password on disk
        return True
