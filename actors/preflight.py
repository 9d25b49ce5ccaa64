"""Start-up checks of `worker-sync run`: every route's source and target tables exist and the
target can hold every source value, before any actor starts (SPEC §2: a lossy mapping is refused
or warned about at start-up, per the link's `lossy_types`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors.core.errors import ConfigError
from actors.core.mapping import check_mapping
from actors.core.routing import Route
from actors.core.shaping.check import sent_schema, shape_problems
from actors.core.shaping.key import load_mask_key
from actors.core.table_events import TableOp, expression_default_stop
from actors.core.typemap import TableSchema
from actors.engines.registry import build_writer, engine_for
from config.loader import nodes_by_name
from config.model import Config, Node

if TYPE_CHECKING:
    from actors.engines.sink import BatchWriter

log = logging.getLogger(__name__)


def startup_checks(config: Config) -> dict[str, str]:
    """All of `run`'s start-up checks, in order; the nodes with a probe table (node -> namespace), which the
    routes are built with (``Supervisor(config, probe_nodes=...)``). Raises what the checks below raise."""
    from actors.core.routing import build_routes
    from actors.ops.probe_table import nodes_with_probe_table

    probe_nodes = nodes_with_probe_table(config)
    check_routes(config, build_routes(config, probe_nodes=probe_nodes))
    check_audit(config)
    check_groups(config)
    return probe_nodes


def check_routes(config: Config, routes: Sequence[Route]) -> list[str]:
    """Warnings to log. Logs in to every route's source and target (the target as its writer does) and reads
    their tables; raises ConfigError (bad mapping), SourceMisconfigured or SinkError (a refused login, a
    missing or unusable table: exit 2) or SourceUnavailable (a node cannot be reached: exit 3)."""
    nodes = nodes_by_name(config)
    writers: dict[str, BatchWriter[Any, Any]] = {}
    warnings: list[str] = []
    try:
        for route in routes:
            writer = writers.get(route.target_node)
            if writer is None:
                writer = writers[route.target_node] = build_writer(route.target_node, nodes[route.target_node])
            source_node = nodes[route.source_node]
            source = engine_for(source_node).source_schema(route.source_node, source_node, route.source_namespace)
            target = writer.schema(route.target_namespace)
            if route.shape is not None:  # the mapping is checked on what is sent
                source = check_shape(route, source, target, source_node)
            if not route.group and "apply" in (route.truncate, route.schema_changes):
                writer.check_table_rights(
                    route.target_namespace, truncate=route.truncate == "apply", alter=route.schema_changes == "apply"
                )
            if route.schema_changes == "apply" and not route.group:
                target = add_missing_columns(route, source, target, writer, source_node)
            warnings.extend(check_mapping(source, target, route.columns, route.lossy_types))
    finally:
        for writer in writers.values():
            writer.close()
    for warning in warnings:
        log.warning("lossy type mapping accepted (`lossy_types: warn`): %s", warning)
    return warnings


def add_missing_columns(
    route: Route, source: TableSchema, target: TableSchema, writer: BatchWriter[Any, Any], source_node: Node
) -> TableSchema:
    """With `schema_changes: apply`, the columns the route sends that the target lacks are added now, as the
    running stream adds them (actors.core.table_events): a column added while Worker-Sync was stopped, or one
    whose event a crashed capture actor never delivered (a restarted one reads the definition that already
    has it), reaches the target before any change naming it. Returns the target's schema as it is now."""
    missing = [c.name for c in source.columns if target.column(route.target_column(c.name)) is None]
    if not missing:
        return target
    described = engine_for(source_node).source_columns(route.source_node, source_node, route.source_namespace)
    engine = str(source_node.__struct_config__.tag)
    for name in missing:
        if described[name].expression_default is not None:
            raise ConfigError(
                f"link `{route.link}`", expression_default_stop(route.source_namespace, described[name], route)
            )
        op = TableOp(
            route.target_namespace,
            route.target_column(name),
            described[name],
            route.lossy_types,
            route.link,
            "mariadb" if engine == "mysql" else engine,
        )
        writer.apply_table_op(op)
        log.info(
            "link `%s`: added column `%s` to `%s` on node `%s` at start-up (`schema_changes: apply`)",
            route.link,
            op.column,
            route.target_namespace,
            route.target_node,
        )
    writer.forget(route.target_namespace)
    return writer.schema(route.target_namespace)


def check_shape(route: Route, source: TableSchema, target: TableSchema, source_node: Node) -> TableSchema:
    """The source table as the route sends it (actors.core.shaping), or ConfigError naming every rule its shape
    breaks: names that are not columns, a key column excluded or masked other than by hash, a masked value the
    target column cannot hold, a row filter the column's type or the source's before-images cannot serve, a
    masking key that does not load."""
    shape = route.shape
    assert shape is not None
    problems = shape_problems(shape, source, target, route.columns)
    if shape.where:
        missing = engine_for(source_node).before_image_missing(route.source_node, source_node, route.source_namespace)
        if missing:
            problems.append(f"a row filter (`where`) needs whole before-images: {missing}")
    if problems:
        raise ConfigError(f"link `{route.link}` table `{route.source_namespace}`", "; ".join(problems))
    if shape.hashes:
        load_mask_key(env=shape.key_env, file=shape.key_file)
    return sent_schema(shape, source)


def check_audit(config: Config) -> None:
    """With `audit.enabled`, the signing key loads and the audit schema exists, or the run stops at start
    (ConfigError: exit 2) instead of every batch failing in the audit actor."""
    if not config.audit.enabled:
        return
    from actors.core.audit.checkpoint import load_key_bytes, load_signing_key
    from actors.core.errors import DatabaseError, ForeignEntries, SinkError, SourceUnavailable
    from actors.engines.postgresql.audit_connection import audit_store_node, connect_store
    from actors.engines.registry import driver_errors

    audit = config.audit
    load_signing_key(file=audit.signing_key_file, env=audit.signing_key_env)
    if audit.encrypted_fields:
        load_key_bytes(file=audit.encryption_key_file, what="audit field-encryption key")
    node = audit_store_node(nodes_by_name(config), audit.node)
    try:
        store = connect_store(node, audit.schema)
    except SinkError as exc:
        raise SourceUnavailable(str(exc)) from None
    try:
        with driver_errors():
            exists = store.exists()
            sealed, stored = store.sealed_and_stored() if exists and not store.pending_steps() else (0, 0)
    except DatabaseError as exc:  # e.g. no USAGE on the schema: the service role was not the one granted
        raise ConfigError("config", f"cannot read the audit schema `{audit.schema}`: {exc}") from None
    finally:
        store.close()
    if not exists:
        raise ConfigError(
            "config",
            f"the audit schema `{audit.schema}` does not exist on node `{audit.node}` (or its user may not read it): "
            "run `worker-sync init --config FILE`",
        )
    if stored > sealed:
        raise ForeignEntries(
            f"audit schema `{audit.schema}`: entries {sealed}..{stored - 1} are covered by no signed checkpoint - "
            f"written outside Worker-Sync (first foreign entry {sealed}); the pipeline will not sign them. "
            "Run `worker-sync audit verify --config FILE`; README, `Foreign entries`, says what to do",
            sealed,
        )


def check_groups(config: Config) -> None:
    """Every node of a bidirectional group has what its writer needs (the version table; on MariaDB/MySQL and
    MongoDB the echo marker table; on PostgreSQL the right to mark its sessions), or the run stops at start
    with "run `worker-sync init`" (ConfigError: exit 2) instead of every offer failing in the applier shards.
    A node that cannot be reached is NodeUnreachable or SourceUnavailable (exit 3)."""
    from actors.core.groups import build_groups, namespaces_by_node

    nodes = nodes_by_name(config)
    namespaces = namespaces_by_node(build_groups(config))
    for name in sorted(namespaces):
        node = nodes[name]
        missing = engine_for(node).group_missing(name, node, namespaces[name])
        if missing:
            raise ConfigError(
                "config",
                f"node `{name}` is in a bidirectional group but {'; '.join(missing)}: run `worker-sync init --config "
                "FILE` (as an administrator, see its --admin-user options)",
            )
