"""`worker-sync status`: what a running instance reports on its /status endpoint. Exit 1 when it is not ready,
a stream has an error or a source log at risk, or a link's last reported verify found differing keys."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from actors.core.errors import ConfigError
from config import load_config
from config.exit_codes import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="base URL of the instance (default: from --config, else http://127.0.0.1:8080)")
    where.add_argument("--config", help="the instance's config file (its `http` block gives the address)")
    parser.add_argument("--json", action="store_true", help="print the status document as JSON")


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    if args.config:
        http = load_config(args.config).http
        host = "127.0.0.1" if http.host in ("0.0.0.0", "::") else http.host
        return f"{http.scheme}://{host}:{http.port}"
    return "http://127.0.0.1:8080"


def run(args: argparse.Namespace) -> int:
    try:
        url = _base_url(args) + "/status"
    except ConfigError as exc:
        print(f"worker-sync status: {exc}", file=sys.stderr)
        return Exit.USAGE
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        print(f"worker-sync status: cannot reach {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return Exit.UNAVAILABLE
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        _print(status)
    at_risk = any((s.get("source_log") or {}).get("state", "ok") != "ok" for s in status["streams"])
    differ = any(v["mismatches"] for v in status.get("verify") or [])
    healthy = status["ready"] and not at_risk and not differ and not any(s["error"] for s in status["streams"])
    return Exit.OK if healthy else Exit.FINDINGS


def _print(status: dict) -> None:
    print(f"run {status['run_id']}, up {status['uptime_s']:.0f} s, {'ready' if status['ready'] else 'NOT ready'}")
    for s in status["streams"]:
        lag = s["end_to_end_lag_ms"]
        print(
            f"  stream {s['stream']}: captured {s['captured_events']:,} applied {s['applied_events']:,} "
            f"in flight {s['batches_in_flight']} lag {s['lag_ms']:.0f} ms "
            f"(end-to-end p50 {lag['p50']} p99 {lag['p99']} ms) committed {s['committed']}"
        )
        if s.get("source_log"):
            print(f"    source log: {_source_log(s['source_log'])}")
        if s["error"]:
            print(f"    error: {s['error']}")
    for shard in status["shards"]:
        state = "busy" if shard["busy"] else "idle"
        line = f"  shard {shard['shard']}: {state}, {shard['queued_parts']} queued, {shard['applied_calls']:,} applied"
        print(line + (f", error: {shard['error']}" if shard["error"] else ""))
    for v in status.get("verify") or []:
        found = "equal" if not v["mismatches"] else f"{v['mismatches']:,} keys DIFFER"
        age = max(0.0, time.time() - v["finished_at"])
        print(f"  verify {v['link']}: {found} ({v['source_rows']:,} source rows, {age:,.0f} s ago)")


def _source_log(log: dict) -> str:
    """One line: what the source keeps for the stream, and how long before it may drop it."""
    headroom = log.get("headroom_seconds")
    ahead = "no limit" if headroom is None else f"{headroom:,.0f} s headroom"
    state = "" if log["state"] == "ok" else f"{log['state'].upper()}: "
    return f"{state}{log['retained_bytes']:,} bytes retained, {ahead} ({log['detail']})"
