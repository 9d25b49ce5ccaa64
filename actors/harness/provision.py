"""Turn a server reachable with admin credentials into a test endpoint: accounts plus a first database.

Shared by the local servers and by external test servers (CI containers named by a DSN).
"""

from __future__ import annotations

import secrets

from actors.harness import grants
from actors.harness.endpoint import Credentials, Endpoint

CAPTURE_USER = "ws_capture"
APPLY_USER = "ws_apply"
DEFAULT_DATABASE = "worker_sync"


def new_password() -> str:
    """Random, URL-safe alphabet: no quoting issues in any config file or SQL."""
    return secrets.token_urlsafe(24)


def least_privilege_credentials() -> tuple[Credentials, Credentials]:
    return Credentials(CAPTURE_USER, new_password()), Credentials(APPLY_USER, new_password())


def provision(admin_endpoint: Endpoint, database: str = DEFAULT_DATABASE) -> Endpoint:
    """Create (or reset the passwords of) the capture and apply accounts, then create `database` with
    their grants. `admin_endpoint.database` must already exist; the result is bound to `database`."""
    capture, apply = admin_endpoint.capture, admin_endpoint.apply
    with admin_endpoint.connect("admin") as conn:
        if admin_endpoint.engine == "postgresql":
            grants.pg_create_users(conn, (capture.user, capture.password), (apply.user, apply.password))
        else:
            grants.mariadb_create_users(conn, (capture.user, capture.password), (apply.user, apply.password))
    return admin_endpoint.create_database(database)
