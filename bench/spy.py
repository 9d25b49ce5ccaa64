"""py-spy over Worker-Sync's processes during a bench drain, and a "top" table from what it sampled.

    with Spy(py_spy, out_dir, label) as spy:   # py-spy: its binary (not a project dependency)
        spy.watch(supervisor_pid)             # starts `py-spy record --format raw` on that process
        spy.watch_actors(cluster_pids)        # ... and on every Worker-Sync actor process that appears
    spy.top()                                 # self and total share per function, per process class

Samples are of the thread holding the GIL (Python at work, not waits), 100 per second; py-spy pauses the
process briefly per sample, so a profiled drain is a little slower: profile in a run of its own, not a timed one.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path
from types import TracebackType

#: Process titles of Worker-Sync's actors (Ray sets ``ray::Class`` or ``ray::Class.method``).
ACTOR_TITLE = re.compile(rb"^ray::(CaptureActor|ApplierShard|AuditChain)\b")
_LINE = re.compile(r":\d+\)$")


class Spy:
    def __init__(self, py_spy: str, out_dir: Path, label: str, rate: int = 100) -> None:
        self.py_spy, self.out_dir, self.label, self.rate = py_spy, out_dir, label, rate
        self.recorders: dict[int, tuple[str, Path, subprocess.Popen[bytes]]] = {}
        out_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Spy:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def watch(self, pid: int, kind: str) -> None:
        if pid in self.recorders:
            return
        path = self.out_dir / f"{self.label}-{kind}-{pid}.raw.txt"
        command = [self.py_spy, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw", "--gil"]
        process = subprocess.Popen(
            [*command, "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.recorders[pid] = (kind, path, process)

    def watch_actors(self, pids: set[int]) -> None:
        """Start recording every Worker-Sync actor process among ``pids`` not recorded yet."""
        for pid in pids - set(self.recorders):
            with contextlib.suppress(OSError):
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
                found = ACTOR_TITLE.match(title)
                if found:
                    self.watch(pid, found.group(1).decode())

    def stop(self) -> None:
        """Ask every recorder to write its file (SIGINT) and wait for it."""
        for _, _, process in self.recorders.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _, _, process in self.recorders.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def samples(self) -> dict[str, Counter[str]]:
        """Collapsed stacks per process kind (several processes of one kind summed)."""
        by_kind: dict[str, Counter[str]] = {}
        for kind, path, _ in self.recorders.values():
            stacks = by_kind.setdefault(kind, Counter())
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if stack and count.isdigit():
                        stacks[stack] += int(count)
        return by_kind


def top(stacks: Counter[str], limit: int = 25) -> list[tuple[str, float, float]]:
    """(function, self share, total share) of the ``limit`` functions with the most self time."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return [(name, n / total, inclusive[name] / total) for name, n in own.most_common(limit)]


def top_table(by_kind: dict[str, Counter[str]], title: str, limit: int = 25) -> str:
    """Markdown: per process kind, its samples and its top functions by self time."""
    lines = [f"# {title}", ""]
    everything: Counter[str] = Counter()
    for kind in sorted(by_kind):
        everything.update(by_kind[kind])
    for kind, stacks in [("all Worker-Sync processes", everything), *sorted(by_kind.items())]:
        lines += [
            f"## {kind}: {sum(stacks.values()):,} samples",
            "",
            "| self | total | function (file) |",
            "|---|---|---|",
        ]
        lines += [f"| {own:.1%} | {total:.1%} | `{name}` |" for name, own, total in top(stacks, limit)]
        lines.append("")
    return "\n".join(lines)


def grouped(stacks: Counter[str], groups: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Share of samples whose stack passes through any frame containing one of each group's markers."""
    total = sum(stacks.values()) or 1
    shares = {}
    for name, markers in groups.items():
        hit = sum(count for stack, count in stacks.items() if any(marker in stack for marker in markers))
        shares[name] = round(hit / total, 4)
    return shares
