"""libpq connection strings from a node's config (TLS included); the password never appears in logs."""

from __future__ import annotations

from psycopg.abc import ConnParam
from psycopg.conninfo import make_conninfo

from config.model import PostgresNode

# Our TLS modes are libpq's sslmode values.
_SSL_FILES = {"ca_file": "sslrootcert", "cert_file": "sslcert", "key_file": "sslkey"}


def conninfo_for(node: PostgresNode, password: str | None, *, application_name: str = "worker-sync") -> str:
    params: dict[str, ConnParam] = {
        "host": node.host,
        "port": node.port,
        "dbname": node.database,
        "user": node.username,
        "sslmode": node.tls.mode,
        "application_name": application_name,
        "connect_timeout": 10,
    }
    if password is not None:
        params["password"] = password
    for field, keyword in _SSL_FILES.items():
        value = getattr(node.tls, field)
        if value:
            params[keyword] = value
    return make_conninfo("", **params)


def redact(conninfo: str) -> str:
    """The conninfo without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)
