"""Where a server is and who may log in: what capture, apply and tests need to connect."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pymysql

from actors.harness import grants
from actors.harness.errors import HarnessError

ENGINES = ("postgresql", "mariadb")
ROLES = ("admin", "capture", "apply")


@dataclass(frozen=True)
class Credentials:
    """A user and password; the password stays out of repr() so it never reaches logs or test output."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Endpoint:
    """One database on one server, with the admin and the two least-privilege accounts."""

    engine: str  # "postgresql" | "mariadb"
    host: str
    port: int
    database: str
    admin: Credentials
    capture: Credentials
    apply: Credentials

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise HarnessError(f"unknown engine {self.engine!r}; expected one of {ENGINES}")

    def credentials(self, role: str) -> Credentials:
        if role not in ROLES:
            raise HarnessError(f"unknown role {role!r}; expected one of {ROLES}")
        creds: Credentials = getattr(self, role)
        return creds

    def connect(self, role: str = "admin", *, database: str | None = None, autocommit: bool = True) -> Any:
        """A new psycopg.Connection (postgresql) or pymysql.Connection (mariadb) as `role`."""
        creds = self.credentials(role)
        dbname = self.database if database is None else database
        if self.engine == "postgresql":
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=creds.user,
                password=creds.password,
                dbname=dbname,
                autocommit=autocommit,
            )
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=creds.user,
            password=creds.password,
            database=dbname,
            autocommit=autocommit,
            charset="utf8mb4",
        )

    def with_database(self, name: str) -> Endpoint:
        """The same server and accounts, bound to another (existing) database."""
        return dataclasses.replace(self, database=grants.check_name(name))

    def create_database(self, name: str) -> Endpoint:
        """Create an empty database where capture and apply have the same least privileges as in the
        server's first one, and return an endpoint bound to it."""
        grants.check_name(name)
        if self.engine == "postgresql":
            with self.connect("admin") as conn:
                grants.pg_create_database(conn, name)
            with self.connect("admin", database=name) as conn:
                grants.pg_grant_database(conn, owner=self.admin.user, capture=self.capture.user, apply=self.apply.user)
        else:
            with self.connect("admin", database="") as conn:
                grants.mariadb_create_database(conn, name)
                grants.mariadb_grant_database(conn, name, capture=self.capture.user, apply=self.apply.user)
        return self.with_database(name)

    def drop_database(self, name: str) -> None:
        """Drop a database made by create_database(), with its replication slots and grants."""
        grants.check_name(name)
        if self.engine == "postgresql":
            other = self.database if self.database != name else "postgres"
            with self.connect("admin", database=other) as conn:
                grants.pg_drop_database(conn, name)
        else:
            with self.connect("admin", database="") as conn:
                grants.mariadb_drop_database(conn, name, capture=self.capture.user, apply=self.apply.user)
