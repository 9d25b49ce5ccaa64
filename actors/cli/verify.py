"""`worker-sync verify --config FILE --link NAME [--table T] [--json] [--repair] [--report]`: is the target
still equal to the source? Compares a live link's tables without stopping it (actors.ops.verify_scan: key ranges hashed
inside each database, differing ranges bisected down to keys; actors.ops.verify_settle: keys re-read once the
link has caught up, so changes in flight are not reported).

Exit 0 equal, 1 differences (also when ``--repair`` repaired them: run it again to confirm), 2 bad usage or
config (an unknown link or table, columns that do not line up, a MongoDB node), 3 a node cannot be reached.

``--link`` may be given more than once, or ``--all-links`` takes every link between SQL nodes (the chart's
CronJob): each link is verified in turn, a link that fails does not stop the others, and the exit code is the
worst of them. ``--report`` posts each link's result (counts only) to the running supervisor's
POST /verify/results, which exports it as ``worker_sync_verify_mismatches{link}`` (actors/verify_results.py);
a report that cannot be delivered is exit 3.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from actors.cli.failures import CliError, guarded
from actors.cli.failures import report as report_error
from actors.core.errors import WorkerSyncError
from config import load_config, nodes_by_name
from config.exit_codes import Exit
from config.model import Config, Link, TableMap

if TYPE_CHECKING:
    from actors.engines.rows import RowReader
    from actors.ops.verify_report import Report, TableReport

PROGRESS_EVERY_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--link", action="append", help="the link to verify (repeat for several)")
    which.add_argument(
        "--all-links", action="store_true", help="every link whose two nodes are SQL databases (MongoDB: skipped)"
    )
    parser.add_argument("--table", help="only this table (its source or target namespace)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.add_argument(
        "--repair", action="store_true", help="write the source's current row to the target for each differing key"
    )
    parser.add_argument("--chunk-rows", type=int, default=10_000, help="rows per key range (default 10000)")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=30.0,
        help="seconds to wait at most for the link to catch up before re-reading differing keys (default 30)",
    )
    parser.add_argument("--limit", type=int, default=20, help="differing keys shown per table in text (default 20)")
    parser.add_argument(
        "--report",
        action="store_true",
        help="send each link's result to the running supervisor (POST /verify/results), which exports it as a metric",
    )
    parser.add_argument(
        "--report-url", help="base URL of the supervisor for --report (default: the config's `http` block)"
    )
    parser.add_argument("--token-file", help="file holding the bearer token for --report (default: the config's)")


def run(args: argparse.Namespace) -> int:
    if args.chunk_rows < 2 or args.settle_timeout < 0 or args.limit < 0:
        print("worker-sync verify: --chunk-rows must be at least 2, --settle-timeout and --limit >= 0", file=sys.stderr)
        return Exit.USAGE
    if args.table and (args.all_links or len(args.link) > 1):
        print("worker-sync verify: --table needs exactly one --link", file=sys.stderr)
        return Exit.USAGE
    if (args.report_url or args.token_file) and not args.report:
        print("worker-sync verify: --report-url and --token-file go with --report", file=sys.stderr)
        return Exit.USAGE
    try:
        names = _link_names(args)
    except WorkerSyncError as exc:  # a config that does not load
        return report_error("verify", exc)
    worst: int = Exit.OK
    for name in names:
        worst = max(worst, guarded("verify", functools.partial(_verify, args, name)))
    return worst


def _link_names(args: argparse.Namespace) -> list[str]:
    """The links asked for: ``--link``s as given, or every link between SQL nodes (``--all-links``)."""
    if not args.all_links:
        return list(args.link)
    from actors.engines.registry import engine_for

    config = load_config(args.config)
    nodes = nodes_by_name(config)
    names = []
    for link in config.links:
        ends = [nodes.get(link.source), nodes.get(link.target)]
        if any(end is None or not engine_for(end).verifiable for end in ends):
            print(f"worker-sync verify: link `{link.name}` skipped (a MongoDB or disabled node)", file=sys.stderr)
            continue
        names.append(link.name)
    return names


def committed_reader(config: Config, stream: str) -> Callable[[], bytes | None]:
    """The stream's committed position order, read afresh each call; None without a state directory."""
    from actors.core.offsets import FileOffsetStore

    directory = Path(config.supervisor.state_dir)
    if not directory.is_dir():
        return lambda: None
    store = FileOffsetStore(directory)

    def read() -> bytes | None:
        position = store.load(stream)
        return None if position is None else position.order

    return read


def _progress(table: str) -> Callable[[int], None]:
    start = last = time.monotonic()

    def report(rows: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            rate = rows / (now - start)
            print(f"worker-sync verify: `{table}`: {rows} source rows compared ({rate:,.0f}/s)", file=sys.stderr)
            last = now

    return report


def _verify(args: argparse.Namespace, name: str) -> int:
    from actors.engines.registry import engine_for
    from actors.ops.verify_report import Report, table_lines
    from actors.ops.verify_tables import chosen_tables, find_link

    config = load_config(args.config)
    link = find_link(config, name)
    tables = chosen_tables(link, args.table)
    if args.repair and link.bidirectional:
        raise CliError(
            f"link `{link.name}` is bidirectional: --repair would write around its conflict versions; repair one "
            "node's rows at that node instead",
            Exit.USAGE,
        )
    nodes = nodes_by_name(config)
    for end in (link.source, link.target):
        if end not in nodes:
            raise CliError(f"link `{link.name}` names node `{end}`, which is not an enabled node", Exit.USAGE)
    source = engine_for(nodes[link.source]).row_reader(link.source, nodes[link.source])
    try:
        target = engine_for(nodes[link.target]).row_reader(link.target, nodes[link.target])
        try:
            reports = [_table(args, config, link, table, source, target) for table in tables]
        finally:
            target.close()
    finally:
        source.close()
    report = Report(
        link=link.name,
        source=link.source,
        target=link.target,
        equal=not any(t.differences for t in reports),
        tables=reports,
    )
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        print(f"link `{link.name}` ({link.source} -> {link.target}): {'equal' if report.equal else 'DIFFERENT'}")
        for table in reports:
            print("\n".join("  " + line for line in table_lines(table, limit=args.limit)))
    sys.stdout.flush()
    if args.report:
        _send_report(args, report)
    return Exit.OK if report.equal else Exit.FINDINGS


def _send_report(args: argparse.Namespace, report: Report) -> None:
    """POST the link's counts to the supervisor; CliError (exit 3, or the HTTP answer's code) when it fails."""
    from actors.cli._http_client import HttpFailure, call, endpoint
    from actors.ops.verify_report import summary

    where = argparse.Namespace(url=args.report_url, config=args.config, token_file=args.token_file)
    base, token = endpoint(where)
    try:
        call(f"{base}/verify/results", summary(report, finished_at=time.time()), token)
    except HttpFailure as exc:
        raise CliError(f"link `{report.link}`: the result was not reported: {exc}", max(exc.code, Exit.USAGE)) from None
    print(f"worker-sync verify: link `{report.link}`: result reported to {base}", file=sys.stderr)


def _table(
    args: argparse.Namespace, config: Config, link: Link, table: TableMap, source: RowReader, target: RowReader
) -> TableReport:
    from actors.ops.verify_report import TableReport, difference, waits_text
    from actors.ops.verify_scan import Scanner
    from actors.ops.verify_settle import settle
    from actors.ops.verify_tables import table_pair

    started = time.monotonic()
    pair = table_pair(link, table, source, target)
    scan = Scanner(pair, source, target, chunk_rows=args.chunk_rows, progress=_progress(pair.source.namespace)).run()
    remaining, waits = settle(
        pair,
        source,
        target,
        scan.suspects,
        committed_reader(config, link.source),
        timeout_s=args.settle_timeout,
    )
    report = TableReport(
        source=pair.source.namespace,
        target=pair.target.namespace,
        hashed_in="database" if pair.source.in_database else "client",
        ranges_checked=scan.ranges_checked,
        source_rows=scan.source_rows,
        target_rows=scan.target_rows,
        rechecked=len(scan.suspects),
        in_flight=len(scan.suspects) - len(remaining),
        waits=waits_text(waits),
        seconds=0.0,
        differences=[difference(pair, s) for s in remaining.values()],
    )
    if args.repair and remaining:
        from actors.ops.verify_repair import repair

        nodes = nodes_by_name(config)
        report.repaired = repair(pair, source, nodes[link.target], list(remaining.values()))
        if config.audit.enabled:
            report.repaired.audit_entry = _audit_repair(config, link.name, report)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _audit_repair(config: Config, link_name: str, report: TableReport) -> int | None:
    """The `repair` admin entry (its sequence number), appended as `cleanup` appends its entry."""
    from actors.audit_chain import AuditWriter
    from actors.cli._audit_db import audit_node

    detail: dict[str, object] = {
        "link": link_name,
        "source": report.source,
        "target": report.target,
        "keys": [d.key for d in report.differences],
        "upserts": report.repaired.upserts if report.repaired else 0,
        "deletes": report.repaired.deletes if report.repaired else 0,
    }
    writer = AuditWriter(config.audit, audit_node(config), [], exports=False)
    try:
        appended = writer.record_admin(
            "repair", detail, request_id=f"repair:{uuid.uuid4().hex}", actor=f"cli:{getpass.getuser()}"
        )
    finally:
        writer.close()
    return appended.size - 1 if appended.entries else None
