"""What each PostgreSQL output plugin costs: the server's decoding, and the capture's (messages -> ChangeEvents).

    python bench/decoders.py [--rows 50000] [--repeat 5] [--quick] [--results-dir DIR]

Starts a throwaway PostgreSQL (actors.harness), writes a mixed workload (60/30/10 insert/update/delete in
100-row transactions, the capture_rate bench's) into a table of common types, and records the raw messages of
two slots over the same WAL: wal2json (format 2, the options the capture uses) and pgoutput (protocol 1). Then
it times:
- the server: each slot's backlog peeked through SQL (decoding in the walsender's code plus the transfer),
  alternating, ``--repeat`` times: what the plugin costs the source database;
- the capture: each decoder on its recorded messages (no server, no network), alternating, ``--repeat`` times,
  checking that both produced the same events: what the plugin costs the capture actor's CPU.

Prints JSON (also bench/results/decoders.json) and draws bench/results/decoders.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.capture_rate import mixed_statements
from bench.report import say

NAME = "decoders"
TABLE = "public.bench_decode"


def record(db: Any, slot: str, options: dict[str, str]) -> list[bytes]:
    """Every message the slot holds, as the streaming protocol would deliver them (peeked through SQL)."""
    args = ", ".join(f"'{key}', '{value}'" for key, value in options.items())
    with db.connect("admin") as conn:
        rows = conn.execute(f"SELECT data FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, NULL, {args})")
        return [bytes(data) for (data,) in rows]


def decode_all(decoder: Any, messages: list[bytes]) -> list[Any]:
    decode = decoder.decode
    return [item for item in map(decode, messages) if item is not None]


def main(argv: list[str] | None = None) -> int:
    from actors.engines.postgresql.catalog import load_table
    from actors.engines.postgresql.pgoutput import PgOutputDecoder, plugin_options
    from actors.engines.postgresql.wal2json import NUMBERS_AS_TEXT, PLUGIN_OPTIONS, Wal2JsonDecoder
    from actors.harness.postgres import LocalPostgres

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="changes in the workload (default 50000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per decoder; medians (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 changes, one pass")
    report.add_results_dir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 2_000, 1
    report.begin(args)
    started = time.monotonic()
    result: dict[str, Any] = {"rows": args.rows, "repeat": args.repeat, "workload": "60/30/10 in 100-row txns"}
    with tempfile.TemporaryDirectory(prefix="ws-decoders-") as tmp:
        server = LocalPostgres(Path(tmp) / "pg")
        server.start()
        try:
            db = server.endpoint
            with db.connect("admin") as conn:
                conn.execute(
                    f"CREATE TABLE {TABLE} (id int PRIMARY KEY, qty int, price numeric(10,2), note text, "
                    "at timestamptz DEFAULT now())"
                )
                conn.execute(f"CREATE PUBLICATION bench_decode FOR TABLE {TABLE}")
                conn.execute("SELECT pg_create_logical_replication_slot('bench_w2j', 'wal2json')")
                conn.execute("SELECT pg_create_logical_replication_slot('bench_pgo', 'pgoutput')")
                start_lsn = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
            statements = {
                "insert": f"INSERT INTO {TABLE} (id, qty, price, note) VALUES (%s, 1, 9.99, 'new')",
                "update": f"UPDATE {TABLE} SET qty = qty + 1, price = price + 1 WHERE id = %s",
                "delete": f"DELETE FROM {TABLE} WHERE id = %s",
            }
            say(f"writing {args.rows:,} changes ...")
            with db.connect("admin", autocommit=False) as conn, conn.pipeline():
                for txn in mixed_statements(args.rows):
                    for op, key in txn:
                        conn.execute(statements[op], (key,))
                    conn.commit()
            w2j_options = dict(PLUGIN_OPTIONS, **{"add-tables": TABLE})
            w2j_options.pop(NUMBERS_AS_TEXT, None)
            say("recording both slots (each peeked --repeat times: the server's decoding time) ...")
            peeks = {
                "wal2json": ("bench_w2j", w2j_options),
                "pgoutput": ("bench_pgo", plugin_options("bench_decode")),
            }
            messages: dict[str, list[bytes]] = {}
            server_s: dict[str, list[float]] = {kind: [] for kind in peeks}
            for attempt in range(args.repeat):
                for kind in peeks if attempt % 2 == 0 else reversed(list(peeks)):
                    slot, options = peeks[kind]
                    begun = time.perf_counter()
                    messages[kind] = record(db, slot, options)
                    server_s[kind].append(time.perf_counter() - begun)
            with db.connect("admin") as conn:
                tables = {TABLE: load_table(conn, TABLE, stream="bench")}
        finally:
            server.stop()

    def fresh(kind: str) -> Any:
        common = {"stream": "bench", "node": "pg", "tables": tables, "start_lsn": int(start_lsn)}
        return Wal2JsonDecoder(**common, numbers_as_text=False) if kind == "wal2json" else PgOutputDecoder(**common)

    rates: dict[str, list[float]] = {kind: [] for kind in messages}
    events: dict[str, list[Any]] = {}
    for attempt in range(args.repeat):
        for kind in messages if attempt % 2 == 0 else reversed(list(messages)):
            begun = time.perf_counter()
            items = decode_all(fresh(kind), messages[kind])
            elapsed = time.perf_counter() - begun
            changes = [item for item in items if hasattr(item, "op")]
            rates[kind].append(len(changes) / elapsed)
            events[kind] = changes
            say(f"#{attempt + 1} {kind}: {len(changes):,} changes, {len(changes) / elapsed:,.0f}/s")
    same = [(e.op, e.key, e.before, e.after, e.position.order) for e in events["wal2json"]] == [
        (e.op, e.key, e.before, e.after, e.position.order) for e in events["pgoutput"]
    ]
    medians = {kind: round(report.median(values)) for kind, values in rates.items()}
    result.update(
        {
            "messages": {kind: len(items) for kind, items in messages.items()},
            "message_bytes": {kind: sum(map(len, items)) for kind, items in messages.items()},
            "changes_per_s_median": medians,
            "changes_per_s_all": {kind: [round(v) for v in values] for kind, values in rates.items()},
            "ratio_pgoutput_to_wal2json": round(medians["pgoutput"] / medians["wal2json"], 3),
            "server_peek_s_median": {kind: round(report.median(values), 3) for kind, values in server_s.items()},
            "server_peek_s_all": {kind: [round(v, 3) for v in values] for kind, values in server_s.items()},
            "same_events": same,
        }
    )
    answer = (
        f"decoding {len(events['pgoutput']):,} changes: pgoutput {medians['pgoutput']:,}/s, wal2json "
        f"{medians['wal2json']:,}/s ({result['ratio_pgoutput_to_wal2json']:.2f}x); same events: {same}; the server "
        f"decodes the backlog in {result['server_peek_s_median']['pgoutput']} s (pgoutput) vs "
        f"{result['server_peek_s_median']['wal2json']} s (wal2json)"
    )
    result["answer"] = answer

    def plot(res: dict[str, Any], name: str = NAME) -> Path | None:
        values = res["changes_per_s_median"]
        return report.bar_plot(
            name,
            f"Decoding recorded messages (median of {args.repeat})",
            list(values),
            list(values.values()),
            "changes/s",
        )

    return report.finish(NAME, result, ok=same, interrupted=False, started=started, plot=plot, answers=[answer])


if __name__ == "__main__":
    sys.exit(main())
