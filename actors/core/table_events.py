"""TRUNCATE and added columns in a routing plan: which to stop at, skip, or send, and to which shards.

Both are table-wide events (``Op.TRUNCATE``, ``Op.SCHEMA`` with ``added_column``) among row changes that are
spread over the applier shards by key. Each needs every change before it applied first and none after it
applied before it - a barrier - but they differ in what "applied twice" or "applied early" does:

* An added column is *additive and idempotent* (``ADD COLUMN IF NOT EXISTS``): it goes to **every** shard, in
  each shard's slice at its place in the stream. A shard applies its changes in stream order, so each change
  carrying the new column meets the column already added (by its own shard, or earlier by another); changes
  before it never name it. It is audited once (the audited part holds it once).

* A TRUNCATE is *destructive*: run on every shard it would also empty rows another shard had already written
  after it. So a table whose TRUNCATE is applied (``truncate: apply``) is **pinned to one shard**: every change
  of that table, whatever its key, goes to ``shard_of(table)``. One shard applies its parts in stream order,
  one call at a time, a failed call again as it was, so everything before the TRUNCATE is applied before it and
  nothing after it earlier. Across crashes and restarts nothing else is needed: positions commit only once
  every part up to them is applied and audited, and a rewound or restarted stream replays a suffix of the
  stream in order on that same shard - ``[upserts, TRUNCATE, upserts]`` replayed ends where the first pass
  ended (upserts and deletes are blind, TRUNCATE sets the table empty), so nothing is lost or applied twice
  in effect. The pinning is decided from the config alone, so every capture actor of a run, restarted or not,
  routes alike. (The other design, ending the batch at the TRUNCATE and letting the controller drain every
  shard before applying it alone, needs a cross-shard barrier in the controller that must itself survive
  rewinds; pinning reuses the per-shard order that already does.) The price: that table's changes are
  applied by one shard, not spread over all of them.

``stop`` raises :class:`~actors.core.errors.TableChanged` where the stream is captured: the batch holding
the event is never delivered, so the committed position stays before it and the stream resumes there.
``ignore`` (TRUNCATE only) drops it: not applied, not audited.

Pure: no Ray, no drivers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from actors.core.errors import TableChanged
from actors.core.events import AddedColumn, ChangeEvent, Op
from actors.core.routing import Route, shard_of
from config.model import LossPolicy

#: The key a pinned table's changes are routed by (every key of the table alike).
_TABLE_KEY: dict[str, object] = {}


class TableEvents:
    """The TRUNCATE and schema-change policies of every captured table of one plan."""

    def __init__(self, routes: Iterable[Route], shards: int) -> None:
        self.shards = shards
        self._routes: dict[tuple[str, str], list[Route]] = {}
        for route in routes:
            self._routes.setdefault((route.source_node, route.source_namespace), []).append(route)
        #: Tables whose TRUNCATE is applied somewhere: each goes to one shard (see the module docstring).
        self._pinned = frozenset(where for where, rs in self._routes.items() if any(r.truncate == "apply" for r in rs))

    def pinned_shard(self, event: ChangeEvent) -> int | None:
        """The one shard every change of ``event``'s table goes to, when its TRUNCATE is applied."""
        if self._pinned and (event.node, event.namespace) in self._pinned:
            return shard_of(event.namespace, _TABLE_KEY, self.shards)
        return None

    def admit(self, event: ChangeEvent) -> bool:
        """Whether a TRUNCATE or schema event is sent on (False: dropped); TableChanged when it must stop."""
        routes = self._routes.get((event.node, event.namespace), [])
        if event.op is Op.TRUNCATE:
            stopping = [r for r in routes if r.truncate == "stop"]
            if stopping:
                raise TableChanged(_truncate_stop(event, stopping[0]))
            return any(r.truncate == "apply" for r in routes)
        added = event.added_column
        if added is None:
            return True
        sent = [r for r in routes if r.shape is None or r.shape.sends(added.name, ())]
        if not sent:  # columns_include without it, or columns_exclude with it: nothing to add anywhere
            return False
        stopping = [r for r in sent if r.schema_changes == "stop"]
        if stopping:
            raise TableChanged(_added_stop(event, stopping[0]))
        if added.expression_default is not None:
            raise TableChanged(expression_default_stop(event.namespace, added, sent[0]))
        return True

    def broadcast(self, event: ChangeEvent) -> bool:
        """Whether ``event`` goes to every shard (an added column, see the module docstring)."""
        return event.op is Op.SCHEMA


def _where(event: ChangeEvent) -> str:
    return f"{event.engine} node `{event.node}`, table `{event.namespace}`"


def _truncate_stop(event: ChangeEvent, route: Route) -> str:
    where = f"{_where(event)}: TRUNCATE captured (transaction {event.txid}, at {event.position})"
    if route.group:
        return (
            f"{where}; bidirectional group `{route.group}` says `truncate: stop` - empty the table on every other "
            f"member yourself and set `truncate: ignore` on its links, then restart: the stream resumes right "
            "before the TRUNCATE"
        )
    return (
        f"{where}; link `{route.link}` says `truncate: stop` - set `truncate: apply` (empty the target table too, in "
        f"order) or `truncate: ignore` (keep the target's rows) on link `{route.link}` or its table "
        f"`{event.namespace}`, then restart: the stream resumes right before the TRUNCATE"
    )


def expression_default_stop(namespace: str, added: AddedColumn, route: Route) -> str:
    """Why a column added with an expression default is not added at the target, and what to do."""
    return (
        f"table `{namespace}` on node `{route.source_node}`: column `{added.name}` was added with the default "
        f"`{added.expression_default}`, an expression: the values it gave existing rows cannot be rebuilt at the "
        f"target - add column `{route.target_column(added.name)}` to `{route.target_namespace}` on node "
        f"`{route.target_node}` yourself (and fill it), then restart"
    )


def _added_stop(event: ChangeEvent, route: Route) -> str:
    added = event.added_column
    assert added is not None
    if route.group:
        return (
            f"{_where(event)}: column `{added.name}` ({added.type_text}) was added; bidirectional group "
            f"`{route.group}` carries no schema change - add the column on every member yourself, then restart: "
            "the stream resumes right before the change"
        )
    return (
        f"{_where(event)}: column `{added.name}` ({added.type_text}) was added; link `{route.link}` says "
        f"`schema_changes: stop` - add column `{route.target_column(added.name)}` to `{route.target_namespace}` on "
        f"node `{route.target_node}` yourself, or set `schema_changes: apply` (or leave the column out with "
        "`columns_exclude`), then restart: the stream resumes right before the change"
    )


class TableOp(NamedTuple):
    """A TRUNCATE or an added column as one target applies it, in target names."""

    #: The TARGET table.
    namespace: str
    #: The added column's target name; "" for a TRUNCATE.
    column: str
    added: AddedColumn | None
    lossy_types: LossPolicy
    link: str
    #: The source's engine ("postgresql", "mariadb", "mysql"): the same engine keeps the declared type as it is.
    source_engine: str


def table_op(event: ChangeEvent, route: Route) -> TableOp | None:
    """What ``route``'s target does with a TRUNCATE or schema event; None: nothing (ignored, or a group)."""
    if route.group:
        return None
    if event.op is Op.TRUNCATE:
        if route.truncate != "apply":
            return None
        return TableOp(route.target_namespace, "", None, route.lossy_types, route.link, event.engine)
    added = event.added_column
    if added is None or route.schema_changes != "apply":
        return None
    if route.shape is not None and not route.shape.sends(added.name, ()):
        return None
    return TableOp(
        route.target_namespace, route.target_column(added.name), added, route.lossy_types, route.link, event.engine
    )
