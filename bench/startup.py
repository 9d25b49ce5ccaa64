"""Worker-Sync's own start-up, per applier shard count, side by side (issue 19: ≤ 1 s from `run` to the first
applied change, Ray's start not counted).

    python bench/startup.py [--runs 9] [--shards 1,2] [--decoder pgoutput|wal2json] [--audit] [--before-tree DIR]
                            [--quick] [--results-dir DIR] [--name startup]

Starts throwaway PostgreSQL and MariaDB servers (actors.harness) and a Ray node of its own (`ray start --head
--num-cpus=2`; its start is timed and reported apart). Per shard count, a PostgreSQL -> MariaDB link of the
sync bench's orders table with a copy of its own on the target, one config (least-privilege accounts,
``supervisor.ray_address`` = the bench's node, audit off unless ``--audit``) and a warm-up run (it creates the
slot). Then ``--runs`` rounds; in each, per shard count (the order rotated per round, so drift hits each alike):
200 changes written while nothing reads, a wait for a quiet machine (bench/report.py's wait_for_quiet),
`worker-sync run` started as a process of its own, its two `started:` log lines read, SIGTERM. The first gives
the seconds from the process's start (/proc) to the first change applied to the target and how many of them
went to joining Ray: Worker-Sync's own start-up is their difference. The second, the seconds to the whole first
batch done (every shard's part applied and, with ``--audit``, stored in the audit log: from then on positions
are committed), is reported beside it (``own_first_batch_s``).

``--before-tree DIR`` (another checkout, e.g. ``git worktree add /tmp/before COMMIT``): each round also runs
`worker-sync run` with that tree's code first on its import path, alternating with this tree's, on the same
servers and Ray node. The actors' worker processes import this tree's code either way (the node's), so this
compares what the `run` process itself does: a change to the actors needs two runs of this bench instead. A
tree from before the first-batch line (commit 796448a and older) logged the first batch done as its first
applied change, and has no ``own_first_batch_s``.

``--audit``: the link also keeps the signed audit log (in the source PostgreSQL, as a production config would),
so one actor more starts (the audit actor, which the first batch waits for).

JSON on stdout and in bench/results/NAME.json, a plot in bench/results/NAME.png, progress on stderr; exit 1
if a run failed, 130 on Ctrl-C. ``--quick``: one round, one shard (the smoke test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.harness import HarnessError
from bench import report
from bench.backlog import first_batch_from_log, startup_from_log
from bench.control_plane import Run, warm_up_run
from bench.report import say
from bench.stage import Stage, servers_and_ray, signed_audit_log
from bench.sync_lag import build_config
from bench.sync_workload import ORDERS_DDL, LoadProcess, create_table, namespace

NAME = "startup"
LINK = "pg-to-mariadb"
CHANGES_PER_RUN = 200
STARTED_WITHIN_S = 120.0
#: With --before-tree: how long after the first applied change that tree's first-batch line is waited for.
OLD_TREE_GRACE_S = 10.0
BAR_S = 1.0


class ShardSetup:
    """One shard count's table, copy, config and load writer."""

    def __init__(self, shards: int, stage: Stage, decoder: str, audit: bool) -> None:
        import msgspec

        from config.model import TableMap

        pg, mariadb, cluster = stage.pg, stage.mariadb, stage.cluster
        self.shards, self.pg, self.env = shards, pg, cluster.env
        self.tmp = stage.tmp / f"shards-{shards}"
        self.tmp.mkdir()
        table, copy = f"st{shards}", f"st{shards}_copy"
        create_table(pg, ORDERS_DDL, table)
        create_table(mariadb, ORDERS_DDL, copy)
        config = build_config(LINK, pg, mariadb, [table], shards, self.tmp)
        self.slot = f"ws_startup_{shards}"
        (link,) = config.links
        link = msgspec.structs.replace(
            link,
            name=f"startup-{shards}",
            tables=[TableMap(source=namespace(pg, table), target=namespace(mariadb, copy))],
        )
        node = msgspec.structs.replace(config.databases.postgresql, slot_name=self.slot, decoder=decoder)
        if decoder == "pgoutput":  # what `worker-sync init --admin-user` makes
            with pg.connect("admin") as admin:
                admin.execute(f"CREATE PUBLICATION {self.slot} FOR TABLE {namespace(pg, table)}")
        config = msgspec.structs.replace(
            config,
            links=[link],
            databases=msgspec.structs.replace(config.databases, postgresql=node),
            supervisor=msgspec.structs.replace(config.supervisor, ray_address=cluster.gcs),
        )
        if audit:
            config = msgspec.structs.replace(
                config, audit=signed_audit_log(pg, pg.capture.user, self.tmp, f"startup_{shards}")
            )
        self.config = self.tmp / "worker-sync.yaml"
        self.config.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        self.load = LoadProcess(pg, table, seed=shards)
        self.runs = 0

    def warm_up(self) -> None:
        say(f"{self.shards} shard(s): warm-up run (creates the slot) ...")
        warm_up_run(self.config, self.env, self.tmp / "warm-up.log")

    def measure(self, tree: Path | None = None) -> dict[str, float]:
        """One `run` from its command to the first applied change (its `started:` log line); ``tree``: the
        checkout whose code the `run` process imports (default: the one the Ray node was started with)."""
        self.load.write_backlog(CHANGES_PER_RUN)
        self.runs += 1
        quiet_wait_s = report.wait_for_quiet()
        env = self.env if tree is None else dict(self.env, PYTHONPATH=str(tree))
        run = Run(self.config, env, self.tmp / f"run-{self.runs}.log")
        try:
            deadline = time.monotonic() + STARTED_WITHIN_S
            while not (figures := startup_from_log(run.log)):
                run.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no first applied change after {STARTED_WITHIN_S:.0f} s: {run.tail()}")
                time.sleep(0.05)
            # A tree from before the first-batch line never logs it: give it OLD_TREE_GRACE_S, then go on.
            if tree is not None:
                deadline = time.monotonic() + OLD_TREE_GRACE_S
            while not (batch := first_batch_from_log(run.log, figures["log_ray_s"])):
                run.check()
                if time.monotonic() > deadline:
                    if tree is not None:
                        break
                    raise RuntimeError(f"no first batch done after {STARTED_WITHIN_S:.0f} s: {run.tail()}")
                time.sleep(0.05)
            figures |= batch
        finally:
            code = run.stop()
        if code != 0:
            raise RuntimeError(f"`worker-sync run` exited with code {code}: {run.tail()}")
        return figures | {"quiet_wait_s": quiet_wait_s}

    def close(self) -> None:
        self.load.close()
        with self.pg.connect("admin") as admin:
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            )


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    own = [r["own_startup_s"] for r in runs]
    batch = [r["own_first_batch_s"] for r in runs if "own_first_batch_s" in r]
    return {
        "runs": len(runs),
        "own_startup_s_median": round(statistics.median(own), 3),
        "own_startup_s_min": min(own),
        "own_startup_s_max": max(own),
        "own_first_batch_s_median": round(statistics.median(batch), 3) if batch else None,
        "process_to_first_apply_s_median": round(statistics.median(r["log_process_to_first_apply_s"] for r in runs), 3),
        "ray_join_s_median": round(statistics.median(r["log_ray_s"] for r in runs), 3),
        "runs_within_bar": sum(1 for value in own if value <= BAR_S),
    }


def variants(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, shard count, data) of every variant measured: this tree's, then the before tree's."""
    labelled = [("", result.get("shards", {})), (", before tree", result.get("before_tree", {}))]
    return [(label, count, data) for label, per in labelled for count, data in per.items() if data.get("runs")]


def answer_line(what: str, data: dict[str, Any]) -> str:
    summary = data["summary"]
    batch = summary.get("own_first_batch_s_median")
    return (
        f"{what}: own start-up median {summary['own_startup_s_median']:.2f} s over {summary['runs']} runs "
        f"({summary['own_startup_s_min']:.2f}-{summary['own_startup_s_max']:.2f} s; "
        f"{summary['runs_within_bar']} within {BAR_S:.0f} s)"
        + ("" if batch is None else f"; the whole first batch done after {batch:.2f} s")
    )


def plot(result: dict[str, Any], name: str = NAME) -> Path | None:
    plt = report.pyplot()
    measured = variants(result)
    if plt is None or not measured:
        return None
    fig, ax = plt.subplots(figsize=(7 + len(measured), 4.5))
    for position, (label, _count, data) in enumerate(measured):
        own = [r["own_startup_s"] for r in data["runs"]]
        ax.scatter([position] * len(own), own, color="#999999" if label else "#4c72b0", alpha=0.6)
        median = data["summary"]["own_startup_s_median"]
        ax.hlines(median, position - 0.25, position + 0.25, color="#dd8452")
        ax.annotate(f"median {median:.2f} s", (position + 0.27, median), fontsize=8, va="center")
    ax.axhline(BAR_S, color="#c44e52", linestyle="--", linewidth=1, label=f"issue 19's bar ({BAR_S:.0f} s)")
    ax.set_xticks(range(len(measured)), [f"{count} shard(s){label}" for label, count, _ in measured], fontsize=8)
    ax.set_xlim(-0.6, len(measured) - 0.2)
    ax.set_ylabel("seconds: process start to first applied change, minus joining Ray")
    audit = ", audit on" if result.get("settings", {}).get("audit") else ""
    ax.set_title(f"Worker-Sync's own start-up, {LINK}{audit} (Ray up; each dot one `run`)")
    ax.legend(fontsize=8)
    return report.save_plot(plt, fig, name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="rounds; medians reported (default 9)")
    parser.add_argument("--shards", default="1,2", help="comma list of applier shard counts (default 1,2)")
    parser.add_argument(
        "--decoder",
        choices=["wal2json", "pgoutput"],
        default="pgoutput",
        help="the capture's output plugin (default pgoutput)",
    )
    parser.add_argument(
        "--before-tree",
        type=Path,
        help="another checkout: its `run` is timed too, alternating with this tree's (the actors stay this tree's)",
    )
    parser.add_argument(
        "--audit", action="store_true", help="the link keeps the signed audit log (one actor more; default off)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one round, one shard")
    parser.add_argument("--name", default=NAME, help=f"result file name (default {NAME})")
    parser.add_argument("--results-dir", help="where the JSON and PNG go (default bench/results)")
    args = parser.parse_args(argv)
    try:
        args.shard_counts = [int(part) for part in args.shards.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--shards: a comma list of whole numbers, not {args.shards!r}")
    if not args.shard_counts or min(args.shard_counts) < 1 or args.runs < 1:
        parser.error("--shards needs counts of at least 1, --runs at least 1")
    if args.before_tree is not None and not (args.before_tree / "actors" / "cli" / "run.py").is_file():
        parser.error(f"--before-tree {args.before_tree}: not a Worker-Sync checkout (no actors/cli/run.py)")
    if args.quick:
        args.runs, args.shard_counts = 1, [1]
    return args


def measure_rounds(
    setups: list[ShardSetup], trees: list[tuple[str, Path | None]], runs: int, result: dict[str, Any]
) -> None:
    """``runs`` rounds; the shard counts' order, and the trees', rotate from round to round so drift hits
    each alike. Each figure goes into ``result[tree key][shard count]`` as it comes."""
    for index in range(runs):
        shift = index % len(setups)
        for setup in setups[shift:] + setups[:shift]:
            for key, tree in trees if index % 2 == 0 else trees[::-1]:
                figures = setup.measure(tree)
                data = result[key][str(setup.shards)]
                data["runs"].append(figures)
                data["summary"] = summarize(data["runs"])
                say(
                    f"round {index + 1}/{runs}: {setup.shards} shard(s){'' if tree is None else ', before tree'}: "
                    f"own start-up {figures['own_startup_s']:.2f} s (process start to first applied change "
                    f"{figures['log_process_to_first_apply_s']:.2f} s, joining Ray {figures['log_ray_s']:.2f} s)"
                )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report.begin(args)
    started = time.monotonic()
    result: dict[str, Any] = {
        "settings": {
            "runs": args.runs,
            "shards": args.shard_counts,
            "decoder": args.decoder,
            "audit": args.audit,
            "link": LINK,
            "before_tree": None if args.before_tree is None else str(args.before_tree),
        },
        "shards": {str(count): {"runs": []} for count in args.shard_counts},
    }
    trees: list[tuple[str, Path | None]] = [("shards", None)]
    if args.before_tree is not None:
        result["before_tree"] = {str(count): {"runs": []} for count in args.shard_counts}
        trees.append(("before_tree", args.before_tree.resolve()))
    ok, interrupted = True, False
    try:
        with servers_and_ray("ws-startup-") as stage:
            result["ray_start_s"] = stage.ray_start_s
            setups = [ShardSetup(n, stage, args.decoder, args.audit) for n in args.shard_counts]
            try:
                for setup in setups:
                    setup.warm_up()
                measure_rounds(setups, trees, args.runs, result)
            finally:
                for setup in setups:
                    setup.close()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything this bench started has been stopped")
    except (HarnessError, RuntimeError) as exc:
        ok = False
        result["error"] = str(exc)
        say(f"FAILED: {exc}")
    answers = [answer_line(f"{count} shard(s){label}", data) for label, count, data in variants(result)]
    return report.finish(args.name, result, ok=ok, interrupted=interrupted, started=started, plot=plot, answers=answers)


if __name__ == "__main__":
    sys.exit(main())
