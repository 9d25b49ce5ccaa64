"""What a binlog query event says about the captured tables: the table a TRUNCATE empties.

MariaDB and MySQL log TRUNCATE as a statement (a QueryEvent) even with ``binlog_format=ROW``: no row events
follow, so capture must read it from the statement text. Only the plain form is recognised (one table,
optionally database-qualified, names bare or in backticks); the statement's default database (the event's
``schema``) qualifies a bare name.
"""

from __future__ import annotations

import re

_NAME = r"(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+))"
_COMMENTS = r"\s*(?:/\*.*?\*/\s*)*"
_TRUNCATE = re.compile(
    rf"^{_COMMENTS}TRUNCATE\s+(?:TABLE\s+)?(?:{_NAME}\s*\.\s*)?{_NAME}{_COMMENTS};?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _name(quoted: str | None, bare: str | None) -> str | None:
    if quoted is not None:
        return quoted.replace("``", "`")
    return bare


def truncated_table(query: str, schema: str) -> str | None:
    """``database.table`` a TRUNCATE statement empties; None for any other statement."""
    match = _TRUNCATE.match(query)
    if match is None:
        return None
    database = _name(match.group(1), match.group(2)) or schema
    table = _name(match.group(3), match.group(4))
    return f"{database}.{table}" if database and table else None
