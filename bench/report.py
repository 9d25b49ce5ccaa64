"""What every bench writes: a JSON result that says where and how it was measured, and a PNG plot."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    try:
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kib = 0
    versions = {}
    for dist in ("ray", "psycopg", "PyMySQL", "mysql-replication", "msgspec", "pymongo"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "postgresql": _first_line(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "mariadb": _first_line(["mariadbd", "--version"]),
    }


def _first_line(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except OSError:
        return None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def write(name: str, result: dict[str, Any]) -> Path:
    """Write results/NAME.json (with machine and command) and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "bench": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(json.dumps(document, indent=2, default=str))
    return path


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or None (with a note) when the bench extra is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written", file=sys.stderr)
        return None
    return plt


def save_plot(plt: Any, fig: Any, name: str) -> Path:
    """Lay out ``fig``, write it to RESULTS/NAME.png and close it; the path written."""
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bar_plot(name: str, title: str, labels: list[str], values: list[float], unit: str) -> Path | None:
    """A simple labelled bar chart as results/NAME.png; None (with a note) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.5))
    bars = ax.barh(labels, values, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
    ax.set_xlabel(unit)
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so a bench stops what it started on the way out. Set
    explicitly (a background job of a non-interactive shell inherits SIGINT ignored), and again after
    ``ray.init``, which installs its own SIGTERM handler."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", help="where the JSON and PNG go (default bench/results)")


def begin(args: argparse.Namespace) -> None:
    """What every bench does once its arguments are read: stop cleanly on signals, write where it was told."""
    global RESULTS
    stop_on_signals()
    if args.results_dir:
        RESULTS = Path(args.results_dir).resolve()


def finish(
    name: str,
    result: dict[str, Any],
    *,
    ok: bool,
    interrupted: bool,
    started: float,
    plot: Callable[[dict[str, Any], str], object],
    answers: list[str],
) -> int:
    """Write the result and its plot, say the answer; the exit code. An interrupted run's partial result is
    printed, but it does not replace the last full one on disk."""
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["ok"] = ok and not interrupted
    if interrupted:
        print(json.dumps(result, indent=2, default=str))
        return 130
    write(name, result)
    plot(result, name)
    for line in answers:
        print(line, file=sys.stderr, flush=True)
    return 0 if ok else 1


#: wait_for_quiet: the machine counts as quiet below this many cores busy over one window.
QUIET_BUSY_CORES = 0.15
QUIET_WINDOW_S = 0.5
QUIET_MAX_S = 20.0


def _busy_and_total_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat's first line."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_s: float = QUIET_MAX_S) -> float:
    """Wait until the cores were busy less than QUIET_BUSY_CORES in all over a QUIET_WINDOW_S window, at most
    ``max_s``; the seconds waited. What a timed run leaves behind (the servers flushing and purging its writes,
    its Ray workers exiting) then does not land in the next one's time."""
    began = time.monotonic()
    cores = os.cpu_count() or 1
    while time.monotonic() - began < max_s:
        busy_before, total_before = _busy_and_total_ticks()
        time.sleep(QUIET_WINDOW_S)
        busy, total = _busy_and_total_ticks()
        if total > total_before and (busy - busy_before) / (total - total_before) * cores < QUIET_BUSY_CORES:
            break
    return round(time.monotonic() - began, 2)


def say(message: str) -> None:
    """A progress line on stderr, with the time (stdout is for the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
