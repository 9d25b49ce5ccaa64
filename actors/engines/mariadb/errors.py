"""PyMySQL's errors as Worker-Sync's, so code outside the engine never handles a driver class.

(connection.translate phrases capture's errors for one subject; this one keeps the driver's message.)"""

from __future__ import annotations

import pymysql

from actors.core.errors import DatabaseError, DatabaseUnreachable, ObjectMissing, PrivilegeMissing, WorkerSyncError

#: Access denied: to a database, to the user, to a table, for want of a privilege.
_PRIVILEGE = frozenset({1044, 1045, 1142, 1143, 1227})
#: Unknown database, unknown table.
_MISSING = frozenset({1049, 1146})
#: Cannot connect, server gone away, connection lost during a query, lost at initial communication.
_UNREACHABLE = frozenset({2003, 2006, 2013, 2055})


def translate(exc: BaseException) -> WorkerSyncError | None:
    """None when ``exc`` is not PyMySQL's."""
    if not isinstance(exc, pymysql.err.MySQLError):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc).strip() or type(exc).__name__
    if code in _UNREACHABLE or isinstance(exc, pymysql.err.InterfaceError):
        return DatabaseUnreachable(text)
    if code in _PRIVILEGE:
        return PrivilegeMissing(text)
    if code in _MISSING:
        return ObjectMissing(text)
    return DatabaseError(text)
