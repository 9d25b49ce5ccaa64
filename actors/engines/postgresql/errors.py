"""psycopg's errors as Worker-Sync's, so code outside the engine never handles a driver class."""

from __future__ import annotations

import psycopg

from actors.core.errors import DatabaseError, DatabaseUnreachable, ObjectMissing, PrivilegeMissing, WorkerSyncError


def translate(exc: BaseException) -> WorkerSyncError | None:
    """None when ``exc`` is not psycopg's. The message is the driver's (libpq's may span lines)."""
    if not isinstance(exc, psycopg.Error):
        return None
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError):  # the connection failed or broke (or the server gave up)
        return DatabaseUnreachable(text)
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        return ObjectMissing(text)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PrivilegeMissing(text)
    return DatabaseError(text)
