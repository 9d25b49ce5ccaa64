"""The image carries the client tools of `worker-sync backup --databases` (pg_dump, mariadb-dump).

There is no Docker here: the Dockerfile is parsed and its instructions checked, the build itself is not run.
The tools must be installed as root in a RUN before the image drops to `USER 1001:1001`, pg_dump from the
PGDG repository (set up by postgresql-common's own script) at a major no older than the newest PostgreSQL
server the chart targets, and the apt lists removed in the same layer.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from actors.engines.registry import engine_for
from config.model import MySqlNode, PostgresNode
from tests.helm.chart_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
#: The PostgreSQL server majors the chart targets start here; pg_dump refuses servers newer than itself.
MIN_PG_CLIENT_MAJOR = 15
PGDG_SCRIPT = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def expand(command: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), command)


def shell_steps(command: str) -> list[list[str]]:
    """The `&&`-chained commands of a RUN, each as words (pipes keep only their first command)."""
    steps = []
    for part in command.split("&&"):
        words = shlex.split(part.split("|", 1)[0])
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value prefixes
        if words:
            steps.append(words)
    return steps


def root_runs_before_final_user() -> list[list[list[str]]]:
    """The RUN instructions executed as root before the last `USER`, as shell steps with ARGs expanded."""
    parsed = instructions(DOCKERFILE.read_text())
    users = [i for i, (keyword, _) in enumerate(parsed) if keyword == "USER"]
    assert users and parsed[users[-1]][1] == "1001:1001", "the image must end as the non-root uid 1001"
    args: dict[str, str] = {}
    user = "root"  # the Ray base image's default user is `ray`; the Dockerfile switches to root itself
    runs = []
    for keyword, rest in parsed[: users[-1]]:
        if keyword == "FROM":
            user = "ray"
        elif keyword == "USER":
            user = rest
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default.strip("\"'")
        elif keyword == "RUN" and user == "root":
            runs.append(shell_steps(expand(rest, args)))
    return runs


def tools_run() -> list[list[str]]:
    runs = [run for run in root_runs_before_final_user() if any(PGDG_SCRIPT in step for step in run)]
    assert len(runs) == 1, f"one root RUN before `USER 1001:1001` must set up PGDG with {PGDG_SCRIPT}"
    return runs[0]


def position(steps: list[list[str]], predicate, what: str) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert found, f"the tools RUN has no step that {what}"
    return found[0]


def installs(step: list[str]) -> list[str]:
    """Packages of an `apt-get install` step, else []."""
    if step[:1] != ["apt-get"] or "install" not in step:
        return []
    return [w for w in step[step.index("install") + 1 :] if not w.startswith("-")]


def test_the_dump_tools_are_installed_as_root_before_user_1001():
    steps = tools_run()
    update = position(steps, lambda s: s[:2] == ["apt-get", "update"], "runs apt-get update")
    common = position(steps, lambda s: "postgresql-common" in installs(s), "installs postgresql-common")
    script = position(steps, lambda s: s == [PGDG_SCRIPT, "-y"], f"runs `{PGDG_SCRIPT} -y`")
    clients = position(
        steps, lambda s: any(p.startswith("postgresql-client-") for p in installs(s)), "installs postgresql-client-N"
    )
    mariadb = position(steps, lambda s: "mariadb-client" in installs(s), "installs mariadb-client")
    assert update < common < script < clients, "postgresql-common, then its PGDG script, then the client from PGDG"
    assert script < mariadb
    [client] = [p for p in installs(steps[clients]) if p.startswith("postgresql-client-")]
    major = client.removeprefix("postgresql-client-")
    assert major.isdigit(), f"`{client}`: the ARG with the client's major needs a default"
    assert int(major) >= MIN_PG_CLIENT_MAJOR, f"pg_dump {major} cannot dump PostgreSQL {MIN_PG_CLIENT_MAJOR}+ servers"
    # The build proves the tools run (the programs the engines look for: test_the_image_checks_a_tool_each_...).
    assert position(steps, lambda s: s[:2] == ["pg_dump", "--version"], "runs pg_dump --version") > clients
    assert position(steps, lambda s: s[:2] == ["mariadb-dump", "--version"], "runs mariadb-dump --version") > mariadb


def test_the_tools_layer_removes_the_apt_lists():
    steps = tools_run()
    assert steps[-1][:2] == ["rm", "-rf"] and "/var/lib/apt/lists/*" in steps[-1]
    for step in steps:
        if installs(step):
            assert "--no-install-recommends" in step and "-y" in step, step


@pytest.mark.parametrize(
    "node",
    [
        PostgresNode(host="h", database="d", username="u"),
        MySqlNode(host="h", database="d", username="u", flavor="mariadb"),
        MySqlNode(host="h", database="d", username="u", flavor="mysql"),
    ],
    ids=["postgresql", "mariadb", "mysql"],
)
def test_the_image_checks_a_tool_each_engine_runs(node):
    command = engine_for(node).dump_command(node, Path("/dev/null"))
    checked = {step[0] for step in tools_run() if step[1:] == ["--version"]}
    assert checked & set(command.programs), f"the image checks none of {command.programs}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RUN a \\\n # note\n && b\n", [("RUN", "a && b")]),
        ("# c\nUSER root\n\nARG X=1\n", [("USER", "root"), ("ARG", "X=1")]),
    ],
)
def test_the_parser_joins_continued_lines(text, expected):
    assert instructions(text) == expected
