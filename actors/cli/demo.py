"""`worker-sync demo`: throwaway local servers, a live write load, and Worker-Sync capturing it.

Everything it starts (PostgreSQL, MariaDB, Ray) lives in a temporary directory and is stopped
at the end or on Ctrl-C. The summary says whether every change was captured exactly once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from actors.cli.exit_codes import Exit
from actors.harness import Endpoint, HarnessError, local_servers
from actors.harness.workload import ORDERS_DDL, MixedWorkload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of write load (default 20)")
    parser.add_argument("--rate", type=float, default=1000.0, help="changes/s written per database (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON document")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class StreamProgress:
    engine: str
    actor: object
    workload: MixedWorkload
    captured: int = 0
    positions: set[bytes] = field(default_factory=set)
    duplicates: int = 0
    lags_ms: list[float] = field(default_factory=list)
    last: object = None


class Summary(msgspec.Struct, kw_only=True):
    duration_s: float
    streams: dict[str, dict[str, object]]
    all_captured_once: bool
    sync: str


def run(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.rate <= 0:
        say("worker-sync demo: --duration and --rate must be positive")
        return Exit.USAGE
    with tempfile.TemporaryDirectory(prefix="worker-sync-demo-") as tmp:
        say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
        try:
            with local_servers(Path(tmp) / "servers") as (pg, mariadb):
                return _demo(args, Path(tmp), pg, mariadb)
        except HarnessError as exc:
            say(f"worker-sync demo: cannot start the local servers: {exc}")
            return Exit.UNAVAILABLE


def _password_file(directory: Path, name: str, secret: str) -> str:
    path = directory / name
    path.write_text(secret)
    path.chmod(0o600)
    return str(path)


def _demo(args: argparse.Namespace, tmp: Path, pg: Endpoint, mariadb: Endpoint) -> int:
    import ray

    from actors.capture import CaptureActor
    from actors.core.encoding import decode_batch
    from actors.core.streams import StreamSpec
    from config.model import PostgresNode, Tls

    with pg.connect("admin") as conn:
        conn.execute(ORDERS_DDL["postgresql"])
    with mariadb.connect("admin") as conn, conn.cursor() as cursor:
        cursor.execute(f"USE `{mariadb.database}`")
        cursor.execute(ORDERS_DDL["mariadb"])
    say("starting Ray ...")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        pg_node = PostgresNode(
            host=pg.host,
            port=pg.port,
            database=pg.database,
            username=pg.capture.user,
            password_file=_password_file(tmp, "pg-password", pg.capture.password),
            tls=Tls(mode="disable"),
            slot_name="worker_sync_demo",
        )
        streams = [
            StreamProgress(
                engine="postgresql",
                actor=CaptureActor.remote(
                    StreamSpec(
                        stream="demo-postgresql", node_name="postgresql", node=pg_node, tables=["public.orders"]
                    ),
                    str(tmp / "offsets"),
                ),
                workload=MixedWorkload("postgresql", lambda: pg.connect("admin", autocommit=False), rate=args.rate),
            )
        ]
        say("waiting for the initial snapshot ...")
        for stream in streams:
            while stream.last is None:
                _poll(ray, decode_batch, stream)
        for stream in streams:
            stream.workload.start()
        say(f"writing ~{args.rate:.0f} changes/s per database for {args.duration:.0f} s (Ctrl-C stops early)")
        started = time.monotonic()
        interrupted = False
        try:
            _watch(ray, decode_batch, streams, until=started + args.duration)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted: stopping the load and draining what was written ...")
        for stream in streams:
            stream.workload.stop()
        _drain(ray, decode_batch, streams, timeout_s=60)
        summary = _summary(streams, time.monotonic() - started)
    finally:
        ray.shutdown()
    _print_summary(summary, as_json=args.json)
    failed = any(s.workload.error for s in streams)
    if interrupted:
        return 130
    return Exit.OK if summary.all_captured_once and not failed else Exit.FINDINGS


def _poll(ray, decode_batch, stream: StreamProgress) -> None:
    data = ray.get(stream.actor.poll.remote(2_000, 0.1, stream.last))
    if data is None:
        return
    batch = decode_batch(data)
    now_us = time.time() * 1_000_000
    for event in batch.events:
        if event.position.order in stream.positions:
            stream.duplicates += 1
        stream.positions.add(event.position.order)
        if event.op != "read":
            stream.lags_ms.append((now_us - event.commit_time_us) / 1000)
    stream.captured += sum(1 for e in batch.events if e.op != "read")
    if batch.upto is not None:
        stream.last = batch.upto
        stream.actor.commit.remote(batch.upto)


def _watch(ray, decode_batch, streams: list[StreamProgress], *, until: float) -> None:
    next_report = time.monotonic() + 1
    previous = {s.engine: 0 for s in streams}
    while time.monotonic() < until:
        for stream in streams:
            _poll(ray, decode_batch, stream)
            if stream.workload.error is not None:
                raise SystemExit(f"worker-sync demo: the {stream.engine} write load failed: {stream.workload.error}")
        if time.monotonic() >= next_report:
            parts = []
            for s in streams:
                rate = s.captured - previous[s.engine]
                previous[s.engine] = s.captured
                lag = sorted(s.lags_ms[-2000:])
                p50 = lag[len(lag) // 2] if lag else 0.0
                parts.append(
                    f"{s.engine}: written {s.workload.changes:,} captured {s.captured:,} ({rate:,}/s) "
                    f"lag p50 {p50:.0f} ms"
                )
            say("  " + " | ".join(parts))
            next_report += 1


def _drain(ray, decode_batch, streams: list[StreamProgress], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(s.captured < s.workload.changes for s in streams):
        for stream in streams:
            _poll(ray, decode_batch, stream)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _summary(streams: list[StreamProgress], elapsed: float) -> Summary:
    report = {}
    for s in streams:
        report[s.engine] = {
            "changes_written": s.workload.changes,
            "changes_captured": s.captured,
            "duplicates": s.duplicates,
            "capture_lag_ms": {
                "p50": _percentile(s.lags_ms, 0.5),
                "p99": _percentile(s.lags_ms, 0.99),
                "max": _percentile(s.lags_ms, 1.0),
            },
            "write_error": None if s.workload.error is None else str(s.workload.error),
        }
    ok = all(s.captured == s.workload.changes and s.duplicates == 0 for s in streams)
    return Summary(
        duration_s=round(elapsed, 1),
        streams=report,
        all_captured_once=ok,
        sync="not built yet: changes are captured, not yet applied to a target (see the README's roadmap)",
    )


def _print_summary(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(summary).decode())
        return
    print(f"\nWorker-Sync demo: {summary.duration_s} s")
    for engine, r in summary.streams.items():
        lag = r["capture_lag_ms"]
        print(
            f"  {engine}: {r['changes_captured']:,} of {r['changes_written']:,} changes captured, "
            f"{r['duplicates']} duplicates; capture lag p50 {lag['p50']} ms, p99 {lag['p99']} ms"
        )
    print(f"  every change captured exactly once: {'yes' if summary.all_captured_once else 'NO'}")
    print(f"  sync to a target: {summary.sync}")
