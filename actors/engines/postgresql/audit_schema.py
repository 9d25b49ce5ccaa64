"""The audit store's schema as migration steps (see schema_steps): append-only tables, their guards, grants.

Privileges are the first wall (the service role may INSERT and SELECT, nothing else); triggers are the
second: row and TRUNCATE triggers raise, so even the owner is refused until it drops or disables them.
The one change ever allowed is retention: ``prune(retention_days)``, a SECURITY DEFINER function the
service role may call, blanks the content (``data``, ``key``) of a signed prefix of old entries - never
their leaf hash, chain link or position - and records the range in ``prunes``.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from actors.engines.postgresql.schema_steps import SchemaSpec, Step, Target

#: Tables the service role may append to, and tables it may only read.
APPEND_TABLES = ("entries", "checkpoints", "frontiers")
READ_TABLES = ("prunes", "schema_version")

_BASE = """
CREATE TABLE IF NOT EXISTS {schema}.entries (
    seq bigint PRIMARY KEY,
    data bytea NOT NULL,
    leaf bytea NOT NULL,
    prev bytea NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    key text NOT NULL,
    commit_time_us bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_namespace_key ON {schema}.entries (namespace, key);
CREATE INDEX IF NOT EXISTS entries_commit_time ON {schema}.entries (commit_time_us);
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    size bigint PRIMARY KEY,
    root bytea NOT NULL,
    time_us bigint NOT NULL,
    key_id bytea NOT NULL,
    signature bytea NOT NULL
);
CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

_ROW_GUARD = """
DROP TRIGGER IF EXISTS append_only ON {table};
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
DROP TRIGGER IF EXISTS no_truncate ON {table};
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
"""

_FRONTIERS = """
CREATE TABLE IF NOT EXISTS {schema}.frontiers (
    size bigint PRIMARY KEY,
    hashes bytea NOT NULL
);
"""

_RETENTION = """
CREATE TABLE IF NOT EXISTS {schema}.prunes (
    from_seq bigint PRIMARY KEY,
    to_seq bigint NOT NULL,
    cutoff_us bigint NOT NULL,
    pruned_at_us bigint NOT NULL,
    pruned_by text NOT NULL
);
CREATE OR REPLACE FUNCTION {schema}.entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('worker_sync.prune', true) = 'on'
        AND NEW.seq = OLD.seq AND NEW.leaf = OLD.leaf AND NEW.prev = OLD.prev AND NEW.kind = OLD.kind
        AND NEW.namespace = OLD.namespace AND NEW.commit_time_us = OLD.commit_time_us
        AND NEW.data = ''::bytea AND NEW.key = '' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION {schema}.prune(retention_days integer, dry_run boolean DEFAULT false)
RETURNS TABLE (out_from bigint, out_to bigint, out_cutoff_us bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lo bigint;
    hi bigint;
    signed bigint;
    cutoff bigint;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be at least 1, not %', retention_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := (extract(epoch FROM now() - make_interval(days => retention_days)) * 1000000)::bigint;
    PERFORM pg_advisory_xact_lock(hashtext('worker-sync prune ' || {schema_text}));
    SELECT coalesce(max(p.to_seq), 0) INTO lo FROM {schema}.prunes p;
    SELECT coalesce(max(c.size), 0) INTO signed FROM {schema}.checkpoints c;
    -- The prefix of entries all older than the cutoff, and never past the last signed checkpoint.
    SELECT e.seq INTO hi FROM {schema}.entries e
        WHERE e.seq >= lo AND e.commit_time_us >= cutoff ORDER BY e.seq LIMIT 1;
    hi := least(coalesce(hi, signed), signed);
    IF hi > lo AND NOT dry_run THEN
        PERFORM set_config('worker_sync.prune', 'on', true);
        UPDATE {schema}.entries e SET data = ''::bytea, key = '' WHERE e.seq >= lo AND e.seq < hi;
        PERFORM set_config('worker_sync.prune', '', true);
        INSERT INTO {schema}.prunes (from_seq, to_seq, cutoff_us, pruned_at_us, pruned_by)
            VALUES (lo, hi, cutoff, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, session_user);
    END IF;
    RETURN QUERY SELECT lo, greatest(hi, lo), cutoff;
END $$;
"""


def _format(text: str, target: Target, **extra: sql.Composable) -> sql.Composed:
    return sql.SQL(text).format(schema=sql.Identifier(target.schema), **extra)


def _guard(cur: psycopg.Cursor, target: Target, table: str, function: str) -> None:
    cur.execute(
        _format(
            _ROW_GUARD,
            target,
            table=sql.Identifier(target.schema, table),
            function=sql.Identifier(target.schema, function),
        )
    )


def _base(cur: psycopg.Cursor, target: Target) -> None:
    cur.execute(_format(_BASE, target))
    for table in ("entries", "checkpoints"):
        _guard(cur, target, table, "refuse_change")


def _frontiers(cur: psycopg.Cursor, target: Target) -> None:
    cur.execute(_format(_FRONTIERS, target))
    _guard(cur, target, "frontiers", "refuse_change")


def _retention(cur: psycopg.Cursor, target: Target) -> None:
    cur.execute(_format(_RETENTION, target, schema_text=sql.Literal(target.schema)))
    _guard(cur, target, "entries", "entries_guard")
    _guard(cur, target, "prunes", "refuse_change")


def _grants(cur: psycopg.Cursor, target: Target) -> None:
    """INSERT and SELECT for the service role on the log, SELECT on the rest, EXECUTE on `prune` only; every
    write privilege other roles may have got (e.g. from default privileges) is taken back."""
    schema, role = sql.Identifier(target.schema), sql.Identifier(target.service_role)
    cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    for table in (*APPEND_TABLES, *READ_TABLES):
        qualified = sql.Identifier(target.schema, table)
        cur.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(qualified))
        cur.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(qualified, role))
        privileges = "SELECT, INSERT" if table in APPEND_TABLES else "SELECT"
        cur.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privileges), qualified, role))
        cur.execute(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants WHERE table_schema = %s "
            "AND table_name = %s AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE') "
            "AND grantee NOT IN (current_user, %s)",
            (target.schema, table, target.service_role),
        )
        for (grantee,) in cur.fetchall():
            cur.execute(
                sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                    qualified, sql.Identifier(grantee)
                )
            )
    cur.execute("SELECT current_user = %s", (target.service_role,))
    row = cur.fetchone()
    if row and row[0]:
        # The owner is the service role (one account for everything): `prune` runs as the owner and needs
        # to blank the two content columns; the row trigger still refuses every other change.
        cur.execute(
            sql.SQL("GRANT UPDATE (data, key) ON {} TO {}").format(sql.Identifier(target.schema, "entries"), role)
        )
    prune = sql.SQL("{}.prune(integer, boolean)").format(schema)
    cur.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(prune))
    cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(prune, role))


AUDIT = SchemaSpec(
    kind="audit",
    steps=(
        Step("audit-base", _base, "entries and checkpoints, append-only (the first release's schema)"),
        Step("audit-frontiers", _frontiers, "Merkle frontier at each checkpoint, for a fast restart"),
        Step("audit-retention", _retention, "retention: `prune()` blanks old content, `prunes` records it"),
    ),
    grants=_grants,
)
