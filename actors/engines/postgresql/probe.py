"""The probe table on PostgreSQL (see actors.core.probe): in the default schema of a fresh database."""

from __future__ import annotations

from typing import Any

from actors.core.probe import ID_LENGTH, PRIVILEGES, PROBE_TABLE

SCHEMA = "public"
NAMESPACE = f"{SCHEMA}.{PROBE_TABLE}"

DDL = (
    f"CREATE TABLE IF NOT EXISTS {NAMESPACE} "
    f"(probe_id varchar({ID_LENGTH}) PRIMARY KEY, written_at timestamp(6) NOT NULL)"
)


def statements(grantees: list[str]) -> list[str]:
    return [DDL, *(f'GRANT {PRIVILEGES} ON {NAMESPACE} TO "{who}"' for who in grantees)]


def present(conn: Any) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{SCHEMA}"."{PROBE_TABLE}"',))
        row = cur.fetchone()
    return bool(row and row[0])
