"""Endpoints on servers someone else runs (e.g. CI service containers), given an admin DSN.

Each call creates its own uniquely named database, so concurrent or earlier runs are not disturbed; the
capture and apply accounts are shared per server and get new passwords.
"""

from __future__ import annotations

import secrets
from urllib.parse import unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict

from actors.harness.endpoint import Credentials, Endpoint
from actors.harness.errors import HarnessError
from actors.harness.provision import DEFAULT_DATABASE, least_privilege_credentials, provision


def _database_name() -> str:
    return f"{DEFAULT_DATABASE}_{secrets.token_hex(4)}"


def postgres_from_dsn(dsn: str) -> Endpoint:
    """`dsn`: a libpq conninfo or postgresql:// URI for a superuser (with its password)."""
    params = conninfo_to_dict(dsn)
    if not params.get("user"):
        raise HarnessError("the PostgreSQL DSN must name the admin user")
    capture, apply = least_privilege_credentials()
    admin = Endpoint(
        engine="postgresql",
        host=str(params.get("host") or "127.0.0.1"),
        port=int(params.get("port") or 5432),
        database=str(params.get("dbname") or "postgres"),
        admin=Credentials(str(params["user"]), str(params.get("password") or "")),
        capture=capture,
        apply=apply,
    )
    return provision(admin, _database_name())


def mariadb_from_url(url: str) -> Endpoint:
    """`url`: mysql://user:password@host:port for an account that may create users and grant."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or not parts.username:
        raise HarnessError("expected a MariaDB URL like mysql://root:password@127.0.0.1:3306")
    capture, apply = least_privilege_credentials()
    admin = Endpoint(
        engine="mariadb",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        database="mysql",
        admin=Credentials(unquote(parts.username), unquote(parts.password or "")),
        capture=capture,
        apply=apply,
    )
    return provision(admin, _database_name())
