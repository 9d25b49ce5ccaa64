"""Start-up checks: refuse to capture from a server whose settings or grants would lose or garble changes.

Every problem found is reported at once, each with the exact change that fixes it, so one round trip to
the DBA is enough. Values are read with ``@@GLOBAL``: a session may override binlog_format for itself,
but capture cares about what every writer's session starts with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from actors.core.errors import SourceMisconfigured
from actors.engines.mariadb.schema import TableInfo, load_tables, quote, split_namespace

log = logging.getLogger(__name__)

_GLOBAL_GRANT = re.compile(r"^GRANT (.+?) ON \*\.\* TO ", re.IGNORECASE)


@dataclass(frozen=True)
class ServerFacts:
    """What the checks learned and capture needs later."""

    version: str
    #: MariaDB ``@@server_id`` / MySQL ``@@server_uuid``: which server a binlog file:pos belongs to.
    server: str
    gtid_enabled: bool


def _variables(cur: Any, names: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        try:
            cur.execute(f"SELECT @@GLOBAL.{name}")
            values[name] = cur.fetchone()[0]
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1193:  # unknown system variable: this server does not have it
                raise
            values[name] = None
    return values


def _setting(name: str, value: Any, wanted: str, why: str) -> str | None:
    shown = str(value).upper() if value is not None else None
    if shown == wanted:
        return None
    if shown is None:
        return f"the server has no `{name}` variable (MariaDB >= 10.5 or MySQL >= 8.0.14 is needed) so {why}"
    return f"{name} is {shown}; set `{name}={wanted}` in the server config (or `SET GLOBAL {name}={wanted}`) so {why}"


def check_settings(cur: Any, *, flavor: str) -> tuple[list[str], ServerFacts]:
    names = ["version", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "server_id"]
    if flavor == "mysql":
        names += ["server_uuid", "gtid_mode", "binlog_row_value_options"]
    values = _variables(cur, names)
    problems: list[str] = []
    if str(values["log_bin"]) not in ("1", "ON"):
        problems.append(
            "log_bin is OFF; start the server with `log-bin` (for example `log-bin=binlog` in the "
            "[mariadbd]/[mysqld] section; it cannot be set at run time) so changes are logged at all"
        )
    for problem in (
        _setting("binlog_format", values["binlog_format"], "ROW", "every change is logged as rows"),
        _setting("binlog_row_image", values["binlog_row_image"], "FULL", "updates and deletes carry whole rows"),
        _setting("binlog_row_metadata", values["binlog_row_metadata"], "FULL", "column names reach the binlog"),
    ):
        if problem:
            problems.append(problem)
    gtid_enabled = True  # MariaDB always logs GTIDs
    if flavor == "mysql":
        if str(values.get("binlog_row_value_options") or "").upper() == "PARTIAL_JSON":
            problems.append(
                "binlog_row_value_options is PARTIAL_JSON; set `binlog_row_value_options=''` "
                "(`SET GLOBAL binlog_row_value_options=''`) so JSON updates carry whole documents"
            )
        gtid_enabled = str(values.get("gtid_mode") or "").upper() == "ON"
        if not gtid_enabled:
            log.warning(
                "mysql server: gtid_mode is %s; resuming by file:pos only (set `gtid_mode=ON` and "
                "`enforce_gtid_consistency=ON` to resume on another server after a failover)",
                values.get("gtid_mode"),
            )
    server = str(values["server_uuid"] if flavor == "mysql" else values["server_id"])
    return problems, ServerFacts(str(values["version"]), server, gtid_enabled)


def check_grants(cur: Any, *, flavor: str, user: str) -> list[str]:
    """REPLICATION SLAVE (to stream) and BINLOG MONITOR / REPLICATION CLIENT (to list binlogs)."""
    cur.execute("SHOW GRANTS")
    granted: set[str] = set()
    for (line,) in cur.fetchall():
        match = _GLOBAL_GRANT.match(line)
        if match:
            granted.update(p.strip().upper() for p in match.group(1).split(","))
    if "ALL PRIVILEGES" in granted:
        return []
    monitor = "BINLOG MONITOR" if flavor == "mariadb" else "REPLICATION CLIENT"
    # MariaDB >= 10.5 shows REPLICATION CLIENT as its new name, BINLOG MONITOR; accept either spelling.
    have_monitor = bool(granted & {"BINLOG MONITOR", "REPLICATION CLIENT"})
    missing = [
        p for p, ok in (("REPLICATION SLAVE", "REPLICATION SLAVE" in granted), (monitor, have_monitor)) if not ok
    ]
    if not missing:
        return []
    return [
        f"user `{user}` lacks {' and '.join(missing)}; run `GRANT {', '.join(missing)} ON *.* TO "
        f"'{user}'@'<host>'` so it can read the binlog"
    ]


def check_tables(cur: Any, infos: dict[str, TableInfo], tables: Sequence[str], *, user: str) -> list[str]:
    problems: list[str] = []
    for name in tables:
        info = infos.get(name)
        if info is None:
            problems.append(
                f"table `{name}` does not exist or user `{user}` cannot see it; create it or run "
                f"`GRANT SELECT ON {name} TO '{user}'@'<host>'`"
            )
            continue
        if not info.primary_key:
            problems.append(
                f"table `{name}` has no primary key; add one (`ALTER TABLE {name} ADD PRIMARY KEY "
                f"(...)`): changes are matched to target rows by key"
            )
            continue
        schema, table = split_namespace(name)
        try:
            cur.execute(f"SELECT 1 FROM {quote(schema)}.{quote(table)} LIMIT 0")
            cur.fetchall()
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in (1142, 1143):  # SELECT / column denied
                raise
            problems.append(
                f"user `{user}` cannot SELECT from `{name}`; run `GRANT SELECT ON {name} TO "
                f"'{user}'@'<host>'` (the initial snapshot reads it)"
            )
        if info.engine and info.engine.upper() != "INNODB":
            log.warning(
                "table `%s` uses the %s engine: a snapshot of a non-transactional table is not "
                "consistent with the binlog; convert it to InnoDB",
                name,
                info.engine,
            )
    return problems


def run_checks(
    conn: Any, *, subject: str, flavor: str, user: str, tables: Sequence[str]
) -> tuple[ServerFacts, dict[str, TableInfo]]:
    """All checks; SourceMisconfigured listing every problem found, or what capture needs to start."""
    with conn.cursor() as cur:
        problems, facts = check_settings(cur, flavor=flavor)
        problems += check_grants(cur, flavor=flavor, user=user)
        infos = load_tables(conn, tables, flavor=flavor)
        problems += check_tables(cur, infos, tables, user=user)
    if problems:
        raise SourceMisconfigured(f"{subject}: " + "; ".join(problems))
    return facts, infos
