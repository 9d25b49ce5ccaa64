"""One probe of one link: write a marker row at the source's probe table, wait for it at the target.

The marker is deleted at the source afterwards (the delete travels the link too), so the table stays
near empty; a marker left by an interrupted probe is harmless.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import msgspec

from actors.engines.registry import driver_errors, engine_for
from actors.ops.nodes import connect_node
from actors.ops.probe_table import table_present
from config.model import Node

POLL_S = 0.05


class ProbeResult(msgspec.Struct, kw_only=True):
    link: str
    source: str
    target: str
    ok: bool
    probe_id: str
    round_trip_ms: float | None = None
    problem: str | None = None


def _quoted(node: Node) -> str:
    engine = engine_for(node)
    return engine.quote_namespace(str(engine.probe_namespace(node)))


def _execute(conn: Any, query: str, params: tuple[object, ...]) -> Any:
    """One statement (DB-API, ``%s`` placeholders on every SQL engine here); DatabaseError if refused."""
    with driver_errors(), conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone() if cur.description else None


def probe_link(link: str, source: tuple[str, Node], target: tuple[str, Node], timeout_s: float) -> ProbeResult:
    """Raises NodeUnreachable when either end cannot be connected to, DatabaseError when one refuses."""
    (source_name, source_node), (target_name, target_node) = source, target
    probe_id = uuid.uuid4().hex
    result = ProbeResult(link=link, source=source_name, target=target_name, ok=False, probe_id=probe_id)
    src = connect_node(source_name, source_node)
    try:
        dst = connect_node(target_name, target_node)
        try:
            for name, node, conn in ((source_name, source_node, src), (target_name, target_node, dst)):
                if not table_present(conn, node):
                    result.problem = (
                        f"node `{name}` has no probe table `{engine_for(node).probe_namespace(node)}` (or its user "
                        "cannot see it): run `worker-sync init --config FILE`, then restart `worker-sync run`"
                    )
                    return result
            written = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            start = time.monotonic()
            _execute(
                src, f"INSERT INTO {_quoted(source_node)} (probe_id, written_at) VALUES (%s, %s)", (probe_id, written)
            )
            query = f"SELECT 1 FROM {_quoted(target_node)} WHERE probe_id = %s"
            deadline = start + timeout_s
            while True:
                if _execute(dst, query, (probe_id,)):
                    result.ok = True
                    result.round_trip_ms = round((time.monotonic() - start) * 1000, 1)
                    break
                if time.monotonic() >= deadline:
                    result.problem = (
                        f"the marker written at `{source_name}` did not reach `{target_name}` within {timeout_s:g} s: "
                        "is `worker-sync run` running, and was it (re)started after `worker-sync init`?"
                    )
                    break
                time.sleep(POLL_S)
            _execute(src, f"DELETE FROM {_quoted(source_node)} WHERE probe_id = %s", (probe_id,))
        finally:
            dst.close()
    finally:
        src.close()
    return result
