"""The least-privilege accounts capture and apply use, as SQL, in one place for both engines.

capture: reads changes (PostgreSQL: REPLICATION for logical slots; MariaDB: REPLICATION SLAVE to stream the
binlog, BINLOG MONITOR for SHOW MASTER STATUS) and SELECTs the tables (initial snapshots).
apply: SELECT/INSERT/UPDATE/DELETE on the tables, nothing else: no DDL, no superuser.
"""

from __future__ import annotations

import re
import time

import psycopg
import pymysql
from psycopg import sql

from actors.harness.errors import HarnessError

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# MariaDB account host part: the local servers listen on 127.0.0.1 only; external test servers (CI
# containers) see clients from other addresses.
MARIADB_USER_HOST = "%"


def check_name(name: str) -> str:
    """Database and user names are lower-case identifiers: the same on both engines, no quoting surprises."""
    if not _NAME.match(name):
        raise HarnessError(f"invalid name {name!r}: use lower-case letters, digits and _ (at most 63)")
    return name


# --- PostgreSQL -------------------------------------------------------------------------------------------


def pg_quiet(conn: psycopg.Connection) -> None:
    """Keep statements carrying passwords out of the server log, even when they fail."""
    conn.execute("SET log_min_error_statement = panic")
    conn.execute("SET log_statement = none")


def pg_create_users(conn: psycopg.Connection, capture: tuple[str, str], apply: tuple[str, str]) -> None:
    """Create (or reset) the capture and apply roles; `conn` is an admin connection."""
    pg_quiet(conn)
    for (user, password), attrs in ((capture, "LOGIN REPLICATION"), (apply, "LOGIN NOREPLICATION")):
        check_name(user)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        conn.execute(
            sql.SQL("{} ROLE {} WITH {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"),
                sql.Identifier(user),
                sql.SQL(attrs),
                sql.Literal(password),
            )
        )


def pg_create_database(conn: psycopg.Connection, name: str) -> None:
    """CREATE DATABASE, owned by the connected admin (needs an autocommit connection)."""
    conn.execute(
        sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(check_name(name)))
    )


def pg_grant_database(conn: psycopg.Connection, *, owner: str, capture: str, apply: str) -> None:
    """Least privileges on the database `conn` is connected to, also for tables `owner` creates later."""
    ident = sql.Identifier
    db = ident(conn.info.dbname)
    both = sql.SQL(", ").join([ident(capture), ident(apply)])
    for stmt in (
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, both),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(both),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(ident(capture)),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(ident(apply)),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(
            ident(owner), ident(capture)
        ),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(ident(owner), ident(apply)),
    ):
        conn.execute(stmt)


def pg_drop_database(conn: psycopg.Connection, name: str, *, timeout_s: float = 10.0) -> None:
    """Drop a database and first its logical slots (a slot blocks DROP DATABASE and holds one of the
    server's max_replication_slots); `conn` is an autocommit admin connection to another database."""
    check_name(name)
    deadline = time.monotonic() + timeout_s
    while True:
        conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE database = %s AND active_pid IS NOT NULL",
            (name,),
        )
        left = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)).fetchall()
        for (slot,) in left:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            except psycopg.errors.ObjectInUse:
                pass  # its backend is still exiting; next round
            except psycopg.errors.UndefinedObject:
                pass
        if not conn.execute("SELECT 1 FROM pg_replication_slots WHERE database = %s", (name,)).fetchone():
            break
        if time.monotonic() > deadline:
            raise HarnessError(f"replication slots of database {name} still in use after {timeout_s}s")
        time.sleep(0.05)
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- MariaDB ----------------------------------------------------------------------------------------------


def _account(user: str) -> str:
    return f"'{check_name(user)}'@'{MARIADB_USER_HOST}'"


def mariadb_quiet(cur: pymysql.cursors.Cursor) -> None:
    """Keep account and database set-up out of the binlog: capture must not see (or replicate) it."""
    cur.execute("SET SESSION sql_log_bin = 0")


def mariadb_create_users(conn: pymysql.Connection, capture: tuple[str, str], apply: tuple[str, str]) -> None:
    """Create (or reset) the capture and apply accounts; `conn` is an admin connection."""
    with conn.cursor() as cur:
        mariadb_quiet(cur)
        for user, password in (capture, apply):
            cur.execute(f"CREATE USER IF NOT EXISTS {_account(user)}")
            cur.execute(f"ALTER USER {_account(user)} IDENTIFIED BY {conn.escape(password)}")
        cur.execute(f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {_account(capture[0])}")


def mariadb_create_database(conn: pymysql.Connection, name: str) -> None:
    with conn.cursor() as cur:
        mariadb_quiet(cur)
        cur.execute(f"CREATE DATABASE `{check_name(name)}` CHARACTER SET utf8mb4")


def mariadb_grant_database(conn: pymysql.Connection, name: str, *, capture: str, apply: str) -> None:
    db = check_name(name)
    with conn.cursor() as cur:
        mariadb_quiet(cur)
        cur.execute(f"GRANT SELECT ON `{db}`.* TO {_account(capture)}")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO {_account(apply)}")


def mariadb_grant_writes(conn: pymysql.Connection, name: str, user: str) -> None:
    """Let ``user`` (a capture account of a bidirectional node) write the database's tables too."""
    with conn.cursor() as cur:
        mariadb_quiet(cur)
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{check_name(name)}`.* TO {_account(user)}")


def mariadb_drop_database(conn: pymysql.Connection, name: str, *, capture: str, apply: str) -> None:
    """Like PostgreSQL's DROP DATABASE ... WITH (FORCE): sessions using it are killed first, and waiting for
    a table lock held elsewhere is bounded (the default lock_wait_timeout is a year)."""
    db = check_name(name)
    with conn.cursor() as cur:
        mariadb_quiet(cur)
        cur.execute("SET SESSION lock_wait_timeout = 30")
        cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (db,))
        for (session,) in cur.fetchall():
            try:
                cur.execute(f"KILL {int(session)}")
            except pymysql.err.MySQLError as exc:
                if exc.args[0] != 1094:  # "Unknown thread id": it ended meanwhile
                    raise
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        for user in (capture, apply):
            try:
                cur.execute(f"REVOKE ALL PRIVILEGES ON `{db}`.* FROM {_account(user)}")
            except pymysql.err.MySQLError as exc:
                if exc.args[0] != 1141:  # "There is no such grant defined": nothing to revoke
                    raise
        # Grants on single tables (what `worker-sync init` gives) outlive DROP DATABASE: the shared accounts
        # must leave a test with no more rights than they came with.
        cur.execute("DELETE FROM mysql.tables_priv WHERE Db = %s", (db,))
        if cur.rowcount:
            cur.execute("FLUSH PRIVILEGES")
