"""How Worker-Sync connects to a MongoDB node: pymongo client options, TLS, and driver errors translated.

TLS modes (``config.model.Tls``) map to pymongo as follows. MongoDB has no opportunistic TLS, so ``prefer``
cannot "try TLS, else plain": it connects in plain text, like ``disable`` (use ``require`` or stronger).

=============  ========================================================================================
``disable``    ``tls=False``
``prefer``     ``tls=False`` (see above)
``require``    ``tls=True`` without checking the certificate or the host name
``verify-ca``  ``tls=True``, ``tlsCAFile=ca_file``; the host name is not checked
``verify-full`` ``tls=True``, ``tlsCAFile=ca_file``, host name checked
=============  ========================================================================================

A client certificate goes in ``tlsCertificateKeyFile``, which holds certificate *and* key: set ``cert_file``
and ``key_file`` to that same PEM file.
"""

from __future__ import annotations

from typing import Any

import pymongo
from pymongo import errors

from actors.core.errors import ConfigError, SourceMisconfigured, SourceUnavailable, WorkerSyncError
from config.model import MongoNode, Tls

#: Server error codes a human must fix: unauthorized, authentication failed, change streams need a replica set.
_MISCONFIGURED = frozenset({13, 18, 40573})
#: ChangeStreamHistoryLost: the resume point fell off the oplog.
HISTORY_LOST = 286
#: ChangeStreamFatalError (e.g. a resume token the server cannot use).
FATAL = 280


def tls_options(tls: Tls, node: str = "") -> dict[str, Any]:
    if tls.mode in ("disable", "prefer"):
        return {"tls": False}
    options: dict[str, Any] = {"tls": True}
    if tls.mode == "require":
        options.update(tlsAllowInvalidCertificates=True, tlsAllowInvalidHostnames=True)
    else:
        options["tlsCAFile"] = tls.ca_file
        options["tlsAllowInvalidHostnames"] = tls.mode == "verify-ca"
    if tls.cert_file:
        if tls.cert_file != tls.key_file:
            raise ConfigError(
                "config",
                f"mongodb node `{node}`: MongoDB reads the client certificate and its key from one PEM file; "
                "set `cert_file` and `key_file` to that same file",
            )
        options["tlsCertificateKeyFile"] = tls.cert_file
    return options


def client_options(node: MongoNode, password: str | None, *, name: str, app: str) -> dict[str, Any]:
    """MongoClient keyword arguments for a node (tz-aware datetimes, standard UUIDs, majority writes)."""
    options: dict[str, Any] = {
        "host": node.host,
        "port": node.port,
        "appname": app,
        "tz_aware": True,
        "uuidRepresentation": "standard",
        "serverSelectionTimeoutMS": 10_000,
        "connectTimeoutMS": 10_000,
        "w": "majority",
        **tls_options(node.tls, name),
    }
    if node.replica_set:
        options["replicaSet"] = node.replica_set
    else:
        options["directConnection"] = True
    if node.username:
        options.update(username=node.username, password=password or "", authSource=node.auth_source)
    return options


def connect(node: MongoNode, password: str | None, *, name: str, app: str) -> pymongo.MongoClient:
    """A client (pymongo connects lazily: errors show on the first command, see ``translate``)."""
    return pymongo.MongoClient(**client_options(node, password, name=name, app=app))


def is_replica_set(client: pymongo.MongoClient) -> bool:
    """True for a replica-set member or a mongos (hello says so): multi-document transactions work there."""
    hello = client.admin.command("hello")
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


def reason(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    text = str(exc).split(", full error:")[0].strip() or type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def translate(exc: BaseException, subject: str, doing: str, secrets: tuple[str, ...] = ()) -> WorkerSyncError:
    """A pymongo error as SourceUnavailable (retry) or SourceMisconfigured (a human must act)."""
    text = f"{subject}: {doing}: {reason(exc, secrets)}"
    if isinstance(exc, errors.OperationFailure) and exc.code in _MISCONFIGURED:
        if exc.code == 40573:
            text += "; change streams need a replica set (a single node can be one: `mongod --replSet rs0`)"
        return SourceMisconfigured(text)
    if isinstance(exc, errors.ConfigurationError | errors.InvalidURI):
        return SourceMisconfigured(text)
    return SourceUnavailable(text)
