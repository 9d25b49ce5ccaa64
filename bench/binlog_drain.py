"""MariaDB binlog drain rate by reading mode: the source's own iterator, timed from its first item to the last.

    python bench/binlog_drain.py [--rows 50000] [--repeat 3] [--quick] [--results-dir DIR]

capture_rate.py times a whole BatchPump from its start, which at 50,000 changes in one transaction is bound by
start-up and hand-on waits (0.5 s steps). Here the same backlog (bench.engines.MariaDbBench: `one_txn` and
`mixed` 60/30/10 in 100-row transactions) is read through ``MariaDbSource.changes()`` alone, from the first
item it yields to the last change, alternating the modes each round:
- `fast`: lean rows and the binlog fast path (actors/engines/mariadb/fast_events.py), the default;
- `library-events`: lean rows, every event read by mysql-replication;
- `library`: every event and row by mysql-replication.
Prints JSON (also bench/results/binlog_drain.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.core.events import ChangeEvent
from actors.engines.registry import build_source
from bench import report
from bench.capture_rate import mixed_statements
from bench.engines import MariaDbBench

MODES = {"fast": (True, True), "library-events": (True, False), "library": (False, False)}


def drain(bench: MariaDbBench, lean_rows: bool, fast_events: bool, expected: int) -> float:
    source = build_source(bench._spec())
    source.lean_rows = lean_rows  # type: ignore[attr-defined]  # a MariaDbSource
    source.fast_events = fast_events  # type: ignore[attr-defined]
    resume = bench.resume
    assert resume is not None
    got, started = 0, 0.0
    try:
        for item in source.changes(resume, threading.Event()):
            if not started:
                started = time.perf_counter()
            if isinstance(item, ChangeEvent) and item.position.order > resume.order:
                got += 1
                if got >= expected:
                    break
    finally:
        source.close()
    return expected / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="changes per workload (default 50000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--name", default="binlog_drain", help="result file name (default binlog_drain)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 changes, one round")
    report.add_results_dir(parser)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 2_000, 1
    report.begin(args)
    results: dict[str, object] = {"rows": args.rows, "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp, MariaDbBench(Path(tmp) / "mariadb") as bench:
        for workload in ("one_txn", "mixed"):
            bench.reset()
            if workload == "one_txn":
                changes = bench.write_one_transaction(args.rows)
            else:
                changes = bench.write_mixed(mixed_statements(args.rows))
            rates: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.repeat):
                for mode, (lean_rows, fast_events) in MODES.items():
                    rates[mode].append(drain(bench, lean_rows, fast_events, changes))
            medians = {mode: round(statistics.median(values)) for mode, values in rates.items()}
            results[workload] = {
                "changes": changes,
                "events_per_s_median": medians,
                "events_per_s_all": {mode: [round(v) for v in values] for mode, values in rates.items()},
                "ratio_fast_to_library_events": round(medians["fast"] / medians["library-events"], 3),
            }
            print(workload, medians, file=sys.stderr)
    report.write(args.name, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
