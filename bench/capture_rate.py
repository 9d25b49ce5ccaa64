"""Capture throughput per engine: events/s decoded from a backlog, beside a plain reading loop.

    python bench/capture_rate.py [--rows 100000] [--repeat 3] [--engines postgresql,mariadb] [--ray]

Starts throwaway servers (actors.harness), writes each workload while nothing reads, then
times how fast each reader drains the backlog:
- `worker-sync source`: the engine's ChangeSource and batch pump (what the capture actor runs);
- `worker-sync actor` (with --ray): the same through the Ray capture actor, batches over Ray calls;
- `plain loop`: the simplest reader of the same log with the same driver (PostgreSQL:
  pg_logical_slot_peek_changes + msgspec; MariaDB: a bare BinLogStreamReader loop).
Workloads: `one_txn` (ROWS inserts in one transaction) and `mixed` (60/30/10 insert/update/delete
in 100-row transactions). Prints JSON (also bench/results/capture_rate.json) and a PNG plot.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.engines import ENGINES, EngineBench


def mixed_statements(rows: int, seed: int = 1) -> list[list[tuple[str, int]]]:
    """Transactions of 100 operations: 60 % insert, 30 % update, 10 % delete, on live keys."""
    rng = random.Random(seed)
    live: list[int] = []
    next_id = 1
    txns: list[list[tuple[str, int]]] = []
    for _ in range(rows // 100):
        txn = []
        for _ in range(100):
            roll = rng.random()
            if roll < 0.6 or len(live) < 10:
                txn.append(("insert", next_id))
                live.append(next_id)
                next_id += 1
            elif roll < 0.9:
                txn.append(("update", rng.choice(live)))
            else:
                txn.append(("delete", live.pop(rng.randrange(len(live)))))
        txns.append(txn)
    return txns


def timed(read: Callable[[int], int], expected: int) -> float:
    started = time.perf_counter()
    got = read(expected)
    elapsed = time.perf_counter() - started
    if got != expected:
        raise RuntimeError(f"reader returned {got} events, expected {expected}")
    return expected / elapsed


def run_engine(bench: EngineBench, rows: int, repeat: int, use_ray: bool) -> dict[str, object]:
    results: dict[str, object] = {}
    workloads = {
        "one_txn": lambda: bench.write_one_transaction(rows),
        "mixed": lambda: bench.write_mixed(mixed_statements(rows)),
    }
    for workload, write in workloads.items():
        rates: dict[str, list[float]] = {"worker-sync source": [], "plain loop": []}
        if use_ray:
            rates["worker-sync actor"] = []
        for attempt in range(repeat):
            bench.reset()
            changes = write()
            print(f"{bench.engine} {workload} #{attempt + 1}: {changes} changes written", file=sys.stderr)
            rates["plain loop"].append(timed(bench.read_plain, changes))
            rates["worker-sync source"].append(timed(bench.read_source, changes))
            if use_ray:
                rates["worker-sync actor"].append(timed(bench.read_actor, changes))
        medians = {reader: round(report.median(values)) for reader, values in rates.items()}
        results[workload] = {
            "changes": changes,
            "events_per_s_median": medians,
            "events_per_s_all": {k: [round(v) for v in vs] for k, vs in rates.items()},
            "ratio_source_to_plain": round(medians["worker-sync source"] / medians["plain loop"], 3),
        }
        if use_ray:
            results[workload]["ratio_actor_to_plain"] = round(medians["worker-sync actor"] / medians["plain loop"], 3)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="changes per workload (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload; medians are reported (default 3)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma list of {', '.join(ENGINES)}")
    parser.add_argument("--ray", action="store_true", help="also read through the Ray capture actor")
    parser.add_argument("--name", default="capture_rate", help="result file name (default capture_rate)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    if args.ray:
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    results: dict[str, object] = {"rows": args.rows, "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        for engine in engines:
            with ENGINES[engine](Path(tmp) / engine) as bench:
                results[engine] = run_engine(bench, args.rows, args.repeat, args.ray)
    report.write(args.name, results)
    labels, values = [], []
    for engine in engines:
        for workload in ("one_txn", "mixed"):
            for reader, rate in results[engine][workload]["events_per_s_median"].items():
                labels.append(f"{engine} {workload}: {reader}")
                values.append(rate)
    report.bar_plot(
        args.name,
        f"Capture from a backlog ({args.rows:,} changes, median of {args.repeat})",
        labels,
        values,
        "events/s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
