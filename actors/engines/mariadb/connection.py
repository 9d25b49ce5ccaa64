"""How capture connects to a MariaDB/MySQL server: pymysql arguments, TLS, and driver errors translated.

TLS modes (``config.model.Tls``) map to pymysql as follows:

=============  =====================================================================================
``disable``    ``ssl_disabled=True``: never TLS.
``prefer``     pymysql's default: TLS when the server offers it, without checking its certificate;
               plain text otherwise.
``require``    an ``SSLContext`` that does not check the certificate: TLS or no connection.
``verify-ca``  an ``SSLContext`` with ``ca_file``: the chain must verify, the host name is not checked.
``verify-full`` as ``verify-ca``, and the certificate must name the host we connect to.
=============  =====================================================================================

A client certificate (``cert_file`` + ``key_file``) is loaded into the context in every mode but
``disable``. pymysql treats any ``ssl=`` context as "TLS required", which is what the last three need.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import pymysql

from actors.core.errors import SourceMisconfigured, SourceUnavailable, WorkerSyncError
from config.model import MySqlNode, Tls

#: Server errors that a human must fix (wrong password, missing grant, unknown database).
_MISCONFIGURED_CODES = frozenset(
    {
        1044,  # access denied to database
        1045,  # access denied (user/password)
        1049,  # unknown database
        1142,  # command denied on a table
        1227,  # access denied; you need (at least one of) the X privilege(s)
        2026,  # TLS required but unavailable, or the handshake failed
    }
)


@dataclass(frozen=True)
class ConnectParams:
    """Where a MariaDB/MySQL node is and how to log in; the password stays out of repr()."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = ""
    tls: Tls = field(default_factory=Tls)
    connect_timeout_s: float = 10.0

    @classmethod
    def for_node(cls, node: MySqlNode, password: str | None) -> ConnectParams:
        """From the config; the caller reads the password (from the node's env variable or file)."""
        return cls(
            host=node.host,
            port=node.port,
            user=node.username,
            password=password or "",
            database=node.database,
            tls=node.tls,
        )


def ssl_context(tls: Tls) -> ssl.SSLContext | None:
    """The context for ``require``/``verify-*`` modes; None for ``disable``/``prefer`` (see module doc)."""
    if tls.mode in ("disable", "prefer"):
        return None
    if tls.mode == "require":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=tls.ca_file)
        ctx.check_hostname = tls.mode == "verify-full"
        ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


def connect_kwargs(
    params: ConnectParams, *, database: str | None = None, read_timeout_s: float | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``pymysql.connect`` (and for mysql-replication's connection settings)."""
    kwargs: dict[str, Any] = {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "password": params.password,
        "charset": "utf8mb4",
        "connect_timeout": params.connect_timeout_s,
        "autocommit": True,
    }
    db = params.database if database is None else database
    if db:
        kwargs["database"] = db
    if read_timeout_s is not None:
        kwargs["read_timeout"] = read_timeout_s
    if params.tls.mode == "disable":
        kwargs["ssl_disabled"] = True
    else:
        ctx = ssl_context(params.tls)
        if ctx is not None:
            kwargs["ssl"] = ctx
        elif params.tls.cert_file and params.tls.key_file:  # prefer + client certificate
            kwargs["ssl_cert"], kwargs["ssl_key"] = params.tls.cert_file, params.tls.key_file
    return kwargs


def translate(exc: BaseException, subject: str, doing: str) -> WorkerSyncError:
    """A driver error as one of ours: a human must act (grants, password, TLS) or retrying may help."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code in _MISCONFIGURED_CODES:
        return SourceMisconfigured(f"{subject}: {doing} failed: {detail} (error {code})")
    return SourceUnavailable(f"{subject}: {doing} failed: {detail}" + (f" (error {code})" if code else ""))


def connect(params: ConnectParams, subject: str, **overrides: Any) -> pymysql.Connection:
    """A new autocommit connection; driver errors come out as SourceUnavailable / SourceMisconfigured."""
    kwargs = connect_kwargs(params)
    kwargs.update(overrides)
    try:
        return pymysql.connect(**kwargs)
    except (pymysql.err.MySQLError, OSError) as exc:
        raise translate(exc, subject, f"connecting to {params.host}:{params.port} as `{params.user}`") from exc
