"""Worker-Sync's own PostgreSQL schemas as ordered, named, idempotent steps, and the version table that says
which steps a database has.

`worker-sync init` and `worker-sync migrate` both run :func:`migrate`, so a fresh store and an old store
brought up to date are the same. A schema is a :class:`SchemaSpec`: its steps (append new ones at the end;
never reorder, rename or remove one) and the grants re-asserted on every run. Each step is written so it
also succeeds on a database that already has what it creates: step 1 is the schema as the first release
created it, without a version table, and migrating such a store records step 1 and runs the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from actors.core.errors import WorkerSyncError

VERSION_TABLE = "schema_version"


@dataclass(frozen=True)
class Target:
    """Where a schema lives and which role the service runs as."""

    schema: str
    service_role: str


Apply = Callable[[psycopg.Cursor, Target], None]


@dataclass(frozen=True)
class Step:
    name: str
    apply: Apply
    #: One line for `migrate --dry-run`.
    summary: str


@dataclass(frozen=True)
class SchemaSpec:
    """One of Worker-Sync's schemas: its ordered steps and the grants asserted after every run."""

    kind: str
    steps: Sequence[Step]
    grants: Apply


@dataclass
class Migration:
    """What :func:`migrate` found and did (or would do, with ``dry_run``)."""

    kind: str
    schema: str
    from_version: int
    to_version: int
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    dry_run: bool = False


class SchemaVersionError(WorkerSyncError):
    """The database's steps do not match this version's list (a newer Worker-Sync, or a renamed step)."""


def _ident(target: Target) -> sql.Identifier:
    return sql.Identifier(target.schema)


def applied_steps(conn: psycopg.Connection, schema: str) -> list[str] | None:
    """Names of the recorded steps in order; None when the version table does not exist."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".{VERSION_TABLE}',))
        row = cur.fetchone()
        if not (row and row[0]):
            return None
        cur.execute(sql.SQL("SELECT name FROM {} ORDER BY step").format(sql.Identifier(schema, VERSION_TABLE)))
        return [name for (name,) in cur.fetchall()]


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return cur.fetchone() is not None


def _check(spec: SchemaSpec, schema: str, done: list[str]) -> None:
    names = [step.name for step in spec.steps]
    if len(done) > len(names):
        raise SchemaVersionError(
            f"{spec.kind} schema `{schema}` is at step {len(done)} (`{done[-1]}`), but this Worker-Sync knows "
            f"only {len(names)} steps - upgrade Worker-Sync instead of migrating down"
        )
    for number, (have, want) in enumerate(zip(done, names, strict=False), 1):
        if have != want:
            raise SchemaVersionError(
                f"{spec.kind} schema `{schema}`: step {number} is `{have}` in the database but `{want}` here"
            )


def migrate(conn: psycopg.Connection, spec: SchemaSpec, target: Target, *, dry_run: bool = False) -> Migration:
    """Bring ``target.schema`` to the last step of ``spec`` in one transaction (DDL is transactional in
    PostgreSQL), under an advisory lock so two concurrent runs do not interleave. Idempotent."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"worker-sync migrate {target.schema}",))
        done = applied_steps(conn, target.schema) if _schema_exists(conn, target.schema) else None
        recorded = done or []
        _check(spec, target.schema, recorded)
        result = Migration(spec.kind, target.schema, len(recorded), len(spec.steps), dry_run=dry_run)
        result.pending = [step.name for step in spec.steps[len(recorded) :]]
        if dry_run:
            return result
        version = sql.Identifier(target.schema, VERSION_TABLE)
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(target)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (step integer PRIMARY KEY, name text NOT NULL UNIQUE, "
                "applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL DEFAULT current_user)"
            ).format(version)
        )
        for number, step in enumerate(spec.steps[len(recorded) :], len(recorded) + 1):
            step.apply(cur, target)
            cur.execute(sql.SQL("INSERT INTO {} (step, name) VALUES (%s, %s)").format(version), (number, step.name))
            result.applied.append(step.name)
        spec.grants(cur, target)
        result.pending = []
    return result
