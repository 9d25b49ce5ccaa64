"""`check-config --deep`: every rule `worker-sync run` enforces at start-up that needs no connection.

The plain check validates the file against the schema and the links' topology; a config can pass it and
still never start (a MongoDB collection without declared fields, a MySQL source that would have to
snapshot). This builds what `run` builds before it connects to anything — the routes, the bidirectional
groups, the routing plan, the capture streams — and asks each node's engine what it would refuse
(Engine.config_problems), so a rendered Helm config can be proven startable before it is deployed. What
needs a server (logins, grants, table definitions, type mappings) or the pod's files (keys, passwords) is
left to `run`, which checks it at start.
"""

from __future__ import annotations

from collections import defaultdict

from actors.control.streams import stream_specs
from actors.core.errors import ConfigError
from actors.core.groups import build_groups
from actors.core.plan import RoutingPlan
from actors.core.routing import build_routes
from actors.engines.registry import engine_for
from config.loader import nodes_by_name
from config.model import Config


def deep_problems(config: Config) -> list[str]:
    """What `run` would refuse, one sentence each (empty: nothing found)."""
    problems: list[str] = []
    try:
        routes = build_routes(config)
        groups = build_groups(config)
        RoutingPlan(config.supervisor.applier_shards, routes, groups)
        stream_specs(config, routes)
    except (ConfigError, ValueError) as exc:
        return [getattr(exc, "message", str(exc))]
    nodes = nodes_by_name(config)
    sources: dict[str, list[str]] = defaultdict(list)
    targets: dict[str, list[str]] = defaultdict(list)
    for route in routes:
        sources[route.source_node].append(route.source_namespace)
        targets[route.target_node].append(route.target_namespace)
    for name in sorted(sources.keys() | targets.keys()):
        problems += engine_for(nodes[name]).config_problems(
            name, nodes[name], sources=list(dict.fromkeys(sources[name])), targets=list(dict.fromkeys(targets[name]))
        )
    problems += _audit_problems(config)
    return problems


def _audit_problems(config: Config) -> list[str]:
    audit = config.audit
    if not audit.enabled or not config.links:
        return []
    from actors.engines.postgresql.audit_connection import audit_store_node

    problems = []
    try:
        audit_store_node(nodes_by_name(config), audit.node)
    except ConfigError as exc:
        problems.append(exc.message)
    if not (audit.signing_key_file or audit.signing_key_env):
        problems.append("the audit trail is on but no signing key is named: set `audit.signing_key_file` or `_env`")
    return problems
